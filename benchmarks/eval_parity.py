"""Benchmark: curate's multiple-choice log-likelihood scoring against lm-evaluation-harness, same items, same weights.

In one run, on a seeded sample of real items from ../shared/realdata (BoolQ validation from llm-foundry's file, or
MedQA-USMLE test):

- lm-evaluation-harness (``lm_eval`` 0.4, ``HFLM``) with the embedded Gemma 3 270M GGUF dequantized to float32 (the
  transformers folder curate caches in ~/.cache/curate/models) and a local task file written here: a YAML task over
  a local jsonl, ``output_type: multiple_choice``, the harness's own prompt (BoolQ: "{passage}\\nQuestion:
  {question}\\nAnswer:", MedQA: "Question: {question}\\nAnswer:"), the option texts as choices, 0 shots;
- curate (``scoring: loglik``, ``choices: text``, completion style, 0 shots) with its transformers backend on the same
  float32 weights, and with its llamacpp backend on the GGUF itself (quantized arithmetic).

It prints n, acc and acc_norm of each, the per-item agreement of each curate backend's acc and acc_norm picks with
the harness's, how many prompts (contexts) and continuations are identical to the harness's requests, and the largest
log-likelihood difference. Nothing is downloaded (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE).

    .venv/bin/pip install lm_eval   # or: pip install -e '.[bench]'; not a dependency of curate
    .venv/bin/python benchmarks/eval_parity.py [--set boolq|medqa] [--n 200] [--seed 0] [--threads 2]
                                               [--no-llamacpp] [--out runs/bench/eval_parity]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
SETS = {"boolq": REALDATA / "paper" / "boolq_validation.jsonl",
        "medqa": REALDATA / "qa" / "medqa" / "medqa_usmle_4opt_test.jsonl"}
SETTINGS = {"scoring": "loglik", "choices": "text", "style": "completion", "shots": 0}


def harness_doc(name: str, raw: dict) -> dict:
    """One item in the fields the local task's templates read, taken from the raw file with plain string work."""
    if name == "boolq":
        passage, question = raw["query"].removeprefix("Passage: ").split("\nQuestion: ")
        return {"passage": passage, "question": question, "choices": raw["choices"], "gold": raw["gold"]}
    labels = sorted(raw["options"])
    return {"question": raw["question"], "choices": [raw["options"][k] for k in labels],
            "gold": labels.index(raw["answer_idx"])}


def task_yaml(name: str, docs: Path) -> str:
    text = ("{{passage}}\\nQuestion: {{question}}\\nAnswer:" if name == "boolq"
            else "Question: {{question}}\\nAnswer:")
    return "\n".join([
        f"task: curate_parity_{name}",
        "dataset_path: json",
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(docs))}}}}}",
        "test_split: test",
        "output_type: multiple_choice",
        f'doc_to_text: "{text}"',
        "doc_to_choice: choices",
        "doc_to_target: gold",
        "metric_list: [{metric: acc}, {metric: acc_norm}]",
        ""])


