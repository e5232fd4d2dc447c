"""``judge``: an LLM grades each QA pair on a fixed rubric; low scores and unsafe answers are dropped.

Rubric (``prompts/judge.v1.yaml``): faithfulness to the row's ``context``, medical accuracy, relevance, clarity and
safety, each 1-5, asked for as JSON (grammar-constrained on llama.cpp, ``response_format`` on servers) and read
with ``first_json_object``, so an unconstrained reply (transformers) that wraps the object in other text still
counts. A reply that is still malformed after ``max_retries`` extra attempts leaves the row unscored: dropped with
reason ``judge_unscored`` (the raw reply in the detail, or "generation error: " and the backend's message when it
reported one, such as a prompt over the context window) unless ``on_unscored: keep``; it is never counted as a pass.
A backend ``TransientError`` fails the batch without marking it done, so a rerun retries it.

Consumes ``kind``, ``messages``, ``context`` (optional); rows other than ``qa``/``vqa`` pass through unjudged.
Produces ``judge_scores`` ({criterion: int}) and ``judge_score`` (their mean); drops ``judge_unsafe`` (safety below
``min_safety``), ``judge_low_score`` (mean below ``min_score``) and ``judge_unscored``.

Example::

    - stage: judge
      llm: {backend: openai, base_url: http://127.0.0.1:8000/v1, model: google/medgemma-4b-it}
      min_score: 3.5
      min_safety: 4
"""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
from pydantic import Field

from curate.llm import LLMConfig, load_llm
from curate.llm.base import Sampling, first_json_object
from curate.llm.prompts import load_prompt
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows

CRITERIA = ("faithfulness", "accuracy", "relevance", "clarity", "safety")
SCHEMA = {"type": "object", "properties": {c: {"type": "integer", "minimum": 1, "maximum": 5} for c in CRITERIA},
          "required": list(CRITERIA)}


class JudgeConfig(StageConfig):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "judge.v1"
    min_score: float = Field(default=3.5, ge=1, le=5)
    min_safety: int = Field(default=4, ge=1, le=5)
    max_retries: int = Field(default=2, ge=0)
    on_unscored: Literal["drop", "keep"] = "drop"
    max_tokens: int = 64
    seed: int = 0


def parse_scores(text: str) -> dict[str, int] | None:
    """The five integer scores in 1..5 from a judge reply, or None when anything is missing or out of range."""
    try:
        data = first_json_object(text)
        scores = {c: data[c] for c in CRITERIA}
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in scores.values()):
        return None
    return scores


class Judge(Stage):
    name = "judge"
    Config = JudgeConfig
    inputs = ("kind", "messages")
    outputs = {"judge_scores": pa.struct([(c, pa.int8()) for c in CRITERIA]), "judge_score": pa.float32()}

    def fingerprint_extra(self) -> list:
        return [load_prompt(self.config.prompt).sha256]  # an edited prompt file redoes the stage

    def setup(self) -> None:
        self.llm = load_llm(self.config.llm)
        self.prompts = load_prompt(self.config.prompt)

    def _prompt(self, row: dict):
        question = next(m["content"] for m in row["messages"] if m["role"] == "user")
        answer = next(m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant")
        return self.prompts.fill("judge", self.llm.instruction_tuned, context=row.get("context") or "(none)",
                                   question=question, answer=answer)

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        c = self.config
        out = rows(batch)
        todo = [i for i, r in enumerate(out) if r["kind"] in ("qa", "vqa") and r.get("messages")]
        prompts = {i: self._prompt(out[i]) for i in todo}
        scores: dict[int, dict] = {}
        raw: dict[int, str] = {}
        for attempt in range(c.max_retries + 1):
            pending = [i for i in todo if i not in scores]
            if not pending:
                break
            sampling = Sampling(c.max_tokens, 0.0 if attempt == 0 else 0.7, 0.95, c.seed + attempt)
            for i, gen in zip(pending, self.llm.generate_batch([prompts[i] for i in pending], sampling, SCHEMA)):
                self.counters["tokens_generated"] += gen.completion_tokens
                raw[i] = f"generation error: {gen.error}" if gen.error else gen.text
                if (parsed := parse_scores(gen.text)) is not None:
                    scores[i] = parsed
        for i in todo:
            row = out[i]
            if i not in scores:
                self.counters["unscored"] += 1
                if c.on_unscored == "drop":
                    row[DROP], row[DROP_DETAIL] = "judge_unscored", raw[i]
                continue
            s = scores[i]
            row["judge_scores"], row["judge_score"] = s, sum(s.values()) / len(s)
            if s["safety"] < c.min_safety:
                row[DROP], row[DROP_DETAIL] = "judge_unsafe", json.dumps(s)
            elif row["judge_score"] < c.min_score:
                row[DROP], row[DROP_DETAIL] = "judge_low_score", json.dumps(s)
        return {k: [r.get(k) for r in out] for k in [*batch, *self.outputs, DROP, DROP_DETAIL]}
