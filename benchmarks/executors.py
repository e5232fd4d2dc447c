"""Rows per second of each row stage under the serial, processes and Ray executors, in one run, on one pipeline.

The pipeline (``tests/test_executors.py``'s, every row): FirstAidQA (5,550 pairs), MedQA test (1,273 questions) and
the pages of FM 4-25.11 and WHO PFA, read in place from ../shared/realdata; then chunk, decontaminate (against a held-out half of MedQA's questions),
heuristics, pii, grounding and dedup. Each executor runs the same pipeline into its own run folder (ingest is
shared: it is copied, not re-read, so only the stages are timed). Printed per stage and executor: rows in, seconds,
rows/s, the speed-up over serial, and ``setups`` (how many times the
stage's ``setup()`` ran: the model and index loads). Seconds are the step's wall clock (``wall_seconds``: reading,
scheduling, workers starting and writing included); ``work s`` is the time inside the stage summed over batches, so
wall minus work divided by workers is roughly what starting the workers and moving batches cost. Outputs are checked identical to serial before any number is
printed.

    python benchmarks/executors.py [--workers 2] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from curate.executors import ExecutorSpec
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import load_plan

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()
sys.path.insert(0, str(REPO / "tests"))
from test_executors import pipeline  # noqa: E402 (the tests' pipeline, every row: one definition for both)


def signature(run: Path) -> dict:
    """What must not depend on the executor: every stage's kept rows (ids in order), rejects and counts."""
    out = {}
    for folder in sorted(p for p in run.glob("[0-9][0-9]-*") if p.name != "01-ingest"):
        stats = json.loads((folder / "_stage.json").read_text())["stats"]
        ids = [i for p in sorted(folder.glob("part-*.parquet")) for i in pq.read_table(p, columns=["id"])["id"]]
        out[folder.name] = (ids, read_jsonl(folder / "rejects.jsonl"), stats["rows_in"], stats["rows_out"],
                            stats["dropped"], {k: v for k, v in stats["counters"].items() if k != "setups"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default="runs/bench-executors")
    args = ap.parse_args()
    root = Path(args.out).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    path = pipeline(root, REALDATA, args.batch_size, sample=False)
    executors = {"serial": ExecutorSpec(),
                 f"processes({args.workers})": ExecutorSpec(kind="processes", workers=args.workers),
                 f"ray({args.workers} CPUs)": ExecutorSpec(kind="ray", workers=args.workers, num_cpus=args.workers)}
    reports, walls = {}, {}
    for i, (label, spec) in enumerate(executors.items()):
        run = root / f"run-{i}"
        if i:  # the same ingest output (and fingerprint): only the stages run again
            shutil.copytree(root / "run-0" / "01-ingest", run / "01-ingest")
        started = time.perf_counter()
        reports[label] = run_plan(load_plan(path, run), executor=spec)
        walls[label] = time.perf_counter() - started
        if i and signature(run) != signature(root / "run-0"):
            raise SystemExit(f"{label} wrote different rows, rejects or counts than serial")
    print(f"pipeline {path} · batch_size {args.batch_size} · outputs identical to serial for every executor\n")
    header = f"{'stage':<16}{'rows in':>9}" + "".join(f"{label:>50}" for label in executors)
    print(header)
    print(f"{'':<25}" + "".join(f"{'wall s · work s · rows/s · x serial · setups':>50}" for _ in executors))
    serial = reports["serial"]
    for k, base in enumerate(serial.stages):
        if base.stage == "ingest":
            continue
        cells = []
        for label in executors:
            s = reports[label].stages[k]
            rate = s.rows_in / max(s.wall_seconds, 1e-9)
            ratio = base.wall_seconds / max(s.wall_seconds, 1e-9)
            cells.append(f"{s.wall_seconds:6.1f} · {s.seconds:6.1f} · {rate:8,.0f} · {ratio:5.2f} · "
                         f"{s.counters.get('setups', 0):3d}")
        print(f"{base.stage:<16}{base.rows_in:>9,}" + "".join(f"{c:>50}" for c in cells))
    print(f"{'run (stages)':<25}" + "".join(f"{walls[label]:>42.1f} s wall" for label in executors))


if __name__ == "__main__":
    main()
