"""Benchmark: BoolQ 0-shot on the embedded Gemma 3 270M (llama.cpp, the GGUF itself) against the model card's 61.4.

Reads ../shared/realdata/paper/boolq_validation.jsonl (3,270 validation items, llm-foundry's copy) through curate's
eval-set loader (layout ``llm-foundry``) and scores it as lm-evaluation-harness does: the prompt
"{passage}\\nQuestion: {question}?\\nAnswer:", the continuations " no" / " yes", the one with the larger
log-likelihood (acc; acc_norm divides by the word's length). Items run in a seeded random order: the first
``--probe`` are timed, then the rest of the set, or of a sample of ``--n`` items when asked or when the probe's rate
says the whole set would take longer than ``--budget-min`` minutes (the sample is then at least ``--min-n``).
Prints n, seconds, items/s, acc and acc_norm with 95% bootstrap intervals, accuracy per gold class (BoolQ is 62%
"yes": an always-yes scorer lands near 61.4 too), the share of "yes" picks, and the distance from the card's 61.4.

    .venv/bin/python benchmarks/boolq.py [--n N] [--seed 0] [--threads 2] [--probe 100] [--budget-min 25]
                                         [--min-n 1000] [--out runs/bench/boolq] [--interrupted]

``--interrupted`` scores nothing and reports the items a stopped run had written to OUT (the start of the seeded
order, so still a seeded random sample), with the probe's seconds plus those from its end to the last write.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOLQ = REPO.parent / "shared" / "realdata" / "paper" / "boolq_validation.jsonl"
CARD = 0.614  # Gemma 3 270M model card (pretrained), BoolQ 0-shot
SETTINGS = {"scoring": "loglik", "choices": "text", "style": "completion", "shots": 0, "batch_size": 50}


def score(model, eval_set, items: list, out: Path) -> tuple[list[dict], float]:
    """The records of ``items`` (a part of ``eval_set``) scored into OUT, and the seconds it took."""
    import dataclasses

    from curate.evaluate import evaluate_loaded

    started = time.perf_counter()
    evaluate_loaded(model, dataclasses.replace(eval_set, items=items), out, SETTINGS, overwrite=True)
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return records, time.perf_counter() - started


def per_class(records: list[dict], items: list) -> dict[str, dict]:
    """{gold word: {n, accuracy}} with the gold word read from the item's options."""
    out = {}
    for word in ("no", "yes"):
        chosen = [r for r, item in zip(records, items) if item.options[item.gold] == word]
        out[word] = {"n": len(chosen), "accuracy": sum(r["correct"] for r in chosen) / len(chosen)}
    return out


def scored(args, eval_set, items: list, out: Path) -> tuple[list[dict], float, int | None, str]:
    """Run the probe, then the rest of the set or of its sample: (records, seconds, sample size or None, weights)."""
    from curate.evaluate import load_model

    model = load_model({"backend": "llamacpp", "n_threads": args.threads})
    weights = model.info["precision"]["weights"]
    try:
        records, probe_seconds = score(model, eval_set, items[:args.probe], out / "probe")
        rate = args.probe / probe_seconds
        estimate = len(items) / rate / 60
        print(f"probe: {args.probe} items in {probe_seconds:.1f} s = {rate:.2f} items/s; all {len(items)} would take "
              f"about {estimate:.1f} min", flush=True)
        limit = args.n
        if limit is None and estimate > args.budget_min:
            limit = max(args.min_n, int(args.budget_min * 60 * rate))
            print(f"over the {args.budget_min:.0f}-minute budget: a seeded random sample of {limit} items "
                  f"(seed {args.seed})", flush=True)
        rest, seconds = score(model, eval_set, items[args.probe:limit], out / "rest")
    finally:
        model.llm.close()
    return records + rest, seconds + probe_seconds, limit, weights


def interrupted(items: list, out: Path) -> tuple[list[dict], float]:
    """The records an interrupted run wrote (probe, then rest: the start of the seeded order) and its seconds: the
    probe's (from its summary), then from the probe's end to the last write of the rest."""
    files = [out / "probe" / "predictions.jsonl", out / "rest" / "predictions.jsonl"]
    records = [json.loads(line) for f in files if f.is_file() for line in f.read_text().splitlines()]
    if [r["id"] for r in records] != [item.id for item in items[:len(records)]]:
        raise SystemExit(f"{out}: the records are not the start of seed's order: rerun with the run's --seed")
    probe = out / "probe" / "summary.json"
    return records, json.loads(probe.read_text())["seconds"] + files[-1].stat().st_mtime - probe.stat().st_mtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="a seeded sample of this many items (default: all, budget allowing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe", type=int, default=100, help="items timed first")
    parser.add_argument("--budget-min", type=float, default=25.0)
    parser.add_argument("--min-n", type=int, default=1000)
    parser.add_argument("--out", default="runs/bench/boolq")
    parser.add_argument("--interrupted", action="store_true",
                        help="score nothing: report the items an interrupted run in OUT had scored")
    args = parser.parse_args()

    from curate.evaluate import load_eval_set
    from curate.evaluate.harness import metrics

    out = Path(args.out)
    eval_set = load_eval_set(str(BOOLQ))
    order = random.Random(args.seed).sample(range(len(eval_set.items)), len(eval_set.items))
    items = [eval_set.items[i] for i in order]  # a seeded permutation: the probe is the start of every sample
    if args.interrupted:
        records, seconds = interrupted(items, out)
        weights = json.loads((out / "probe" / "summary.json").read_text())["settings"]["precision"]["weights"]
        how = f" (interrupted run: the first {len(records)} items of a seeded random order, seed {args.seed})"
    else:
        records, seconds, limit, weights = scored(args, eval_set, items, out)
        how = f" (seeded random sample, seed {args.seed})" if limit else " (all)"
    items = items[:len(records)]
    scores = metrics(records, {"resamples": 10_000, "level": 0.95, "seed": 0})
    n = len(records)
    acc, norm = scores["accuracy"], scores["accuracy_norm"]
    classes = per_class(records, items)
    yes = sum(item.options[r["parsed"]] == "yes" for r, item in zip(records, items)) / n
    print(f"BoolQ validation, embedded Gemma 3 270M ({weights}, llama.cpp), 0-shot, harness prompt: n = {n} of "
          f"{eval_set.available}{how}")
    print(f"  {seconds:.0f} s, {n / seconds:.2f} items/s, {args.threads} threads")
    print(f"  acc      {acc['value']:.4f} [{acc['ci_low']:.4f}, {acc['ci_high']:.4f}]  "
          f"(model card 61.4: {100 * (acc['value'] - CARD):+.1f} points)")
    print(f"  acc_norm {norm['value']:.4f} [{norm['ci_low']:.4f}, {norm['ci_high']:.4f}]")
    for word, c in classes.items():
        print(f"  gold {word:<3}: n = {c['n']}, accuracy {c['accuracy']:.4f}")
    print(f"  'yes' picked for {yes:.1%} of items; share of gold 'yes': {classes['yes']['n'] / n:.1%}")
    result = {"n": n, "available": eval_set.available, "how": how.strip(" ()"), "seed": args.seed,
              "seconds": seconds, "acc": acc, "acc_norm": norm, "per_class": classes, "yes_picked": yes,
              "card": CARD}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"  written: {out / 'result.json'}")


if __name__ == "__main__":
    main()
