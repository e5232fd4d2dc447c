"""The judge on the transformers backend: replies that parse, unconstrained vs JSON-schema constrained decoding with
xgrammar and with lm-format-enforcer, on the embedded Gemma 3 270M, in one run.

The judge prompt (``judge.v1``) over real FirstAidQA pairs, greedy, ``max_tokens`` 64, the same prompts for every
variant. Printed per variant: replies whose five scores parse (``curate.quality.judge.parse_scores``), seconds per
reply, and the first reply.

    python benchmarks/judge_constrained.py [--n 12]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from curate.llm import LLMConfig, load_llm
from curate.llm.prompts import load_prompt
from curate.quality.judge import SCHEMA, parse_scores

FIRSTAID = (Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "qa/firstaidqa/firstaidqa_v1.json")


def xgrammar_processor(llm):
    import xgrammar as xgr

    vocab_size = llm.hf_model.config.get_text_config().vocab_size
    info = xgr.TokenizerInfo.from_huggingface(llm.tokenizer, vocab_size=vocab_size)
    compiled = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(SCHEMA))
    return lambda: {"logits_processor": [xgr.contrib.hf.LogitsProcessor(compiled)]}


def enforcer_processor(llm):
    from lmformatenforcer import JsonSchemaParser
    from lmformatenforcer.integrations.transformers import build_transformers_prefix_allowed_tokens_fn

    return lambda: {"prefix_allowed_tokens_fn": build_transformers_prefix_allowed_tokens_fn(
        llm.tokenizer, JsonSchemaParser(SCHEMA))}


def run(llm, texts: list[str], extra) -> tuple[list[str], float]:
    torch = llm._torch
    replies, started = [], time.perf_counter()
    for text in texts:
        enc = llm.tokenizer([text], return_tensors="pt")
        kwargs = extra() if extra else {}
        with torch.inference_mode():
            out = llm.hf_model.generate(**enc, max_new_tokens=64, do_sample=False, temperature=None, top_p=None,
                                        top_k=None, pad_token_id=llm.tokenizer.pad_token_id, **kwargs)
        replies.append(llm.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return replies, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    args = ap.parse_args()
    pairs = json.loads(FIRSTAID.read_text())[: args.n]
    llm = load_llm(LLMConfig(backend="transformers"))
    prompts = load_prompt("judge.v1")
    texts = [llm.render(prompts.fill("judge", llm.instruction_tuned, context="(none)", question=p["question"],
                                       answer=p["answer"])) for p in pairs]
    print(f"{len(texts)} judge prompts on FirstAidQA pairs, embedded Gemma 3 270M on transformers, greedy, 64 tokens")
    variants = {"unconstrained": None}
    for name, build in (("xgrammar", xgrammar_processor), ("lm-format-enforcer", enforcer_processor)):
        try:
            variants[name] = build(llm)
        except ImportError as exc:  # a library whose integration does not import with this transformers
            print(f"{name:<20} unusable here: ImportError: {exc}")
    for name, extra in variants.items():
        replies, seconds = run(llm, texts, extra)
        parsed = sum(parse_scores(r) is not None for r in replies)
        print(f"{name:<20} parsed {parsed:>2} of {len(replies)}  ·  {seconds / len(replies):.2f} s/reply  ·  first: "
              f"{replies[0][:90]!r}")


if __name__ == "__main__":
    main()
