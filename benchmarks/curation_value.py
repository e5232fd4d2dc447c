"""Benchmark: does curation make a better model? A realistic raw set, curated three ways, the same LoRA recipe at
equal steps with three seeds, scored on held-out sets no variant trained on (``curate ablate`` with ``seeds``).

The raw set is what a user holds before curation (every source licence allows training: FirstAidQA CC BY 4.0,
MedQuAD CC BY 4.0, FM 4-25.11 public domain):

- ``--train-rows`` FirstAidQA pairs (the training side of a near-duplicate group split);
- MedQuAD's CDC collection (../shared/realdata), its documents split into a training and a held-out side; its
  repeated answers stay in;
- pairs the embedded Gemma 3 270M wrote abstractively from FM 4-25.11 pages ``--pages`` (its own questions, its own
  answers from retrieved passages, hallucinations included): ``WORK/abstractive.yaml``;
- pairs of the default synthesis on the same pages (the shipped question writer, extractive answers):
  ``WORK/writer.yaml``.

The two synthesis runs' ``synth_qa`` folders come in through the ``rows`` connector, so their passages and
citations reach the quality stages. ``WORK/pipeline.yaml``: ingest -> heuristics -> grounding -> decontaminate
(every held-out set) -> dedup -> ifd (the embedded Gemma's Instruction-Following Difficulty: drop IFD >= 1, keep the
``--ifd-top`` fraction with the highest IFD). The variants are stage folders of that one run:

- ``raw``: the ingested rows, as a user would train on them;
- ``curated``: after dedup (the default quality stages);
- ``curated-ifd``: after ifd.

Each trains ``finetune/gemma3-270m-cpu-lora.yaml`` (rows cut at ``--max-length`` tokens, ``WORK/recipe.yaml``) for
``--steps`` steps with every seed of ``--seeds``, exported closed-book. Held out (removed from every variant's rows
before export, with the count printed): ``firstaidqa`` (``--held-out`` pairs of FirstAidQA's other side),
``eval-40`` (the 40 FirstAidQA evaluation questions and references), ``eval-40-safety`` (its safety-critical items)
and ``medquad`` (questions of the held-out CDC documents). The measure is the reference answer's NLL per token after the question (lower is better); each set's
table gives every model's mean over seeds and items and its difference against ``raw`` pooled over seeds, with a
95% interval that resamples seeds and items (``curate.evaluate.pooled``), and each seed's own difference. Generated
answers are cut at ``--max-tokens`` (token F1 and ROUGE-L of so short an answer are not a measure here).

The output is saved to ``WORK/curation_value.txt`` (and ``WORK/run/ablate/curation-value/ablation.json``)::

    python benchmarks/curation_value.py [--work runs/curation-value] [--train-rows 400] [--held-out 100]
        [--medquad-held-out 50] [--pages 20-32] [--steps 24] [--max-length 128] [--seeds 0,1,2] [--ifd-top 0.5]
        [--max-tokens 4] [--eval-limit 40] [--seed 0] [--threads N]

Every step is cached: a rerun with the same arguments prints the same table without synthesizing, training or
scoring again.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
FIRSTAID = REALDATA / "qa" / "firstaidqa" / "firstaidqa_v1.json"
EVAL_40 = REALDATA / "qa" / "firstaidqa" / "eval_questions_40.json"
FM = REALDATA / "pdf" / "us_army_FM4-25.11_first_aid.pdf"
RECIPE = REPO / "finetune" / "gemma3-270m-cpu-lora.yaml"
NEAR = 0.5  # question Jaccard that puts two FirstAidQA pairs in one group
MEDQUAD = REALDATA / "qa" / "medquad" / "9_CDC_QA"


def write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` unless ``path`` holds it already: a source's fingerprint includes its mtime, so rewriting the
    same bytes would redo the whole run."""
    if not (path.is_file() and path.read_bytes() == data):
        path.write_bytes(data)


