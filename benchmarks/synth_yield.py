"""Yield of grounded QA synthesis on the embedded Gemma 3 270M, per document and question source, each followed by the
default filters, in one run.

    python benchmarks/synth_yield.py [--docs fm:100-140:40,who:10-40:30,wash:1-2:0] [--modes writer,templates]
                                     [--audit 40] [--out runs/bench-synth-yield] [--writer '{"min_margin": 1}']
                                     [--chunk-seed 0]

Documents (``../shared/realdata``; ``key:pages:chunks``, 0 chunks = every chunk of the pages):

- ``fm``: US Army FM 4-25.11 First Aid (the templates were written on pp. 40-60 of it; the default range avoids them);
- ``who``: WHO Psychological First Aid (advice, not instructions);
- ``wash``: WHO Health EDRM WASH fact sheet (2 pages);
- ``cdc``: CDC health pages as MedQuAD keeps them (``qa/medquad/9_CDC_QA``, CC BY 4.0): each of its 59 documents is
  one "page", its focus as a heading line and then its answers' text in order (MedQuAD's questions are not used).

Setup (not timed): each document's pages are read by the PDF connector, chunked and indexed as ``curate index`` does
(size 200, overlap 40) into one index (the retrieval corpus of every document); ``chunks`` of each document, sampled
with a fixed seed, are the synthesis input. Modes: ``writer`` (the default for the embedded model: the shipped
question writer, up to 5 units per chunk), ``writer-3units`` (at most 3, the earlier default), ``writer-1thread`` (the
writer on one llama.cpp thread, the earlier default on a 2-core machine: printed as a speed ratio beside ``writer``,
with whether both kept the same pairs), ``templates``, ``both`` (templates, and the base model prompted few-shot where
none fits), ``abstractive``. Each runs ``synth_qa`` (defaults but the mode; batches of 8 chunks) -> ``heuristics`` ->
``grounding`` -> ``dedup`` through the runner as a pipeline does. Timed: synthesis (model loaded inside the stage, as
in a run) and the filters.

Printed per document and mode: chunks, pairs out of synthesis, kept pairs after the filters, kept per chunk, kept
pairs per minute of synthesis + filter time, generated tokens per second; drops by stage and reason. Writes
OUT/audit-<mode>-<doc>.jsonl: ``--audit`` kept pairs sampled at random (fixed seed), each with its question, answer,
cited chunk text and pages and an empty ``verdict`` for a person to fill in (``benchmarks/synth_labels.py`` reads
them back).
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
from curate.orchestrate import index_folder
from curate.rowsteps import StageStep, run_stages
from curate.schema import ARROW_SCHEMA, make_page
from curate.stage import stage_class
from curate.steps import file_state, fingerprint

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
DOCS = {"fm": "pdf/us_army_FM4-25.11_first_aid.pdf", "who": "pdf/who_psychological_first_aid_field_workers_2011.pdf",
        "wash": "pdf/who_health_edrm_wash_factsheet_2017.pdf", "cdc": "qa/medquad/9_CDC_QA"}
FILTERS = ("heuristics", "grounding", "dedup")
MODES = {"writer": {"question_source": "writer"}, "writer-3units": {"question_source": "writer", "units_per_chunk": 3},
         "writer-1thread": {"question_source": "writer", "writer": {"n_threads": 1}},
         "templates": {"question_source": "templates"},
         "both": {"question_source": "both"}, "abstractive": {"answer_mode": "abstractive"}}


def read(folder: Path) -> list[dict]:
    files = sorted(folder.glob("part-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def write_rows(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / "part-00000.parquet", {c: [r.get(c) for r in rows] for c in ARROW_SCHEMA.names},
                  ARROW_SCHEMA)


def parse_docs(text: str) -> dict[str, tuple[range, int]]:
    out = {}
    for item in text.split(","):
        key, pages, n = item.split(":")
        first, last = (int(x) for x in pages.split("-"))
        out[key] = (range(first, last + 1), int(n))
    return out


def doc_pages(key: str) -> list[dict]:
    """The document's page rows: a PDF's pages, or one page per MedQuAD document (its focus, then its answers)."""
    path = REALDATA / DOCS[key]
    if path.suffix == ".pdf":
        spec = SourceSpec(name=f"bench-{key}", kind="pdf", path=path, license="see PROVENANCE.md")
        return [r for r in read_source(spec) if isinstance(r, dict)]
    spec = SourceSpec(name=f"bench-{key}", kind="medquad", path=path, license="cc-by-4.0")
    answers: dict[str, list[str]] = {}
    focus: dict[str, str] = {}
    for r in read_source(spec):
        if isinstance(r, dict):
            doc = Path(r["provenance"]["origin"]).stem  # the XML file (some lack a document id)
            answers.setdefault(doc, []).append(r["messages"][-1]["content"])
            focus[doc] = json.loads(r["meta"])["focus"] or ""
    return [make_page(text="\n\n".join([focus[doc], *texts]), doc_id=f"{key}-{doc}", page=n, source=f"bench-{key}",
                      license="cc-by-4.0", origin=f"{DOCS[key]}/{doc}.xml")
            for n, (doc, texts) in enumerate(sorted(answers.items()), 1)]


def prepare(out: Path, docs: dict[str, tuple[range, int]], seed: int = 0) -> tuple[Path, dict[str, Path]]:
    """One index over every document's pages; per document a folder of its input chunks, sampled with ``seed``."""
    rows = []
    for key, (pages, _) in docs.items():
        rows += [r for r in doc_pages(key) if r["page"] in pages]
    write_rows(out / "pages", rows)
    index_folder(out / "pages", out / "index", {"size": 200, "overlap": 40})
    chunks = read(out / "index" / "chunks")
    inputs = {}
    for key, (_, n) in docs.items():
        mine = [c for c in chunks if c["source"] == f"bench-{key}" and c["kind"] == "chunk"]
        chosen = sorted(random.Random(seed).sample(mine, n) if 0 < n < len(mine) else mine, key=lambda c: c["id"])
        write_rows(out / f"input-{key}", chosen)
        inputs[key] = out / f"input-{key}"
    return out / "index", inputs