def run_harness(name: str, docs: list[dict], folder: Path, work: Path, threads: int) -> tuple[list[dict], float]:
    """The harness's samples in doc order, and its seconds."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(threads)
    work.mkdir(parents=True, exist_ok=True)
    (work / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (work / f"curate_parity_{name}.yaml").write_text(task_yaml(name, work / "docs.jsonl"))
    started = time.perf_counter()
    lm = HFLM(pretrained=str(folder), dtype="float32", device="cpu", batch_size=8)
    results = simple_evaluate(model=lm, tasks=[f"curate_parity_{name}"], num_fewshot=0, log_samples=True,
                              bootstrap_iters=0,
                              task_manager=TaskManager(include_path=str(work)))
    samples = sorted(results["samples"][f"curate_parity_{name}"], key=lambda s: s["doc_id"])
    return samples, time.perf_counter() - started


def run_curate(config: dict, eval_set, out: Path) -> tuple[list[dict], float]:
    from curate.evaluate import evaluate_loaded, load_model

    started = time.perf_counter()
    model = load_model(config)
    try:
        evaluate_loaded(model, eval_set, out, SETTINGS, overwrite=True)
    finally:
        model.llm.close()
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return records, time.perf_counter() - started


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def harness_picks(sample: dict, choices: list[str]) -> tuple[int, int, list[float]]:
    """(acc pick, acc_norm pick, log-likelihoods) from a logged sample, as the harness computes them."""
    lls = [float(resp[0]) for resp in sample["filtered_resps"]]
    return argmax(lls), argmax([ll / len(c) for ll, c in zip(lls, choices)]), lls


def compare(label: str, records: list[dict], harness: list[tuple[int, int, list[float]]], gold: list[int]) -> dict:
    picks = [(ord(r["parsed"]) - 65, ord(r["parsed_norm"]) - 65) for r in records]
    n = len(records)
    row = {"backend": label, "n": n,
           "acc": sum(p == g for (p, _), g in zip(picks, gold)) / n,
           "acc_norm": sum(q == g for (_, q), g in zip(picks, gold)) / n,
           "agree_acc": sum(p == h[0] for (p, _), h in zip(picks, harness)) / n,
           "agree_acc_norm": sum(q == h[1] for (_, q), h in zip(picks, harness)) / n,
           "max_abs_ll_diff": max(abs(r["option_logprobs"][chr(65 + i)] - ll) for r, h in zip(records, harness)
                                  for i, ll in enumerate(h[2]))}
    print(f"  curate {label:<12} acc {row['acc']:.4f}  acc_norm {row['acc_norm']:.4f}  agreement with the harness: "
          f"acc picks {row['agree_acc']:.2%}, acc_norm picks {row['agree_acc_norm']:.2%}  "
          f"(max |loglik diff| {row['max_abs_ll_diff']:.4f})")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="boolq")
    parser.add_argument("--n", type=int, default=200, help="items, a seeded sample (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-llamacpp", action="store_true", help="skip curate's llamacpp backend")
    parser.add_argument("--out", default="runs/bench/eval_parity")
    args = parser.parse_args()

    from curate.evaluate import load_eval_set
    from curate.evaluate.prompts import load_eval_prompts, option_continuations, task_prompt
    from curate.io import file_sha256
    from curate.llm.hf import DEFAULT_CACHE
    from curate.llm.llamacpp import embedded_gguf

    out = Path(args.out) / args.set
    eval_set = load_eval_set(str(SETS[args.set]), limit=args.n, seed=args.seed)
    lines = SETS[args.set].read_text().splitlines()
    docs = [harness_doc(args.set, json.loads(lines[int(item.locator)])) for item in eval_set.items]
    gold = [d["gold"] for d in docs]
    print(f"{args.set}: n = {len(docs)} items (seed {args.seed}, of {eval_set.available}); 0 shots; "
          f"{args.threads} threads")

    transformers = {"backend": "transformers", "dtype": "float32", "device": "cpu", "n_threads": args.threads}
    records_hf, seconds_hf = run_curate(transformers, eval_set, out / "curate-transformers")
    folder = DEFAULT_CACHE.expanduser() / file_sha256(embedded_gguf()) / "float32"  # written by the run above
    samples, seconds_lm = run_harness(args.set, docs, folder, out / "lm_eval", args.threads)
    harness = [harness_picks(s, d["choices"]) for s, d in zip(samples, docs)]

    prompts = load_eval_prompts()
    same = 0
    for item, sample in zip(eval_set.items, samples):
        ours = task_prompt(prompts, "mcq", item.query("text"), "completion", 0, "text")
        continuations = option_continuations("mcq", item.choices, "completion", "text")
        theirs = [tuple(a) for a in sample["arguments"]]
        same += theirs == [(ours, c) for c in continuations.values()]
    print(f"  weights: {folder}")
    print(f"  identical requests (prompt and every continuation): {same} of {len(docs)}")
    print(f"  lm_eval HFLM      acc {sum(h[0] == g for h, g in zip(harness, gold)) / len(docs):.4f}  "
          f"acc_norm {sum(h[1] == g for h, g in zip(harness, gold)) / len(docs):.4f}  ({seconds_lm:.0f} s)")
    rows = [compare("transformers", records_hf, harness, gold)]
    print(f"    ({seconds_hf:.0f} s)")
    if not args.no_llamacpp:
        records_ll, seconds_ll = run_curate({"backend": "llamacpp", "n_threads": args.threads}, eval_set,
                                            out / "curate-llamacpp")
        rows.append(compare("llamacpp", records_ll, harness, gold))
        print(f"    ({seconds_ll:.0f} s)")
    result = {"set": args.set, "n": len(docs), "seed": args.seed, "identical_requests": same,
              "harness": {"acc": sum(h[0] == g for h, g in zip(harness, gold)) / len(docs),
                          "acc_norm": sum(h[1] == g for h, g in zip(harness, gold)) / len(docs),
                          "seconds": seconds_lm}, "curate": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"  written: {out / 'result.json'}")


if __name__ == "__main__":
    main()