def near_duplicate_groups(questions: list[str], seed: int) -> list[int]:
    """Each question's group: questions joined (transitively) when their word-shingle Jaccard reaches NEAR."""
    from curate.quality.minhash import NearIndex

    index = NearIndex(NEAR, seed=seed, fn_weight=0.8)
    sketches = index.sketch(questions)
    parent = list(range(len(questions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(questions)):
        match = index.best_match(sketches, i)
        if match:
            parent[root(i)] = root(match[0])
        index.add(sketches, i)
    return [root(i) for i in range(len(questions))]


def firstaid_split(train_rows: int, held_out: int, seed: int, out: Path) -> dict:
    """A seeded sample of FirstAidQA split by near-duplicate groups into OUT/train.json and OUT/heldout.json."""
    from curate.export.splits import assign_splits

    items = json.loads(FIRSTAID.read_text())
    sample = [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), train_rows + held_out))]
    groups = near_duplicate_groups([i["question"] for i in sample], seed)
    total = train_rows + held_out
    sides = assign_splits([[f"group:{g}"] for g in groups], {"train": train_rows / total,
                                                               "heldout": held_out / total}, seed)
    parts = {side: [item for item, s in zip(sample, sides) if s == side] for side in ("train", "heldout")}
    for side, rows in parts.items():
        write_if_changed(out / f"{side}.json", json.dumps(rows, ensure_ascii=False).encode())
    return {"sampled": total, "groups": len(set(groups)), "train": len(parts["train"]),
            "heldout": len(parts["heldout"]), "grouped_rows": total - len(set(groups))}


def page_range(first: int, last: int, out: Path) -> Path:
    """Pages FIRST..LAST (1-based, inclusive) of FM 4-25.11 as their own PDF."""
    from pypdf import PdfReader, PdfWriter

    reader, writer = PdfReader(str(FM)), PdfWriter()
    for page in reader.pages[first - 1:last]:
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    path = out / f"fm4-25-11_pages_{first}-{last}.pdf"
    write_if_changed(path, buffer.getvalue())
    return path


def medquad_split(held_out: int, seed: int, out: Path) -> dict:
    """MedQuAD CDC pairs split by document into OUT/medquad-train.json and OUT/medquad-heldout.json (whole
    documents on one side until about ``held_out`` pairs are held out)."""
    from curate.ingest import Reject, SourceSpec, read_source

    items = [r for r in read_source(SourceSpec(name="medquad", kind="medquad", path=MEDQUAD, license="cc-by-4.0"))
             if not isinstance(r, Reject)]
    by_doc: dict[str, list] = {}
    for r in items:
        meta = json.loads(r["meta"])
        by_doc.setdefault(meta["document_id"] or meta["url"] or meta["focus"] or r["id"], []).append(r)
    docs = sorted(by_doc)
    random.Random(seed).shuffle(docs)
    sides: dict[str, list] = {"train": [], "heldout": []}
    for doc in docs:
        side = "heldout" if len(sides["heldout"]) < held_out else "train"
        sides[side] += [{"question": r["messages"][-2]["content"], "answer": r["messages"][-1]["content"]}
                        for r in by_doc[doc]]
    for side, rows in sides.items():
        write_if_changed(out / f"medquad-{side}.json", json.dumps(rows, ensure_ascii=False).encode())
    answers = [r["answer"] for r in sides["train"]]
    return {"pairs": len(items), "documents": len(docs), "train": len(sides["train"]),
            "heldout": len(sides["heldout"]), "repeated_answers": len(answers) - len(set(answers))}


def eval_40_files(out: Path) -> dict:
    """OUT/eval-40.json and OUT/eval-40-safety.json: the 40 evaluation questions with their references, and the
    safety-critical ones."""
    bank = json.loads(EVAL_40.read_text())["questions"]
    every = [{"question": q["question"], "answer": q["reference"]} for q in bank]
    safety = [{"question": q["question"], "answer": q["reference"]} for q in bank if q.get("safety_critical")]
    write_if_changed(out / "eval-40.json", json.dumps(every, ensure_ascii=False).encode())
    write_if_changed(out / "eval-40-safety.json", json.dumps(safety, ensure_ascii=False).encode())
    return {"eval-40": len(every), "eval-40-safety": len(safety)}


