"""VQA pairs from ROCOv2 captions and concepts: pairs per caption, the yes/no balance of closed questions, the share of
answers checked against their record, and pairs per minute; 30 pairs sampled to an audit file to read by hand.

Reads ``../shared/realdata/rocov2`` in place (test split: 9,927 captions, their concepts, manual concepts and the CUI
mapping) through the real ``rocov2`` connector and ``synth_vqa`` stage with every template. The images are not
needed to write pairs, so each ID gets the same 8x8 JPEG in a temporary folder. The check of each answer against its
record is independent of the stage's code: caption-derived answers (caption, finding, evidence) must be the
caption's own words (a finding: its words in the caption's order); modality answers must name exactly the record's
modality CUIs; region answers its one manual region concept; findings answers its concept names.

With ``--llm N`` it then runs ``mode: llm`` (the embedded Gemma 3 270M writes the question of each caption-span
answer) on the first N captions and prints what was kept and why the rest was not, writing the kept pairs to
``llm_pairs.jsonl`` to read.

    python benchmarks/vqa_synth.py [--limit N] [--llm N]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from curate.ingest import rocov2
from curate.ingest.base import SourceSpec
from curate.rag.vqa import REGION_CUIS, SynthVQA, finding_span
from curate.schema import MODALITY_CUIS
from curate.stage import DROP, columns

ROCO = (Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "rocov2").resolve()
WORDS = {"CT": "computed tomography", "X-ray": "x-ray", "MRI": "magnetic resonance", "Ultrasound": "ultrasonography",
         "Angiography": "angiography", "PET": "positron emission"}


def _tokens(text: str) -> list[str]:
    """Lower-cased words, split where captions glue words together ("SinusPSAA" -> sinus, psaa)."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", text)]


def grounded(template: str, question: str, answer: str, image: dict) -> bool:
    """Whether ``answer`` says only what the image's record states (see the module docstring)."""
    caption = image["caption"]
    if template == "caption":
        return answer == caption
    if template == "finding":  # the answer's words are the caption's, in the caption's order
        said, words = _tokens(answer), iter(_tokens(caption))
        return all(w in words for w in said)
    if template == "evidence":
        return answer.startswith("Yes. ") and answer[5:] in caption
    if template in ("modality", "closed_modality"):
        said = {m for m, word in WORDS.items() if word in answer.lower()}
        return said == {MODALITY_CUIS[c] for c in image["cuis"] if c in MODALITY_CUIS}
    if template in ("region", "closed_region"):
        regions = {REGION_CUIS[c] for c in json.loads(image["meta"])["manual_cuis"] or [] if c in REGION_CUIS}
        return len(regions) == 1 and f"the {regions.pop()}." in answer.lower()
    if template == "findings":
        names = [n for c, n in zip(image["cuis"], image["cui_names"] or []) if c not in MODALITY_CUIS and n]
        return answer == f"The image shows {'; '.join(dict.fromkeys(names))}." or all(
            n in answer for n in names)
    raise ValueError(template)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None)
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
    made = SynthVQA({})(columns(images, list(images[0])))
    seconds = time.perf_counter() - started
    by_id = {r["id"]: r for r in images}
    pairs = [dict(zip(made, values)) for values in zip(*made.values())]
    dropped = Counter(p[DROP] for p in pairs if p.get(DROP))
    pairs = [p for p in pairs if not p.get(DROP)]
    templates, closed, checked = Counter(), Counter(), Counter()
    records = []
    for p in pairs:
        meta = json.loads(p["meta"])
        template, (question, answer) = meta["template"], (m["content"] for m in p["messages"])
        image = by_id[meta["image_id"]]
        templates[template] += 1
        if template.startswith("closed"):
            closed[answer.split(".")[0]] += 1
        ok = grounded(template, question, answer, image)
        checked[ok] += 1
        records.append({"template": template, "question": question, "answer": answer, "caption": image["caption"],
                        "cuis": image["cuis"], "cui_names": image["cui_names"], "modality": image["modality"],
                        "manual_cuis": json.loads(image["meta"])["manual_cuis"], "checked": ok})
    sample = random.Random(0).sample(records, min(30, len(records)))
    (out / "audit.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
    n = len(images)
    print(f"{n:,} ROCOv2 test captions read ({len(read) - n} rejects); {len(pairs):,} pairs "
          f"= {len(pairs) / n:.2f} per caption; {dropped.get('no_pairs', 0):,} images with no pair")
    print("pairs per template: " + ", ".join(f"{t} {c:,}" for t, c in templates.most_common()))
    print(f"closed questions: Yes {closed['Yes']:,}, No {closed['No']:,} "
          f"(No share {closed['No'] / max(1, sum(closed.values())):.3f})")
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
