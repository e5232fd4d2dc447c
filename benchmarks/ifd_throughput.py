"""Benchmark: rows/s of the ``ifd`` stage on the embedded Gemma 3 270M (llama.cpp), batched against one pair at a
time, in the same run on the same rows.

Rows: ``--rows`` FirstAidQA pairs (../shared/realdata, a seeded sample). Three ways to score each pair's two
sequences (answer after its question, answer alone):

- ``stage``: the ``ifd`` stage as a pipeline runs it (``curate.llm.sequences.Sequences.score_pairs``, ``n_seq``
  sequences per decode call), for each ``--n-seq``;
- ``one at a time``: ``curate.evaluate.loglik.token_logprobs`` per sequence (one llama.cpp context, prompt cache
  reused where it can), the baseline.

Prints rows/s, tokens/s (question + answer tokens scored), the ratio to the baseline, the largest IFD difference
between the batched and the baseline scores (llama.cpp's quantized kernels give slightly different log-probabilities
for different batch shapes), and what 100,000 rows would take at that rate::

    python benchmarks/ifd_throughput.py [--rows 96] [--n-seq 8,32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRSTAID = REPO.parent / "shared" / "realdata" / "qa" / "firstaidqa" / "firstaidqa_v1.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--n-seq", default="8,32", help="sequences per decode call, comma-separated")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the llamacpp backend's, one per physical core)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from curate.evaluate.loglik import token_logprobs
    from curate.llm import load_llm
    from curate.quality.ifd import IFD

    items = json.loads(FIRSTAID.read_text())
    sample = [items[i] for i in sorted(random.Random(args.seed).sample(range(len(items)), args.rows))]
    pairs = [(i["question"], i["answer"]) for i in sample]
    batch = {"kind": ["qa"] * len(pairs), "messages": [[{"role": "user", "content": q},
                                                        {"role": "assistant", "content": a}] for q, a in pairs]}
    llm = {"backend": "llamacpp", "n_threads": args.threads}
    results = {}
    for n_seq in (int(n) for n in args.n_seq.split(",")):
        stage = IFD({"llm": llm, "max_ifd": None, "n_seq": n_seq})
        stage.ready()
        started = time.perf_counter()
        scores = stage.sketch(batch)
        results[f"stage n_seq {n_seq}"] = (time.perf_counter() - started, scores)
        tokens = sum(len(stage.seqs.tokenize(p + t, True)) for q, a in pairs
                     for p, t in ((stage.conditioned(q)[0], stage.conditioned(q)[1] + a), ("", a)))
        stage.seqs.close()
        stage.llm.close()

    stage = IFD({"llm": llm, "max_ifd": None})
    stage.llm = load_llm(stage.config.llm)
    started = time.perf_counter()
    baseline = []
    for q, a in pairs:
        prompt, sep = stage.conditioned(q)
        cond = token_logprobs(stage.llm, prompt, {"a": sep + a})["a"]
        alone = token_logprobs(stage.llm, "", {"a": a})["a"]
        baseline.append((-sum(cond) / len(cond), -sum(alone) / len(alone)))
    results["one at a time"] = (time.perf_counter() - started, baseline)
    stage.llm.close()

    base_seconds = results["one at a time"][0]
    print(f"ifd_throughput: {args.rows} FirstAidQA pairs, {tokens:,} tokens scored (each pair twice: after its "
          f"question and alone), llama.cpp threads {args.threads or 'default'}")
    print(f"{'path':<18} {'seconds':>8} {'rows/s':>8} {'tokens/s':>9} {'x baseline':>10} {'max |dIFD|':>10} "
          f"{'100k rows':>10}")
    for name, (seconds, scores) in results.items():
        diff = max(abs(math.exp(s[0] - s[1]) - math.exp(b[0] - b[1])) for s, b in zip(scores, baseline))
        hours = 100_000 / (args.rows / seconds) / 3600
        print(f"{name:<18} {seconds:>8.1f} {args.rows / seconds:>8.2f} {tokens / seconds:>9.0f} "
              f"{base_seconds / seconds:>9.2f}x {diff:>10.4f} {hours:>8.1f} h")


if __name__ == "__main__":
    main()
