"""Yield of grounded QA synthesis on the embedded Gemma 3 270M: abstractive vs extractive (answer-first) on the same
real chunks, each followed by the default filters, in one run.

    python benchmarks/synth_yield.py [--fm-pages 40-60] [--fm-chunks 20] [--who-pages 10-30] [--who-chunks 10]
                                     [--audit 30] [--out runs/bench-synth-yield]
                                     [--modes abstractive,extractive,extractive/both]

Setup (not timed): pages of FM 4-25.11 and of WHO Psychological First Aid (``../shared/realdata/pdf``) are read by
the PDF connector, chunked and indexed as ``curate index`` does (size 200, overlap 40); the first ``--fm-chunks`` and
``--who-chunks`` chunks are the synthesis input, every chunk of the page ranges is the retrieval corpus. Each mode
then runs ``synth_qa`` (defaults but ``answer_mode``, and ``question_source`` for ``extractive/SOURCE``: the default
for the embedded base model is ``templates``, ``both`` adds questions the LLM writes; batches of 8 chunks) -> ``heuristics`` -> ``grounding`` ->
``dedup`` with default settings, through the runner as a pipeline does. Timed: synthesis (model loaded inside the
stage, as in a run) and the filters.

Printed per mode: chunks, pairs out of synthesis, kept pairs after the filters, kept pairs per chunk, kept pairs per
minute of synthesis + filter time, generated tokens per second, and drops by stage and reason; then the ratio of
kept pairs per minute, extractive / abstractive. Writes OUT/audit-<mode>.jsonl: ``--audit`` kept pairs per mode,
sampled with a fixed seed, each with its question, answer, cited chunk text and pages, for a person to read.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq

from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.io import write_parquet
from curate.pipeline import PlannedStage
from curate.rag import index_folder
from curate.runner import file_state, fingerprint, run_stages
from curate.schema import ARROW_SCHEMA
from curate.stage import stage_class

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "pdf"
DOCS = {"fm": "us_army_FM4-25.11_first_aid.pdf", "who": "who_psychological_first_aid_field_workers_2011.pdf"}
FILTERS = ("heuristics", "grounding", "dedup")


def slug(mode: str) -> str:
    return mode.replace("/", "-")


def page_range(text: str) -> range:
    first, last = (int(x) for x in text.split("-"))
    return range(first, last + 1)


def read(folder: Path) -> list[dict]:
    files = sorted(folder.glob("part-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def write_rows(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / "part-00000.parquet", {c: [r.get(c) for r in rows] for c in ARROW_SCHEMA.names},
                  ARROW_SCHEMA)


def prepare(out: Path, pages: dict[str, range], n_chunks: dict[str, int]) -> tuple[Path, Path, int]:
    """Index the page ranges; returns (index folder, synthesis input folder, number of input chunks)."""
    rows = []
    for key, name in DOCS.items():
        spec = SourceSpec(name=f"bench-{key}", kind="pdf", path=REALDATA / name, license="see PROVENANCE.md")
        rows += [r for r in read_source(spec) if isinstance(r, dict) and r["page"] in pages[key]]
    write_rows(out / "pages", rows)
    index_folder(out / "pages", out / "index", {"size": 200, "overlap": 40})
    chunks = read(out / "index" / "chunks")
    chosen = [c for key in DOCS for c in [c for c in chunks if c["source"] == f"bench-{key}"][:n_chunks[key]]]
    write_rows(out / "input", chosen)
    return out / "index", out / "input", len(chosen)


def run_mode(mode: str, index: Path, source: Path, root: Path) -> dict:
    """synth_qa (``mode``: an answer_mode, or ``extractive/SOURCE`` for a question_source) then the default filters;
    returns the stage stats and timings."""
    answer_mode, _, question_source = mode.partition("/")
    config = {"answer_mode": answer_mode, "index": str((index / "chroma").resolve())}
    synth = stage_class("synth_qa")({**config, **({"question_source": question_source} if question_source else {})})
    stages = [PlannedStage("01-synth_qa", synth, batch_size=8)]
    stages += [PlannedStage(f"{i:02d}-{name}", stage_class(name)({})) for i, name in enumerate(FILTERS, 2)]
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    stats, last, _ = run_stages(stages, source, root, fingerprint(file_state(source)), 64)
    seconds = time.perf_counter() - start
    return {"stats": stats, "seconds": seconds, "kept": read(last), "root": root}


def audit(result: dict, index: Path, n: int, path: Path) -> None:
    chunks = {c["id"]: c for c in read(index / "chunks")}
    kept = sorted(result["kept"], key=lambda r: r["id"])
    sample = random.Random(0).sample(kept, min(n, len(kept)))
    with path.open("w") as f:
        for row in sample:
            meta = json.loads(row["meta"])
            f.write(json.dumps({
                "id": row["id"], "question": row["messages"][0]["content"], "answer": row["messages"][1]["content"],
                "citations": [{**c, "text": chunks[c["chunk_id"]]["text"]} for c in row["citations"] or []],
                "chunk_id": meta.get("chunk_id"), "round_trip": meta.get("round_trip"),
                "verdict": None}, ensure_ascii=False) + "\n")


def report(mode: str, result: dict, n_chunks: int) -> dict:
    stats = result["stats"]
    synth = stats[0]
    kept, minutes = len(result["kept"]), result["seconds"] / 60
    drops = {s.stage: dict(s.dropped) for s in stats if s.dropped}
    tokens = synth.counters.get("tokens_generated", 0)
    return {"mode": mode, "chunks": n_chunks, "synth_pairs": synth.rows_out, "kept": kept,
            "kept_per_chunk": round(kept / n_chunks, 2), "kept_per_minute": round(kept / minutes, 2),
            "synth_seconds": round(synth.seconds, 1), "total_seconds": round(result["seconds"], 1),
            "tokens_per_second": round(tokens / max(synth.seconds, 1e-9), 1), "drops": drops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fm-pages", default="40-60")
    parser.add_argument("--fm-chunks", type=int, default=20)
    parser.add_argument("--who-pages", default="10-30")
    parser.add_argument("--who-chunks", type=int, default=10)
    parser.add_argument("--audit", type=int, default=30)
    parser.add_argument("--modes", default="abstractive,extractive,extractive/both")
    parser.add_argument("--out", default="runs/bench-synth-yield")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index, source, n_chunks = prepare(out, {"fm": page_range(args.fm_pages), "who": page_range(args.who_pages)},
                                      {"fm": args.fm_chunks, "who": args.who_chunks})
    print(f"{n_chunks} input chunks (FM 4-25.11 pages {args.fm_pages}, WHO PFA pages {args.who_pages})")
    rows = []
    for mode in args.modes.split(","):
        result = run_mode(mode, index, source, out / slug(mode))
        audit(result, index, args.audit, out / f"audit-{slug(mode)}.jsonl")
        rows.append(report(mode, result, n_chunks))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'mode':<12} {'chunks':>6} {'synth':>6} {'kept':>5} {'kept/chunk':>10} {'kept/min':>9} "
          f"{'synth s':>8} {'total s':>8} {'tok/s':>7}")
    for r in rows:
        print(f"{r['mode']:<12} {r['chunks']:>6} {r['synth_pairs']:>6} {r['kept']:>5} {r['kept_per_chunk']:>10} "
              f"{r['kept_per_minute']:>9} {r['synth_seconds']:>8} {r['total_seconds']:>8} {r['tokens_per_second']:>7}")
    by = {r["mode"]: r for r in rows}
    if {"abstractive", "extractive"} <= set(by):
        base = by["abstractive"]["kept_per_minute"]
        ratio = by["extractive"]["kept_per_minute"] / base if base else float("inf")
        print(f"kept pairs per minute, extractive / abstractive: {ratio:.1f}x")
    for r in rows:
        print(f"drops ({r['mode']}): {json.dumps(r['drops'])}")
    print(f"audit files: {', '.join(str(out / f'audit-{slug(m)}.jsonl') for m in by)}")


if __name__ == "__main__":
    main()
