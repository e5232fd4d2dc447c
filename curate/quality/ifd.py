"""``ifd``: data selection by Instruction-Following Difficulty, scored by a local model (the embedded Gemma by
default).

IFD (Li et al., 2024, "From Quantity to Quality"; used with a small scorer in "Superfiltering") compares how hard a
pair's answer is with and without its question: ``IFD = exp(conditioned NLL - direct NLL)``, the ratio of the
answer's perplexity given the question (``Question: {question}\\nAnswer:`` then the answer; the chat template for an
instruction-tuned model) to its perplexity alone (the answer after the BOS token), each NLL the mean over the
answer's tokens. IFD >= 1 means the question does not make the answer any more likely: the pair teaches nothing of
following the question (or the question does not fit its answer). A high IFD below 1 marks a pair whose answer the
model cannot yet produce from its question: the ones worth training on.

Consumes ``kind``, ``messages`` (the first user turn is the question, the last assistant turn the answer); rows of
other kinds, or without both turns, pass unscored. Produces ``ifd``, ``ifd_conditioned_nll``, ``ifd_direct_nll``.
Drops ``ifd_unhelpful`` (IFD >= ``max_ifd``; off with ``max_ifd: null``) and, with ``keep_top``, ``ifd_not_top``:
of the pairs left, only the ``ceil(keep_top * n)`` with the highest IFD over the whole input are kept (ties by row
order). Each drop's detail has the pair's score. Pairs longer than ``max_tokens`` (question and answer) pass
unscored and are counted (``unscored_too_long``).

Scoring: on llama.cpp many pairs go through one decode call (``curate.llm.sequences``, ``n_seq`` sequences at a
time); the quantized kernels then give log-probabilities that differ with the batch's composition by a few hundredths
of a nat (a rerun of the same input gives the same scores). On transformers each pair is scored by
``curate.evaluate.loglik`` (float32 log-softmax).

Example::

    - stage: ifd
      max_ifd: 1.0       # drop pairs whose question does not help their answer (default)
      keep_top: 0.5      # and keep the half with the highest IFD
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.llm import LLMConfig, load_llm
from curate.llm.chat import gemma_prompt
from curate.quality.text import first_question_last_answer
from curate.stage import DROP, DROP_DETAIL, Reducer, StageConfig, rows

TEMPLATE = "Question: {question}\nAnswer:"


class IFDConfig(StageConfig):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    max_ifd: float | None = Field(1.0, gt=0)
    keep_top: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(1024, ge=8)
    n_seq: int = Field(32, ge=1)


def ifd_of(nlls: tuple[float, float]) -> float:
    """IFD from (conditioned NLL, direct NLL)."""
    return math.exp(nlls[0] - nlls[1])


class IFD(Reducer):
    name = "ifd"
    Config = IFDConfig
    inputs = ("kind", "messages")
    outputs = {"ifd": pa.float32(), "ifd_conditioned_nll": pa.float32(), "ifd_direct_nll": pa.float32()}

    @property
    def surveys(self) -> bool:
        return self.config.keep_top is not None

    def setup(self) -> None:
        self.llm = load_llm(self.config.llm)
        self.seqs = None
        if self.llm.backend == "llamacpp":
            from curate.llm.sequences import Sequences

            self.seqs = Sequences(self.llm._llm, n_seq=self.config.n_seq, n_ctx=max(4096, 2 * self.config.max_tokens))

    def conditioned(self, question: str) -> tuple[str, str]:
        """(prompt, separator before the answer) of the conditioned score."""
        if self.llm.instruction_tuned:
            return gemma_prompt([{"role": "user", "content": question}]), ""
        return TEMPLATE.format(question=question), " "

    def score(self, pairs: list[tuple[str, str]]) -> list[tuple[float, float] | None]:
        """(conditioned NLL, direct NLL) per (question, answer): the mean over the answer's tokens; None when the
        pair is longer than ``max_tokens``."""
        both = []  # per pair: (conditioned prompt, continuation), (empty prompt, answer)
        for question, answer in pairs:
            prompt, sep = self.conditioned(question)
            both.append([(prompt, sep + answer), ("", answer)])
        if self.seqs is not None:
            fits = [k for k, ((prompt, text), _) in enumerate(both)
                    if len(self.seqs.tokenize(prompt + text, True)) <= self.config.max_tokens]
            flat = self.seqs.score_pairs([item for k in fits for item in both[k]])
            logprobs = {k: (flat[2 * j], flat[2 * j + 1]) for j, k in enumerate(fits)}
        else:
            from curate.evaluate.loglik import token_logprobs

            logprobs = {k: tuple(token_logprobs(self.llm, prompt, {"a": text})["a"] for prompt, text in items)
                        for k, items in enumerate(both)}
        return [(-float(np.mean(logprobs[k][0])), -float(np.mean(logprobs[k][1]))) if k in logprobs else None
                for k in range(len(pairs))]

    def sketch(self, batch: dict[str, list]) -> list[tuple[float, float] | None]:
        found = [first_question_last_answer(r) if r["kind"] in ("qa", "vqa") else None for r in rows(batch)]
        todo = [i for i, pair in enumerate(found) if pair is not None]
        scores = dict(zip(todo, self.score([found[i] for i in todo])))
        self.counters["scored"] += sum(1 for v in scores.values() if v is not None)
        self.counters["unscored_too_long"] += sum(1 for v in scores.values() if v is None)
        return [scores.get(i) for i in range(len(found))]

    def begin(self) -> None:
        self._top: list[list[bool]] = []
        self._threshold: float | None = None

    def survey(self, sketches: list[list]) -> None:
        """With ``keep_top``: mark, over every batch's scores, the highest-IFD pairs among those ``max_ifd`` keeps."""
        limit = self.config.max_ifd
        scored = [(b, i, ifd_of(s)) for b, sketch in enumerate(sketches) for i, s in enumerate(sketch) if s is not None]
        ranked = [x for x in scored if limit is None or x[2] < limit]
        keep = math.ceil(self.config.keep_top * len(ranked))
        chosen = sorted(ranked, key=lambda x: (-x[2], x[0], x[1]))[:keep]
        self._threshold = chosen[-1][2] if chosen else None
        marks = {(b, i) for b, i, _ in chosen}
        self._top = [[(b, i) in marks for i in range(len(sketch))] for b, sketch in enumerate(sketches)]

    def consume(self, sketch: list) -> dict[str, list]:
        c = self.config
        top = self._top.pop(0) if self.surveys else None
        out = {"ifd": [], "ifd_conditioned_nll": [], "ifd_direct_nll": [], DROP: [], DROP_DETAIL: []}
        for i, s in enumerate(sketch):
            drop = detail = None
            ifd = None if s is None else ifd_of(s)
            if s is not None:
                if c.max_ifd is not None and ifd >= c.max_ifd:
                    drop, detail = "ifd_unhelpful", f"IFD {ifd:.4f} >= {c.max_ifd}: conditioned NLL {s[0]:.4f}, " \
                                                    f"direct NLL {s[1]:.4f}"
                elif top is not None and not top[i]:
                    drop, detail = "ifd_not_top", f"IFD {ifd:.4f} below the top {c.keep_top:.0%} (its last kept " \
                                                  f"pair: {self._threshold:.4f})"
            out["ifd"].append(ifd)
            out["ifd_conditioned_nll"].append(None if s is None else s[0])
            out["ifd_direct_nll"].append(None if s is None else s[1])
            out[DROP].append(drop)
            out[DROP_DETAIL].append(detail)
        return out