def run_mode(mode: str, index: Path, source: Path, root: Path, writer: dict | None = None) -> dict:
    """synth_qa in ``mode`` (``writer``: settings of its question writer) then the default filters; the stage
    stats, timings and kept rows."""
    settings = {**MODES[mode], "index": str((index / "chroma").resolve())}
    if writer or "writer" in settings:
        settings["writer"] = {**settings.get("writer", {}), **(writer or {})}
    synth = stage_class("synth_qa")(settings)
    steps = [StageStep("01-synth_qa", synth, batch_size=8)]
    steps += [StageStep(f"{i:02d}-{name}", stage_class(name)({}), 64) for i, name in enumerate(FILTERS, 2)]
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    stats, ctx = run_stages(steps, source, root, fingerprint(file_state(source)))
    seconds = time.perf_counter() - start
    return {"stats": stats, "seconds": seconds, "kept": read(ctx.rows), "root": root}


def audit(result: dict, index: Path, n: int, path: Path) -> None:
    chunks = {c["id"]: c for c in read(index / "chunks")}
    kept = sorted(result["kept"], key=lambda r: r["id"])
    sample = random.Random(0).sample(kept, min(n, len(kept)))
    with path.open("w") as f:
        for row in sample:
            meta = json.loads(row["meta"])
            f.write(json.dumps({
                "id": row["id"], "question": row["messages"][0]["content"], "answer": row["messages"][1]["content"],
                "source_chunk": chunks[meta["chunk_id"]]["text"] if meta.get("chunk_id") in chunks else None,
                "pages": [[c["page"], c["page_end"]] for c in row["citations"] or []],
                "written": meta.get("written"), "round_trip": meta.get("round_trip"),
                "verdict": None}, ensure_ascii=False) + "\n")