def synthesis_files(work: Path, pdf: Path) -> dict[str, Path]:
    """WORK/writer.yaml and WORK/abstractive.yaml: FM pages -> chunk -> index -> synth_qa (the default writer; the
    embedded Gemma abstractively)."""
    files = {}
    for name, synth in (("writer", {}), ("abstractive", {"answer_mode": "abstractive"})):
        pipeline = {"name": f"synth-{name}", "run_dir": f"synth-{name}", "batch_size": 64,
                    "sources": [{"source": "fm-4-25-11-first-aid", "path": str(pdf.relative_to(work))}],
                    "stages": [{"stage": "chunk", "size": 200, "overlap": 40}, {"stage": "index"},
                               {"stage": "synth_qa", "batch_size": 4, **synth}]}
        files[name] = work / f"{name}.yaml"
        write_if_changed(files[name], yaml.safe_dump(pipeline, sort_keys=False).encode())
    return files


def synthesize(work: Path, files: dict[str, Path]) -> dict[str, Path]:
    """Run (or resume) both synthesis pipelines; their synth_qa folders."""
    from curate.cli import main as curate

    out = {}
    for name, path in files.items():
        code = curate(["run", str(path), "--no-progress"])
        if code != 0:
            raise SystemExit(f"the {name} synthesis run failed (exit {code}); see its run folder")
        out[name] = next((work / f"synth-{name}").glob("*-synth_qa"))
    return out


def recipe_file(work: Path, max_length: int) -> Path:
    """WORK/recipe.yaml: the CPU recipe with training rows cut at ``max_length`` tokens (the cost of a step)."""
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["name"] = f"{recipe['name']}-len{max_length}"
    recipe["train"].update(max_length=max_length, eval_steps=None)
    recipe["data"]["eval_split"] = None
    path = work / "recipe.yaml"
    write_if_changed(path, yaml.safe_dump(recipe, sort_keys=False).encode())
    return path


def write_files(work: Path, synth: dict[str, Path], args) -> Path:
    """WORK/pipeline.yaml and WORK/ablation.yaml; returns the ablation file."""
    held = {"firstaidqa": "sources/heldout.json", "eval-40": "sources/eval-40.json",
            "eval-40-safety": "sources/eval-40-safety.json", "medquad": "sources/medquad-heldout.json"}
    pipeline = {
        "name": "curation-value", "run_dir": "run", "batch_size": 64,
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "path": "sources/train.json", "license": "cc-by-4.0"},
                    {"source": "hf_qa", "name": "medquad-cdc", "path": "sources/medquad-train.json",
                     "license": "cc-by-4.0"},
                    *({"source": "rows", "name": f"fm-{name}", "path": str(folder.relative_to(work)),
                       "license": "public-domain", "options": {"kinds": ["qa"]}} for name, folder in synth.items())],
        "stages": [{"stage": "heuristics"}, {"stage": "grounding"},
                   {"stage": "decontaminate",
                    "eval_sets": [{"path": p, "fields": ["question"]} for p in held.values()]},
                   {"stage": "dedup"}, {"stage": "ifd", "max_ifd": 1.0, "keep_top": args.ifd_top}],
        "export": {"format": "messages", "context": "omit", "splits": {"train": 1.0}},
        "finetune": {"recipe": str(recipe_file(work, args.max_length)), "max_steps": args.steps}}
    write_if_changed(work / "pipeline.yaml", yaml.safe_dump(pipeline, sort_keys=False).encode())
    settings = {"shots": 0, "max_tokens_open": args.max_tokens}
    model = {"dtype": "float32", "device": "cpu"}
    ablation = {
        "name": "curation-value", "pipeline": "pipeline.yaml", "reference": "raw",
        "variants": {"raw": {"rows": "ingest"}, "curated": {"rows": "dedup"}, "curated-ifd": {"rows": "ifd"}},
        "seeds": [int(s) for s in args.seeds.split(",")],
        "evaluate": [{"name": name, "set": path, "settings": settings, "model": model,
                      **({"limit": args.eval_limit} if name in ("firstaidqa", "medquad") else {})}
                     for name, path in held.items()]}
    path = work / "ablation.yaml"
    write_if_changed(path, yaml.safe_dump(ablation, sort_keys=False).encode())
    return path


