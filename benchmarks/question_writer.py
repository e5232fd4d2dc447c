"""The question writer against reference questions it never trained on: ROUGE-L and BLEU-4, writer vs the base model.

    python benchmarks/question_writer.py [--firstaidqa 0] [--medquad 200] [--adapter PATH]

Sets (each answer given, the question written greedily, compared with the set's own question):

- ``firstaidqa-held-out``: pairs of the writer's held-out question groups (``writer.json``'s ``held_out_ids``: whole
  groups of near-duplicate questions were held out before training): all of them, or ``--firstaidqa`` sampled with
  a fixed seed;
- ``medquad-cdc``: MedQuAD's CDC collection (``../shared/realdata/qa/medquad/9_CDC_QA``, never trained on), answers
  cut to their first 60 words (the writer asks about spans, not pages), ``--medquad`` pairs sampled.

Models: ``writer`` (the embedded Gemma 3 270M with the adapter, through llama.cpp, the ``synth_qa`` path) and
``base few-shot`` (the embedded model without it, after three off-domain examples in the same prompt form).
ROUGE-L is curate's (``curate.evaluate.lexical``, the mean of per-pair F-measures); BLEU-4 is sacrebleu's corpus
BLEU (``pip install 'curate[bench]'``). For scale only, on other data: lmqg's t5-base-squad-qg reports ROUGE-L 53.3
and t5-large 54.1 on SQuAD.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.llm.writer import adapter_info, adapter_path
from curate.train.writer import load_writer_recipe, read_pairs, score_held_out

REPO = Path(__file__).resolve().parents[1]
MEDQUAD = REPO / ".." / "shared" / "realdata" / "qa" / "medquad" / "9_CDC_QA"


def firstaidqa_held_out(info: dict, n: int) -> list[dict]:
    recipe = load_writer_recipe(REPO / "finetune" / "question-writer.yaml")
    held = set(info["held_out_ids"])
    pairs = [p for source in recipe.sources for p in read_pairs(source) if p["id"] in held]
    return random.Random(0).sample(pairs, n) if 0 < n < len(pairs) else pairs


def medquad(n: int) -> list[dict]:
    spec = SourceSpec(name="medquad-cdc", kind="medquad", path=MEDQUAD, license="cc-by-4.0")
    pairs = []
    for row in read_source(spec):
        if isinstance(row, dict):
            question, answer = (m["content"] for m in row["messages"][:2])
            pairs.append({"question": question, "answer": " ".join(answer.split()[:60])})
    return random.Random(0).sample(pairs, min(n, len(pairs)))


def bleu4(written: list[str], references: list[str]) -> float:
    import sacrebleu

    return round(sacrebleu.corpus_bleu(written, [references]).score / 100, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firstaidqa", type=int, default=0, help="held-out pairs to sample (0: all)")
    parser.add_argument("--medquad", type=int, default=200)
    parser.add_argument("--adapter", help="an adapter.gguf (default: the shipped one)")
    args = parser.parse_args()
    adapter = adapter_path(args.adapter)
    info = adapter_info(adapter)
    sets = {"firstaidqa-held-out": firstaidqa_held_out(info, args.firstaidqa), "medquad-cdc": medquad(args.medquad)}
    rows = []
    for name, pairs in sets.items():
        for model, base in (("writer", False), ("base few-shot", True)):
            start = time.perf_counter()
            result = score_held_out(adapter, pairs, base=base)
            written = result["questions"]
            rows.append({"set": name, "model": model, "pairs": len(pairs), "rouge_l": result["rouge_l"],
                         "bleu4": bleu4(written, [p["question"] for p in pairs]),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps({**rows[-1], "examples": [{"reference": p["question"], "written": q}
                                                       for p, q in list(zip(pairs, written))[:3]]}), flush=True)
    print(f"\n{'set':<22} {'model':<14} {'pairs':>5} {'ROUGE-L':>8} {'BLEU-4':>7} {'seconds':>8}")
    for r in rows:
        print(f"{r['set']:<22} {r['model']:<14} {r['pairs']:>5} {r['rouge_l']:>8} {r['bleu4']:>7} {r['seconds']:>8}")


if __name__ == "__main__":
    main()
