"""Which of synth_qa's scores separates correct writer pairs from wrong ones, read from pairs a person labelled.

    python benchmarks/synth_labels.py benchmarks/labels/*.jsonl [--logprobs none,-1,-0.8,-0.6] [--margins 0,1,2]
                                      [--similarities 0.5,0.7]

Each labels file holds one line per pair read by hand, as ``synth_yield.py``'s audit files give them less the
answer and the source text (those are the document's own words and stay out of the repository): ``id``,
``question``, ``written`` ({candidate, logprob, margin, rivals}), ``round_trip`` ({rank, similarity}), ``verdict``
("correct": the question stands alone and the answer answers it; "wrong": anything else) and ``why`` (a few words on
what is wrong). The file's name says which run, document and pages it comes from.

Printed per file and for all files together: for each combination of thresholds on the writer's mean token
log-probability of the question given its unit (``writer.min_logprob``; ``none``: no floor), on the answer-level
margin (``writer.min_margin``) and on the question-unit similarity (``min_question_similarity``), the pairs kept, how
many of them are correct, precision, and the share of correct pairs kept (recall within the labelled sample). A
margin of null (a unit alone in its chunk) passes every margin threshold, as in synth_qa. Files written before
synth_qa recorded the log-probability carry the shipped writer's score of the question given the answer, rescored
(``written.logprob_rescored``); a pair with neither is left out of the tables with a floor.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    unread = [r["id"] for r in rows if r.get("verdict") not in ("correct", "wrong")]
    if unread:
        raise SystemExit(f"{path}: {len(unread)} pairs have no verdict ('correct' or 'wrong'), e.g. {unread[0]}")
    return rows


def logprob(row: dict) -> float | None:
    written = row.get("written") or {}
    return written.get("logprob", written.get("logprob_rescored"))


def kept(row: dict, floor: float | None, margin: float, similarity: float) -> bool:
    m = (row.get("written") or {}).get("margin")
    return ((floor is None or logprob(row) >= floor) and (m is None or m > margin)
            and row["round_trip"]["similarity"] >= similarity)


def table(name: str, rows: list[dict], floors: list[float | None], margins: list[float],
          similarities: list[float]) -> None:
    print(f"\n{name}: {len(rows)} pairs read, {sum(r['verdict'] == 'correct' for r in rows)} correct")
    print(f"{'logprob >=':>10} {'margin >':>9} {'sim >=':>7} {'kept':>5} {'correct':>8} {'precision':>10} "
          f"{'recall':>7}")
    for f in floors:
        scored = rows if f is None else [r for r in rows if logprob(r) is not None]
        correct = sum(r["verdict"] == "correct" for r in scored)
        for m in margins:
            for s in similarities:
                mine = [r for r in scored if kept(r, f, m, s)]
                good = sum(r["verdict"] == "correct" for r in mine)
                print(f"{str(f):>10} {m:>9} {s:>7} {len(mine):>5} {good:>8} {good / max(len(mine), 1):>10.0%} "
                      f"{good / max(correct, 1):>7.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="+", type=Path)
    parser.add_argument("--logprobs", default="none,-1,-0.8,-0.6")
    parser.add_argument("--margins", default="0,1,2")
    parser.add_argument("--similarities", default="0.5,0.7")
    args = parser.parse_args()
    floors = [None if x == "none" else float(x) for x in args.logprobs.split(",")]
    margins = [float(x) for x in args.margins.split(",")]
    similarities = [float(x) for x in args.similarities.split(",")]
    everything = []
    for path in args.labels:
        rows = load(path)
        everything += rows
        table(path.stem, rows, floors, margins, similarities)
    if len(args.labels) > 1:
        table("all files", everything, floors, margins, similarities)


if __name__ == "__main__":
    main()