def stages_table(run_dir: Path):
    """The run's stages: rows in and out, drops by reason (which filter removed what)."""
    from rich.table import Table

    from curate.io import read_json

    table = Table(title=f"the run: {run_dir}", title_justify="left")
    for col in ("stage", "rows in", "rows out", "dropped (reason: rows)", "seconds"):
        table.add_column(col, overflow="fold")
    for folder in sorted(p for p in run_dir.glob("[0-9][0-9]-*") if (p / "_stage.json").exists()):
        stats = read_json(folder / "_stage.json")["stats"]
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(stats["dropped"].items(), key=lambda kv: -kv[1]))
        table.add_row(folder.name, str(stats["rows_in"]), str(stats["rows_out"]), dropped or "-",
                      f"{stats['seconds']:.1f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "curation-value")
    parser.add_argument("--train-rows", type=int, default=400, help="FirstAidQA pairs on the training side")
    parser.add_argument("--held-out", type=int, default=100, help="FirstAidQA pairs held out")
    parser.add_argument("--medquad-held-out", type=int, default=50, help="MedQuAD CDC pairs held out (by document)")
    parser.add_argument("--pages", default="20-32", help="FM 4-25.11 pages to synthesize from (1-based, inclusive)")
    parser.add_argument("--steps", type=int, default=24, help="LoRA steps for every variant and seed")
    parser.add_argument("--max-length", type=int, default=128, help="training rows cut at this many tokens")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--ifd-top", type=float, default=0.5, help="fraction kept by the ifd stage")
    parser.add_argument("--eval-limit", type=int, default=40, help="score a seeded sample of this many items of the "
                        "FirstAidQA and MedQuAD held-out sets (all are still removed from training)")
    parser.add_argument("--max-tokens", type=int, default=4, help="tokens generated per open answer (the reference "
                                                                    "NLL needs none)")
    parser.add_argument("--seed", type=int, default=0, help="sample and split seed")
    parser.add_argument("--threads", type=int, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from rich.console import Console

    from curate.deliver.ablate import load_ablation, run_ablation, set_table, variants_table
    from curate.progress import Progress

    started = time.perf_counter()
    work = args.work.resolve()
    (work / "sources").mkdir(parents=True, exist_ok=True)
    split = firstaid_split(args.train_rows, args.held_out, args.seed, work / "sources")
    medquad = medquad_split(args.medquad_held_out, args.seed, work / "sources")
    bank = eval_40_files(work / "sources")
    first, last = (int(p) for p in args.pages.split("-"))
    pdf = page_range(first, last, work / "sources")
    synth = synthesize(work, synthesis_files(work, pdf))
    ablation = load_ablation(write_files(work, synth, args))
    with Progress(enabled=True) as progress:
        result = run_ablation(ablation, progress)

    buffer = io.StringIO()
    out = Console(file=buffer, width=200, record=False)
    out.print(f"curation_value: FirstAidQA sample {split['sampled']} (seed {args.seed}) -> {split['train']} train "
              f"side, {split['heldout']} held out ({split['groups']} near-duplicate groups); MedQuAD CDC "
              f"{medquad['pairs']} pairs of {medquad['documents']} documents -> {medquad['train']} train side "
              f"({medquad['repeated_answers']} repeated answers), {medquad['heldout']} held out; eval-40 "
              f"{bank['eval-40']} items, {bank['eval-40-safety']} safety-critical; FM 4-25.11 pages {first}-{last}; "
              f"{args.steps} steps per variant and seed", markup=False)
    for folder in synth.values():
        out.print(stages_table(folder.parent))
    out.print(stages_table(ablation.plan.run_dir))
    out.print(variants_table(result))
    for name in result["sets"]:
        out.print(set_table(result, name))
    out.print(f"ablation: {result['seconds']:.1f} s this call; benchmark wall time "
              f"{time.perf_counter() - started:.1f} s; command: python benchmarks/curation_value.py --work {args.work} "
              f"--train-rows {args.train_rows} --held-out {args.held_out} --medquad-held-out "
              f"{args.medquad_held_out} --pages {args.pages} --steps {args.steps} --max-length {args.max_length} "
              f"--seeds "
              f"{args.seeds} --ifd-top "
              f"{args.ifd_top} --max-tokens {args.max_tokens} --eval-limit {args.eval_limit} --seed {args.seed} "
              f"--threads {args.threads}", markup=False)
    text = buffer.getvalue()
    print(text)
    (work / "curation_value.txt").write_text(text)


if __name__ == "__main__":
    main()
