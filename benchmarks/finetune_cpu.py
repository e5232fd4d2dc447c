"""Benchmark: LoRA training of the embedded Gemma 3 270M on a CPU, curate's TRL path against a plain PEFT loop.

Both train the LoRA of ``finetune/gemma3-270m-cpu-lora.yaml`` (r, alpha, targets, lr, weight decay, max grad norm,
fp32) on the same rows: FirstAidQA pairs from ../shared/realdata as Gemma turns with assistant-only labels
(``curate.train.data``), cut to ``--max-length`` tokens, ``--batch`` rows per step, ``--steps`` optimizer steps, no
warm-up. The TRL path is ``curate.train.trl_backend.train`` as the recipe runs it (SFTTrainer + PEFT, batches
grouped by length, the LM head scored on labelled positions only); the plain loop is forward / backward / clip /
AdamW / linear schedule over right-padded batches in random order. Each path runs in its own process, so
its peak RSS (``ru_maxrss``, model weights included) is its own. Throughput counts non-padding tokens over the
training steps only (model loading excluded), per wall-clock second and per CPU second of the process (less
sensitive to other jobs on a shared machine; ``--threads 1`` makes it cleaner still). Each round runs both paths
back to back, in alternating order; the table shows each path's best round and the median over rounds of the
TRL / plain ratios, which cancels most of the drift of a shared machine.

    python benchmarks/finetune_cpu.py [--steps 6] [--batch 4] [--max-length 256] [--rows 64] [--rounds 4]
                                      [--threads N]

The first run dequantizes the GGUF into ~/.cache/curate/models (about a minute); later runs load it in seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRSTAID = REPO.parent / "shared" / "realdata" / "qa" / "firstaidqa" / "firstaidqa_v1.json"


def recipe(args):
    from curate.train.recipe import load_recipe

    base = load_recipe(REPO / "finetune" / "gemma3-270m-cpu-lora.yaml")
    train = base.train.model_copy(update=dict(max_steps=args.steps, batch_size=args.batch, grad_accum=1,
                                              max_length=args.max_length, warmup=0, logging_steps=1, eval_steps=None))
    return base.model_copy(update={"train": train})


def examples(rows: int) -> list[dict]:
    items = json.loads(FIRSTAID.read_text())[:rows]
    return [{"messages": [{"role": "user", "content": i["question"]}, {"role": "assistant", "content": i["answer"]}],
             "images": []} for i in items]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_trl(args) -> dict:
    from transformers import TrainerCallback

    from curate.train import trl_backend
    from curate.train.data import TrainingData

    class Clock(TrainerCallback):
        """Wall and CPU seconds from the first training step to the last."""

        def on_train_begin(self, *_, **__):
            self.start = (time.perf_counter(), time.process_time())

        def on_train_end(self, *_, **__):
            self.seconds = time.perf_counter() - self.start[0]
            self.cpu_seconds = time.process_time() - self.start[1]

    clock = Clock()
    data = TrainingData(FIRSTAID.parent, "messages", examples(args.rows), None, {})
    metrics = trl_backend.train(recipe(args), data, callbacks=[clock]).metrics
    return {"tokens": int(metrics["num_tokens"]), "seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds}


def batches(rows: list[dict], size: int, seed: int):
    """Endless right-padded batches of ``rows`` in a seeded random order, like a shuffling data loader."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(rows), generator=generator).tolist()
        for start in range(0, len(order) - size + 1, size):
            chunk = [rows[i] for i in order[start:start + size]]
            width = max(len(r["input_ids"]) for r in chunk)
            pad = [width - len(r["input_ids"]) for r in chunk]
            yield {"input_ids": torch.tensor([r["input_ids"] + [0] * p for r, p in zip(chunk, pad)]),
                   "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * p for r, p in zip(chunk, pad)]),
                   "labels": torch.tensor([r["labels"] + [-100] * p for r, p in zip(chunk, pad)])}


def run_plain(args) -> dict:
    import torch
    from peft import get_peft_model
    from transformers import get_linear_schedule_with_warmup

    from curate.train.data import IGNORE, tokenize_text
    from curate.train.models import load_base, lora_config

    r = recipe(args)
    torch.manual_seed(r.train.seed)
    model, tokenizer = load_base(r)
    model = get_peft_model(model, lora_config(model, r.lora))
    model.train()
    rows = [{k: row[k][:args.max_length] for k in ("input_ids", "labels")}
            for row in tokenize_text(examples(args.rows), tokenizer)]
    rows = [row for row in rows if any(label != IGNORE for label in row["labels"])]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=r.train.learning_rate, weight_decay=r.train.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, args.steps)
    tokens, started, cpu_started = 0, time.perf_counter(), time.process_time()
    for _, batch in zip(range(args.steps), batches(rows, args.batch, r.train.seed)):
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, r.train.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return {"tokens": tokens, "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started}


def worker(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = (run_trl if args.worker == "trl" else run_plain)(args)
    print(json.dumps({**result, "peak_rss_mib": peak_rss_mib()}))


def measure(path: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", path, "--steps", str(args.steps), "--batch", str(args.batch),
               "--max-length", str(args.max_length), "--rows", str(args.rows), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{path} run failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    result["tokens_per_cpu_s"] = result["tokens"] / result["cpu_seconds"]
    return result


def paired_ratio(pairs: list[dict], key: str) -> float:
    """Median over rounds of TRL / plain, each round's two runs taken back to back."""
    ratios = sorted(pair["trl"][key] / pair["plain"][key] for pair in pairs)
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def table(pairs: list[dict]) -> str:
    """Each path's best round, and the median of the paired ratios."""
    lines = [f"{'path':<12}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'CPU s':>8}{'tokens/CPU s':>14}"
             f"{'peak RSS MiB':>14}"]
    for path, name in (("trl", "trl"), ("plain", "plain peft")):
        r = max((pair[path] for pair in pairs), key=lambda run: run["tokens_per_s"])
        lines.append(f"{name:<12}{r['tokens']:>8,}{r['seconds']:>9.1f}{r['tokens_per_s']:>10.1f}"
                     f"{r['cpu_seconds']:>8.1f}{r['tokens_per_cpu_s']:>14.1f}{r['peak_rss_mib']:>14,.0f}")
    ratio = {k: paired_ratio(pairs, k) for k in ("tokens_per_s", "tokens_per_cpu_s", "peak_rss_mib")}
    lines.append(f"{'trl / plain':<12}{'':>8}{'':>9}{ratio['tokens_per_s']:>9.2f}x{'':>8}"
                 f"{ratio['tokens_per_cpu_s']:>13.2f}x{ratio['peak_rss_mib']:>13.2f}x   (median of paired rounds)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of both paths back to back")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    parser.add_argument("--worker", choices=["trl", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    pairs = []
    for i in range(args.rounds):
        order = ("plain", "trl") if i % 2 == 0 else ("trl", "plain")
        pairs.append({path: measure(path, args) for path in order})
        print(f"round {i + 1}: " + ", ".join(
            f"{path} {pairs[-1][path]['tokens_per_s']:.1f} tokens/s ({pairs[-1][path]['tokens_per_cpu_s']:.1f}/CPU s)"
            for path in order), flush=True)
    print(f"LoRA on the embedded Gemma 3 270M, CPU, fp32: {args.steps} steps x {args.batch} rows, max length "
          f"{args.max_length}, {args.threads or 'default'} threads, {args.rounds} rounds")
    print(table(pairs))

if __name__ == "__main__":
    main()
