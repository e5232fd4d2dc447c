"""Benchmark: does curation make a better model? Raw vs curated rows of one run, the same LoRA recipe at equal
steps, scored on held-out first-aid questions (``curate ablate``).

The run (``WORK/pipeline.yaml``): a seeded sample of FirstAidQA (../shared/realdata, CC BY 4.0) plus pages
``--pages`` of FM 4-25.11 (public domain) -> chunk -> index -> ``synth_qa`` with its default configuration (the
embedded Gemma 3 270M on llama.cpp) -> heuristics -> grounding -> decontaminate (against both held-out sets) ->
dedup. The ablation (``WORK/ablation.yaml``) trains ``finetune/gemma3-270m-cpu-lora.yaml`` for ``--steps`` steps
(same seed) on ``raw`` (the rows as synthesis left them: FirstAidQA pairs and every synthesized pair) and on
``curated`` (the run's final rows, what ``export`` trains on), both exported closed-book, and scores the base model
and both adapters with the same prompts on

- ``firstaidqa-heldout``: ``--held-out`` FirstAidQA pairs kept out of the sample's training part by a group split
  (pairs whose questions are near-duplicates, word-shingle Jaccard >= 0.5, share a group, and a group is never on
  both sides);
- ``eval-40``: the 40 FirstAidQA evaluation questions with their reference answers.

The ablation also removes from every variant any training row that overlaps a held-out question, and prints how
many. The numbers are the ablation's table: each model's metrics with 95% bootstrap intervals and each model minus
``raw`` with paired intervals and an exact paired test; the stages' drops by reason say which filter removed what.
The output is saved to ``WORK/curation_value.txt`` (and ``WORK/run/ablate/curation-value/ablation.json``)::

    python benchmarks/curation_value.py [--work runs/curation-value] [--train-rows 600] [--held-out 100]
                                        [--pages 20-40] [--steps 20] [--max-tokens 32] [--eval-limit N]
                                        [--seed 0] [--threads N]

Every step is cached: a rerun with the same arguments prints the same table without training or scoring again.
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


def write_files(work: Path, pdf: Path, steps: int, max_tokens: int, eval_limit: int | None) -> Path:
    """WORK/pipeline.yaml and WORK/ablation.yaml; returns the ablation file."""
    heldout = {"path": "sources/heldout.json", "fields": ["question"]}
    eval_40 = {"source": "firstaidqa-eval-40", "path": str(EVAL_40), "fields": ["question"]}
    pipeline = {
        "name": "curation-value", "run_dir": "run", "batch_size": 64,
        "sources": [{"source": "firstaidqa", "path": "sources/train.json"},
                    {"source": "fm-4-25-11-first-aid", "path": str(pdf.relative_to(work))}],
        "stages": [{"stage": "chunk", "size": 200, "overlap": 40}, {"stage": "index"},
                   {"stage": "synth_qa", "batch_size": 4}, {"stage": "heuristics"}, {"stage": "grounding"},
                   {"stage": "decontaminate", "eval_sets": [heldout, eval_40]}, {"stage": "dedup"}],
        "export": {"format": "messages", "context": "omit", "splits": {"train": 0.95, "validation": 0.05}},
        "finetune": {"recipe": str(RECIPE), "max_steps": steps}}
    write_if_changed(work / "pipeline.yaml", yaml.safe_dump(pipeline, sort_keys=False).encode())
    settings = {"shots": 0, "max_tokens_open": max_tokens}
    model = {"dtype": "float32", "device": "cpu"}
    ablation = {
        "name": "curation-value", "pipeline": "pipeline.yaml", "reference": "raw",
        "variants": {"raw": {"rows": "synth_qa"}, "curated": {"rows": "final"}},
        "evaluate": [{"name": "firstaidqa-heldout", "set": "sources/heldout.json", "limit": eval_limit,
                      "settings": settings, "model": model},
                     {"name": "eval-40", "set": "firstaidqa-eval-40", "path": str(EVAL_40), "settings": settings,
                      "model": model}]}
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
    parser.add_argument("--train-rows", type=int, default=600, help="FirstAidQA pairs on the training side")
    parser.add_argument("--held-out", type=int, default=100, help="FirstAidQA pairs held out")
    parser.add_argument("--pages", default="20-40", help="FM 4-25.11 pages to synthesize from (1-based, inclusive)")
    parser.add_argument("--steps", type=int, default=20, help="LoRA steps for every variant")
    parser.add_argument("--eval-limit", type=int, help="score a seeded sample of this many held-out FirstAidQA pairs "
                                                         "(all are still removed from training)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per open answer (token F1, "
                                                                     "ROUGE-L; reference NLL needs none)")
    parser.add_argument("--seed", type=int, default=0, help="sample and split seed")
    parser.add_argument("--threads", type=int, help="torch threads (1 avoids oversubscribing a shared machine)")
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
    first, last = (int(p) for p in args.pages.split("-"))
    ablation = load_ablation(write_files(work, page_range(first, last, work / "sources"), args.steps,
                                         args.max_tokens, args.eval_limit))
    with Progress(enabled=True) as progress:
        result = run_ablation(ablation, progress)

    buffer = io.StringIO()
    out = Console(file=buffer, width=180, record=False)
    out.print(f"curation_value: FirstAidQA sample {split['sampled']} (seed {args.seed}) -> {split['train']} train "
              f"side, {split['heldout']} held out ({split['groups']} near-duplicate groups, {split['grouped_rows']} "
              f"rows share a group); FM 4-25.11 pages {first}-{last}; {args.steps} steps per variant", markup=False)
    out.print(stages_table(ablation.plan.run_dir))
    out.print(variants_table(result))
    for name in result["sets"]:
        out.print(set_table(result, name))
    out.print(f"ablation: {result['seconds']:.1f} s this call; benchmark wall time "
              f"{time.perf_counter() - started:.1f} s; command: python benchmarks/curation_value.py --work {args.work} "
              f"--train-rows {args.train_rows} --held-out {args.held_out} --pages {args.pages} --steps {args.steps} "
              f"--max-tokens {args.max_tokens} --eval-limit {args.eval_limit} --seed {args.seed} --threads "
              f"{args.threads}", markup=False)
    text = buffer.getvalue()
    print(text)
    (work / "curation_value.txt").write_text(text)


if __name__ == "__main__":
    main()