def report(doc: str, mode: str, result: dict, n_chunks: int) -> dict:
    stats = result["stats"]
    synth = stats[0]
    kept, minutes = len(result["kept"]), result["seconds"] / 60
    tokens = synth.counters.get("tokens_generated", 0)
    return {"doc": doc, "mode": mode, "chunks": n_chunks, "synth_pairs": synth.rows_out, "kept": kept,
            "kept_per_chunk": round(kept / max(n_chunks, 1), 2), "kept_per_minute": round(kept / minutes, 1),
            "synth_seconds": round(synth.seconds, 1), "total_seconds": round(result["seconds"], 1),
            "tokens_per_second": round(tokens / max(synth.seconds, 1e-9), 1),
            "kept_pairs": sorted((r["messages"][0]["content"], r["messages"][1]["content"]) for r in result["kept"]),
            "drops": {s.stage: dict(s.dropped) for s in stats if s.dropped},
            "units_skipped": {k: v for k, v in synth.counters.items() if k.startswith("units_skipped_")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="fm:100-140:40,who:10-40:30,wash:1-2:0")
    parser.add_argument("--modes", default="writer,templates")
    parser.add_argument("--audit", type=int, default=40)
    parser.add_argument("--out", default="runs/bench-synth-yield")
    parser.add_argument("--chunk-seed", type=int, default=0,
                        help="seed of the chunk sample (another seed reads other chunks of the same pages)")
    parser.add_argument("--writer", type=json.loads, default=None,
                        help="settings of synth_qa's question writer, as JSON: "
                             '\'{"adapter": "DIR", "min_margin": 1}\'')
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = parse_docs(args.docs)
    index, inputs = prepare(out, docs, args.chunk_seed)
    rows = []
    for mode in args.modes.split(","):
        for doc, source in inputs.items():
            n_chunks = len(read(source))
            result = run_mode(mode, index, source, out / f"{mode}-{doc}", args.writer)
            audit(result, index, args.audit, out / f"audit-{mode}-{doc}.jsonl")
            rows.append(report(doc, mode, result, n_chunks))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "kept_pairs"}), flush=True)
    print(f"\n{'doc':<5} {'mode':<12} {'chunks':>6} {'synth':>6} {'kept':>5} {'kept/chunk':>10} {'kept/min':>9} "
          f"{'synth s':>8} {'total s':>8} {'tok/s':>7}")
    for r in rows:
        print(f"{r['doc']:<5} {r['mode']:<12} {r['chunks']:>6} {r['synth_pairs']:>6} {r['kept']:>5} "
              f"{r['kept_per_chunk']:>10} {r['kept_per_minute']:>9} {r['synth_seconds']:>8} {r['total_seconds']:>8} "
              f"{r['tokens_per_second']:>7}")
    by = {(r["doc"], r["mode"]): r for r in rows}
    for (doc, mode), r in by.items():
        if mode.endswith("-1thread") and (doc, mode[:-len("-1thread")]) in by:
            base, fast = r, by[(doc, mode[:-len("-1thread")])]
            print(f"{doc}: {fast['mode']} (threads: default) / {mode}: kept/min x"
                  f"{fast['kept_per_minute'] / max(base['kept_per_minute'], 1e-9):.2f}, synthesis seconds "
                  f"x{base['synth_seconds'] / max(fast['synth_seconds'], 1e-9):.2f} faster; same kept pairs: "
                  f"{fast['kept_pairs'] == base['kept_pairs']}")
    for r in rows:
        print(f"drops ({r['doc']}, {r['mode']}): {json.dumps(r['drops'])}")
    print(f"audit files: {out}/audit-<mode>-<doc>.jsonl")


if __name__ == "__main__":
    main()
