"""The question writer against reference questions it never trained on: ROUGE-L and BLEU-4, writer vs the base model.

    python benchmarks/question_writer.py [--firstaidqa 0] [--medquad 200] [--adapter PATH [PATH ...]]
                                         [--candidates 4] [--temperature 0.8]

Sets (each answer given, the question written greedily, compared with the set's own question):

- ``firstaidqa-held-out``: pairs of the writer's held-out question groups (``writer.json``'s ``held_out_ids``: whole
  groups of near-duplicate questions were held out before training): all of them, or ``--firstaidqa`` sampled with
  a fixed seed;
- ``firstaidqa-checked``: those of them whose reference question passes the checks ``synth_qa`` applies to a written
  question against its answer (``written_question_problem``: no context the answer does not hold, an answer type
  the answer gives): the questions synth_qa would keep;
- ``medquad-cdc``: MedQuAD's CDC collection (``../shared/realdata/qa/medquad/9_CDC_QA``, never trained on), answers
  cut to their first 60 words (the writer asks about spans, not pages), ``--medquad`` pairs sampled.

Models: ``writer K`` (the embedded Gemma 3 270M with the K-th ``--adapter``, through llama.cpp, the ``synth_qa``
path, greedy), ``likeliest/N K`` (of the K-th writer's greedy question and ``--candidates`` - 1 sampled at
``--temperature``, synth_qa's ``writer`` defaults, the one the writer gives the highest mean token log-probability,
as ``synth_qa`` chooses among the candidates that pass its checks) and ``base few-shot`` (the embedded model without
an adapter, after three off-domain examples in the same prompt form).
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
from curate.llm.writer import QuestionWriter, adapter_info, adapter_path
from curate.rag.question_checks import written_question_problem
from curate.rag.synth import WriterConfig
from curate.train.writer import load_writer_recipe, mean_rouge_l, read_pairs, score_held_out

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


def likeliest(adapter: Path, pairs: list[dict], n: int, temperature: float) -> list[str]:
    """Per pair, the likeliest of the writer's ``n`` candidates that end their line (the greedy one when none does)."""
    writer = QuestionWriter(adapter)
    written = writer.write([p["answer"] for p in pairs], n, [0] * len(pairs), temperature)
    writer.close()
    return [max((c for c in cands if c.stopped), key=lambda c: c.mean_logprob, default=cands[0]).text
            for cands in written]


def bleu4(written: list[str], references: list[str]) -> float:
    import sacrebleu

    return round(sacrebleu.corpus_bleu(written, [references]).score / 100, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firstaidqa", type=int, default=0, help="held-out pairs to sample (0: all)")
    parser.add_argument("--medquad", type=int, default=200)
    parser.add_argument("--adapter", nargs="+", default=[None],
                        help="adapter.gguf files or their folders, each scored in the same run (default: the shipped "
                             "one); the held-out pairs are the first one's")
    parser.add_argument("--candidates", type=int, default=WriterConfig().candidates)
    parser.add_argument("--temperature", type=float, default=WriterConfig().temperature)
    args = parser.parse_args()
    adapters = [adapter_path(a) for a in args.adapter]
    info = adapter_info(adapters[0])
    for other in adapters[1:]:
        if adapter_info(other).get("held_out_ids") != info["held_out_ids"]:
            raise SystemExit(f"{other} was not trained with the held-out pairs of {adapters[0]}")
    held = firstaidqa_held_out(info, args.firstaidqa)
    sets = {"firstaidqa-held-out": held,
            "firstaidqa-checked": [p for p in held if written_question_problem(p["question"], p["answer"]) is None],
            "medquad-cdc": medquad(args.medquad)}
    rows = []
    models = [(f"{label}{k}", adapter, base) for k, adapter in enumerate(adapters, 1)
              for label, base in (("writer ", False), (f"likeliest/{args.candidates} ", None))]
    for name, pairs in sets.items():
        for model, adapter, base in models + [("base few-shot", adapters[0], True)]:
            start = time.perf_counter()
            if base is None:
                written = likeliest(adapter, pairs, args.candidates, args.temperature)
                score = mean_rouge_l(written, pairs)
            else:
                result = score_held_out(adapter, pairs, base=base)
                written, score = result["questions"], result["rouge_l"]
            rows.append({"set": name, "model": model, "pairs": len(pairs), "rouge_l": score,
                         "bleu4": bleu4(written, [p["question"] for p in pairs]),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps({**rows[-1], "examples": [{"reference": p["question"], "written": q}
                                                       for p, q in list(zip(pairs, written))[:3]]}), flush=True)
    print()
    for k, adapter in enumerate(adapters, 1):
        print(f"writer {k}: {adapter} (sha256 {adapter_info(adapter).get('adapter_sha256', '?')[:12]})")
    print(f"likeliest: of {args.candidates} candidates, temperature {args.temperature}")
    print(f"{'set':<22} {'model':<16} {'pairs':>5} {'ROUGE-L':>8} {'BLEU-4':>7} {'seconds':>8}")
    for r in rows:
        print(f"{r['set']:<22} {r['model']:<16} {r['pairs']:>5} {r['rouge_l']:>8} {r['bleu4']:>7} {r['seconds']:>8}")


if __name__ == "__main__":
    main()
