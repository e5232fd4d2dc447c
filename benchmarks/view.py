"""``curate view`` on a million-row step: page load times and memory.

Builds, in a temporary folder, a run whose ``02-select`` step holds 1,000,000 kept ``qa`` rows (FirstAidQA's 5,550
real pairs from ../shared/realdata, cycled, each with its own id, in parts of ``--part-rows`` rows as a stage writes
them) and 100,000 rejects over three reasons, then, in a fresh process, serves it with ``curate view`` and times HTTP
page loads: the first page (cold: the part index is built), pages at the start, middle and end, a reject reason
filter (cold: the line index is built; then warm), and a text search (a scan of the text columns). Peak RSS is
printed after an empty baseline (the same server showing a run of one small step) and after the million-row pages.

    python benchmarks/view.py [--rows 1000000] [--part-rows 1024] [--rejects 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.io import summarise_row, write_json
from curate.schema import ARROW_SCHEMA, make_qa

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
REASONS = ("too_short", "duplicate", "contaminated")


def real_rows() -> list[dict]:
    pairs = json.loads((REALDATA / "qa/firstaidqa/firstaidqa_v1.json").read_text())
    return [make_qa(question=p["question"], answer=p["answer"], source="firstaidqa", license="unknown",
                    origin="qa/firstaidqa/firstaidqa_v1.json", locator=str(i)) for i, p in enumerate(pairs)]


def build(run: Path, rows: int, part_rows: int, rejects: int) -> None:
    base = real_rows()
    table = pa.Table.from_pylist(base, schema=ARROW_SCHEMA)
    step = run / "02-select"
    step.mkdir(parents=True)
    written, k = 0, 0
    while written < rows:
        n = min(part_rows, rows - written)
        start = written % len(base)
        piece = table.slice(start, n) if start + n <= len(base) else pa.concat_tables(
            [table.slice(start), table.slice(0, n - (len(base) - start))])
        piece = piece.set_column(0, "id", pa.array([f"{written + i:016x}" for i in range(n)]))
        pq.write_table(piece, step / f"part-{k:05d}.parquet")
        write_json(step / f"shard-{k:05d}.json", {"k": k, "rows_in": n, "rows_out": n, "dropped": {},
                                                 "seconds": 0.01, "counters": {}})
        written, k = written + n, k + 1
    with (step / "rejects.jsonl").open("w") as fh:
        for i in range(rejects):
            row = summarise_row(base[i % len(base)])
            fh.write(json.dumps({"stage": "select", "reason": REASONS[i % 3], "detail": str(i), "id": row["id"],
                                 "batch": i // part_rows, "row": row}, ensure_ascii=False) + "\n")
    dropped = {r: sum(1 for i in range(rejects) if i % 3 == n) for n, r in enumerate(REASONS)}
    write_json(step / "_stage.json", {"fingerprint": "bench", "stats": {
        "stage": "select", "rows_in": rows + rejects, "rows_out": rows, "dropped": dropped, "seconds": 1.0,
        "counters": {}, "wall_seconds": 1.0}})
    small = run.parent / "small" / "02-select"
    small.mkdir(parents=True)
    pq.write_table(table.slice(0, 20), small / "part-00000.parquet")


MEASURE = r'''
import resource, sys, time
from urllib.request import urlopen
from curate.view.runfolder import RunFolder
from curate.view.server import serve_in_thread

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def get(url):
    started = time.perf_counter()
    with urlopen(url) as r:
        assert r.status == 200, r.status
        body = r.read()
    return time.perf_counter() - started, len(body)

small, url = serve_in_thread(RunFolder(sys.argv[2]))
for path in ("/", "/step/02-select", "/step/02-select?offset=10"):
    get(url + path)
print(f"baseline (server, a 20-row step shown)       peak RSS {rss():8.1f} MiB")
big, url = serve_in_thread(RunFolder(sys.argv[1]))
rows = int(sys.argv[3])
for label, path in (("first page (cold: part index)", "/step/02-select"),
                    ("page at the start", "/step/02-select?offset=20"),
                    ("page in the middle", f"/step/02-select?offset={rows // 2}"),
                    ("page at the end", f"/step/02-select?offset={rows - 20}"),
                    ("the run's funnel", "/"),
                    ("reason filter (cold: line index)", "/step/02-select?show=rejects&reason=duplicate"),
                    ("reason filter, page in the middle", "/step/02-select?show=rejects&reason=duplicate&offset=16000"),
                    ("reason filter, other reason", "/step/02-select?show=rejects&reason=contaminated&offset=20"),
                    ("text search (scans text columns)", "/step/02-select?q=tourniquet"),
                    ("text search, next page (cached)", "/step/02-select?q=tourniquet&offset=20")):
    seconds, size = get(url + path)
    print(f"{label:45s} {seconds * 1000:8.1f} ms  {size / 1024:7.1f} KiB  peak RSS {rss():8.1f} MiB")
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=1024)
    parser.add_argument("--rejects", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        started = time.perf_counter()
        build(run, args.rows, args.part_rows, args.rejects)
        size = sum(f.stat().st_size for f in (run / "02-select").iterdir()) / 2**20
        print(f"built {args.rows:,} rows in {len(list((run / '02-select').glob('part-*')))} parts and "
              f"{args.rejects:,} rejects ({size:,.0f} MiB) in {time.perf_counter() - started:.1f} s")
        subprocess.run([sys.executable, "-c", MEASURE, str(run), str(Path(tmp) / "small"), str(args.rows)],
                       check=True)


if __name__ == "__main__":
    main()
