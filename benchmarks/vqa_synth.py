"""VQA pairs from ROCOv2 captions and concepts: pairs per caption, the Yes/No balance of every yes/no question, the
share of answers checked against their record, and pairs per minute; 30 pairs sampled to an audit file to read by hand.

Reads ``../shared/realdata/rocov2`` in place (test split: 9,927 captions, their concepts, manual concepts and the CUI
mapping) through the real ``rocov2`` connector and the ``synth_vqa`` stage as ``pipelines/radiology-vqa.yaml``
configures it (``--all-templates``: every template). The images are not needed to write pairs, so each ID gets the
same 8x8 JPEG in a temporary folder.

The check of each answer is independent of the stage and the connector: it reads the raw CSV files itself (caption
text, CUI lists, the CUI mapping) with the ROCOv2 modality and body region CUIs written out here, and re-derives what
each answer may say. A caption answer is the CSV caption; a finding answer is caption words in the caption's order;
a modality answer names exactly the record's modality CUIs; a findings answer lists exactly the mapping's names of its
other CUIs; a region answer its one region concept. A yes/no question's asked property is read from the question
and tested against the record: "Is this a CT scan?" is Yes exactly when the record has the CT CUI (and No only when
it has another single modality), "Is this an image of the chest?" Yes exactly when its manual concepts hold the
chest, "Is there evidence of X?" Yes only when X is the mapping's name of one of its CUIs and the quoted sentence is
the caption's and names X.

With ``--llm N`` it then runs ``mode: llm`` (the embedded Gemma 3 270M writes the question of each caption-span
answer) on the first N captions and prints what was kept and why the rest was not, writing the kept pairs to
``llm_pairs.jsonl`` to read.

    python benchmarks/vqa_synth.py [--limit N] [--all-templates] [--llm N]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

from curate.ingest import rocov2
from curate.ingest.base import SourceSpec
from curate.rag.vqa import SynthVQA, finding_span
from curate.stage import DROP, columns

REPO = Path(__file__).resolve().parents[1]
ROCO = (REPO / ".." / "shared" / "realdata" / "rocov2").resolve()
# The six ROCOv2 modality CUIs, each with the words an answer about it must use and a question about it may use.
MODALITY = {"C0040405": ("computed tomography", "ct scan"), "C1306645": ("x-ray", "x-ray"),
            "C0024485": ("magnetic resonance", "mri"), "C0041618": ("ultrasonography", "ultrasound"),
            "C0002978": ("angiography", "angiogra"), "C0032743": ("positron emission", "pet")}
# ROCOv2's manual body region CUIs, as a region answer words them.
REGION = {"C0037303": "head", "C0817096": "chest", "C0000726": "abdomen", "C0030797": "pelvis",
          "C1140618": "upper extremity", "C0023216": "lower extremity", "C0037949": "spine", "C0006141": "breast"}


@dataclass
class Record:
    """One image's raw fields, as the release's CSV files give them."""

    caption: str
    cuis: list[str]
    manual: list[str]
    names: dict[str, str]  # the mapping's canonical name of each CUI that has one


def _csv(name: str) -> dict[str, str]:
    with open(ROCO / name, newline="", encoding="utf-8") as f:
        return dict(row for row in csv.reader(f) if row)


def read_records() -> dict[str, Record]:
    """Every test image's caption, CUIs and manual CUIs, and the names of its CUIs, read from the CSV files."""
    mapping, manual = _csv("cui_mapping.csv"), _csv("test_concepts_manual.csv")
    records = {}
    for image_id, cuis in _csv("test_concepts.csv").items():
        cuis = [c.strip() for c in cuis.split(";") if c.strip()]
        records[image_id] = Record("", cuis, [c.strip() for c in manual.get(image_id, "").split(";") if c.strip()],
                                   {c: mapping[c] for c in cuis if c in mapping})
    for image_id, caption in _csv("test_captions.csv").items():
        records.setdefault(image_id, Record("", [], [], {})).caption = caption.strip()
    return records


def _tokens(text: str) -> list[str]:
    """Lower-cased words, split where captions glue words together ("SinusPSAA" -> sinus, psaa)."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", text)]


def _modalities(record: Record) -> set[str]:
    return {c for c in record.cuis if c in MODALITY}


def _regions(record: Record) -> set[str]:
    return {REGION[c] for c in record.manual if c in REGION}


def _states_modality(text: str, record: Record) -> bool:
    """Whether ``text`` names exactly the record's modalities."""
    return {c for c, (word, _) in MODALITY.items() if word in text.lower()} == _modalities(record)


def _states_region(text: str, record: Record) -> bool:
    regions = _regions(record)
    return len(regions) == 1 and f"the {next(iter(regions))}." in text.lower()


def verdict(answer: str) -> str | None:
    """"Yes" or "No" for a yes/no answer, else None."""
    word = answer.split(".", 1)[0]
    return word if word in ("Yes", "No") else None


def grounded(template: str, question: str, answer: str, record: Record) -> bool:
    """Whether ``answer`` says only what the record's raw fields state (see the module docstring)."""
    said, rest = verdict(answer), answer.split(". ", 1)[-1]
    if template == "caption":
        return answer == record.caption
    if template == "finding":  # the answer's words are the caption's, in the caption's order
        words = iter(_tokens(record.caption))
        return all(w in words for w in _tokens(answer))
    if template == "modality":
        return _states_modality(answer, record)
    if template == "closed_modality":
        asked = [c for c, (_, word) in MODALITY.items() if re.search(rf"\b{re.escape(word)}", question.lower())]
        has = _modalities(record)
        truth = "Yes" if asked and set(asked) <= has else "No" if len(asked) == 1 and len(has) == 1 else None
        return len(asked) == 1 and said == truth and _states_modality(rest, record)
    if template == "region":
        return _states_region(answer, record)
    if template == "closed_region":
        asked = re.fullmatch(r"Is this an image of the (.+)\?", question)
        truth = asked and ("Yes" if asked[1] in _regions(record) else "No")
        return bool(asked) and said == truth and _states_region(rest, record)
    if template == "findings":
        named = {n.lower() for c, n in record.names.items() if c not in MODALITY}
        listed = answer.removeprefix("The image shows ").removesuffix(".").split("; ")
        return answer.startswith("The image shows ") and {n.lower() for n in listed} == named
    if template == "evidence":
        asked = re.fullmatch(r"Is there evidence of (.+) in this image\?", question)
        concept = asked[1] if asked else ""
        return (said == "Yes" and any(n.lower() == concept for c, n in record.names.items() if c not in MODALITY)
                and rest in record.caption and re.search(rf"\b{re.escape(concept)}\b", rest.lower()) is not None)
    raise ValueError(template)


def stage_config(all_templates: bool) -> dict:
    """The pipeline's ``synth_vqa`` options, or every template."""
    if all_templates:
        return {}
    pipeline = yaml.safe_load((REPO / "pipelines" / "radiology-vqa.yaml").read_text())
    stage = next(s for s in pipeline["stages"] if s["stage"] == "synth_vqa")
    return {k: v for k, v in stage.items() if k != "stage"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="read only the first N captions")
    ap.add_argument("--all-templates", action="store_true", help="every template, not the pipeline's")
    ap.add_argument("--llm", type=int, default=0, help="also run mode: llm on this many captions")
    ap.add_argument("--out", default="runs/bench-vqa")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "JPEG")
    ids = [line.split(",", 1)[0] for line in (ROCO / "test_captions.csv").read_text().splitlines()[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        for image_id in ids:
            (Path(tmp) / f"{image_id}.jpg").write_bytes(buffer.getvalue())
        spec = SourceSpec(name="rocov2", kind="rocov2", license="CC-BY-NC-SA-4.0", path=ROCO, limit=args.limit)
        read = list(rocov2.read(spec, rocov2.Options(split="test", image_dir=Path(tmp))))
    images = [r for r in read if isinstance(r, dict)]
    started = time.perf_counter()
    made = SynthVQA(stage_config(args.all_templates))(columns(images, list(images[0])))
    seconds = time.perf_counter() - started
    raw = read_records()
    pairs = [dict(zip(made, values)) for values in zip(*made.values())]
    dropped = Counter(p[DROP] for p in pairs if p.get(DROP))
    pairs = [p for p in pairs if not p.get(DROP)]
    templates, yes_no, checked = Counter(), Counter(), Counter()
    records = []
    for p in pairs:
        meta = json.loads(p["meta"])
        template, (question, answer) = meta["template"], (m["content"] for m in p["messages"])
        record = raw[p["provenance"]["locator"].split("#")[0]]
        templates[template] += 1
        if verdict(answer):
            yes_no[template, verdict(answer)] += 1
        ok = grounded(template, question, answer, record)
        checked[ok] += 1
        records.append({"template": template, "question": question, "answer": answer, "caption": record.caption,
                        "cuis": record.cuis, "cui_names": record.names, "manual_cuis": record.manual, "checked": ok})
    sample = random.Random(0).sample(records, min(30, len(records)))
    (out / "audit.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
    n = len(images)
    print(f"{n:,} ROCOv2 test captions read ({len(read) - n} rejects); {len(pairs):,} pairs "
          f"= {len(pairs) / n:.2f} per caption; {dropped.get('no_pairs', 0):,} images with no pair")
    print("pairs per template: " + ", ".join(f"{t} {c:,}" for t, c in templates.most_common()))
    yes, no = (sum(c for (_, v), c in yes_no.items() if v == word) for word in ("Yes", "No"))
    print(f"yes/no questions: Yes {yes:,}, No {no:,} (No share {no / max(1, yes + no):.3f}); "
          + ", ".join(f"{t} {yes_no[t, 'Yes']:,}/{yes_no[t, 'No']:,}" for t in sorted({t for t, _ in yes_no})))
    print(f"answers checked against their record: {checked[True]:,} of {len(pairs):,} "
          f"({checked[True] / max(1, len(pairs)):.4f})")
    print(f"synth_vqa: {seconds:.2f} s = {60 * len(pairs) / max(seconds, 1e-9):,.0f} pairs/min")
    print(f"audit: {out / 'audit.jsonl'} ({len(sample)} pairs, seed 0)")
    if args.llm:
        llm_mode(images[: args.llm], out)


def llm_mode(images: list[dict], out: Path) -> None:
    stage = SynthVQA({"mode": "llm"})
    started = time.perf_counter()
    made = stage(columns(images, list(images[0])))
    seconds = time.perf_counter() - started
    kept = [{"question": m[0]["content"], "answer": m[1]["content"], "caption": c}
            for m, meta, c in zip(made["messages"], made["meta"], made["caption"])
            if m and "llm_finding" in (meta or "")]
    (out / "llm_pairs.jsonl").write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in kept))
    spans = sum(1 for r in images if finding_span(r["caption"]))
    drops = {k: v for k, v in stage.counters.items() if k.startswith("llm_")}
    print(f"mode llm on {len(images)} captions ({spans} with a finding span): {len(kept)} pairs kept, not made: "
          + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())) + f"; {seconds:.1f} s; {out / 'llm_pairs.jsonl'}")


if __name__ == "__main__":
    main()
