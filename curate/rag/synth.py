"""``synth_qa``: grounded question-answer pairs from document chunks, with retrieval by the question.

For every ``chunk`` row the LLM writes ``questions_per_chunk`` questions the chunk answers. Each question is embedded
and the ``top_k`` nearest chunks are retrieved from the run's index *by the question* (not by the source chunk); the
LLM then answers from those passages only and cites them by number. Answers of "INSUFFICIENT_CONTEXT" are dropped
with reason ``insufficient_context``; an answer citing no retrieved passage with ``no_citation``; an answer that
repeats one of the prompt's few-shot examples (small base models do) with ``copied_example``; output that is still
malformed after ``max_retries`` extra attempts with ``malformed_questions`` / ``malformed_answer`` (the raw output
kept in the reject). Questions that repeat an example are discarded before answering and counted. A backend's ``TransientError`` fails the batch without marking it done, so a rerun
retries it. Seeds derive from the batch's chunk ids, so rerunning a batch (after a crash) reproduces its rows.

Consumes ``chunk`` rows (``id``, ``text``, ``doc_id``, ``page``, ``page_end``, ``source``, ``license``,
``provenance``); other kinds pass through. Produces ``qa`` rows: ``messages`` (user question, assistant answer),
``context`` (the retrieved passages as numbered text), ``citations`` ([{chunk_id, doc_id, page, page_end}]) and
``meta`` = {generator (backend, model, sampling), prompt (name, version, sha256), chunk_id}.

Example::

    - stage: synth_qa
      batch_size: 8            # chunks per checkpoint
      questions_per_chunk: 2
      top_k: 3
      llm: {backend: llamacpp}  # the embedded Gemma 3 270M
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pyarrow as pa
from pydantic import Field

from curate.llm import LLMConfig, load_llm
from curate.llm.base import Generation, Sampling
from curate.llm.prompts import load_prompt
from curate.rag.index import ChunkIndex, resolve
from curate.schema import make_qa
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows

INSUFFICIENT = "INSUFFICIENT_CONTEXT"
CITATION = pa.struct([("chunk_id", pa.string()), ("doc_id", pa.string()), ("page", pa.int32()),
                      ("page_end", pa.int32())])


class SamplingConfig(StageConfig):
    max_tokens: int = 160
    temperature: float = 0.3
    top_p: float = 0.95
    seed: int = 0


class SynthQAConfig(StageConfig):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "synth_qa.v1"
    questions_per_chunk: int = Field(default=2, ge=1, le=10)
    top_k: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=2, ge=0)
    min_question_chars: int = 12
    question_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    answer_sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_tokens=200, temperature=0.2))
    index: str = "index"
    collection: str = "chunks"
    embedding_model: str | None = None


def questions_schema(n: int) -> dict:
    return {"type": "object", "properties": {"questions": {
        "type": "array", "items": {"type": "string", "minLength": 10, "maxLength": 160}, "minItems": n,
        "maxItems": n}}, "required": ["questions"]}


# maxLength bounds make a grammar-constrained reply close its JSON before max_tokens cuts it off.
ANSWER_SCHEMA = {"type": "object", "properties": {
    "answer": {"type": "string", "minLength": 2, "maxLength": 480},
    "sources": {"type": "array", "items": {"type": "integer"}, "maxItems": 5}}, "required": ["answer", "sources"]}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def copies(text: str, examples: tuple[str, ...], threshold: float = 0.7) -> bool:
    """True when ``text`` shares at least ``threshold`` of its words (Jaccard) with one of ``examples``."""
    words = _words(text)
    return any(len(words & (ex := _words(e))) / max(len(words | ex), 1) >= threshold for e in examples)


def first_json_object(text: str) -> Any:
    """The first JSON object in a reply. A backend without a grammar (transformers, a server that ignores
    ``response_format``) wraps it in other text, e.g. ``1. {...}`` then the next few-shot block; raw newlines inside
    strings are allowed. Raises ValueError when there is none."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    return json.JSONDecoder(strict=False).raw_decode(text, start)[0]


def parse_questions(text: str, n: int, min_chars: int, examples: tuple[str, ...] = ()) -> list[str] | None:
    """The distinct, plausible questions in a model reply that copy no example; None when there are none."""
    try:
        items = first_json_object(text)["questions"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(items, list):
        return None
    seen, out = set(), []
    for q in items:
        q = " ".join(str(q).split())
        if len(q) >= min_chars and q.endswith("?") and q.lower() not in seen and not copies(q, examples, 0.9):
            seen.add(q.lower())
            out.append(q)
    return out[:n] or None


def parse_answer(text: str, n_passages: int) -> tuple[str, list[int]] | None:
    """(answer, cited passage numbers within 1..n) from a reply, or None when malformed."""
    try:
        data = first_json_object(text)
        answer, sources = " ".join(str(data["answer"]).split()), data["sources"]
        cited = sorted({int(s) for s in sources if 1 <= int(s) <= n_passages})
    except (ValueError, KeyError, TypeError):
        return None
    return (answer, cited) if answer else None


def chunk_seed(base: int, key: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{base}:{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class SynthQA(Stage):
    name = "synth_qa"
    Config = SynthQAConfig
    inputs = ("id", "kind", "text", "doc_id", "page", "page_end", "source", "license", "provenance")
    outputs = {"context": pa.string(), "citations": pa.list_(CITATION)}

    def fingerprint_extra(self) -> list:
        return [load_prompt(self.config.prompt).sha256]  # an edited prompt file redoes the stage

    def setup(self) -> None:
        c = self.config
        self.llm = load_llm(c.llm)
        self.prompts = load_prompt(c.prompt)
        self.index = ChunkIndex(resolve(self.run_dir, c.index), c.collection, c.embedding_model, create=False)

    def _generate(self, prompts: list, key: str, sampling: SamplingConfig, schema: dict,
                  parse) -> list[tuple[Any, Generation]]:
        """Generate with bounded retries; returns (parsed or None, last generation) per prompt, in order.

        Each attempt is one batched call seeded from ``key`` (the batch's chunk ids) and the attempt number, so a
        rerun of the same batch reproduces it.
        """
        results: list[Any] = [None] * len(prompts)
        last: list[Generation | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        for attempt in range(self.config.max_retries + 1):
            if not todo:
                break
            params = Sampling(sampling.max_tokens, sampling.temperature, sampling.top_p,
                              chunk_seed(sampling.seed, key, attempt))
            for i, gen in zip(todo, self.llm.generate_batch([prompts[i] for i in todo], params, schema)):
                self.counters["tokens_generated"] += gen.completion_tokens
                last[i] = gen
                results[i] = parse(gen.text)
            todo = [i for i in todo if results[i] is None]
        return list(zip(results, last))

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        c, it = self.config, self.llm.instruction_tuned
        out: list[dict] = []
        chunks = []
        for row in rows(batch):
            (chunks if row["kind"] == "chunk" else out).append(row)
        q_prompts = [self.prompts.render("questions", it, passage=ch["text"], n=c.questions_per_chunk)
                     for ch in chunks]
        key = ",".join(ch["id"] for ch in chunks)
        q_results = self._generate(
            q_prompts, key, c.question_sampling, questions_schema(c.questions_per_chunk),
            lambda t: parse_questions(t, c.questions_per_chunk, c.min_question_chars, self.prompts.examples))
        pending = []  # (chunk, question index, question)
        for ch, (questions, gen) in zip(chunks, q_results):
            if questions is None:
                out.append({**ch, DROP: "malformed_questions", DROP_DETAIL: gen.text})
                continue
            pending += [(ch, j, q) for j, q in enumerate(questions)]
        hits = self.index.query([q for _, _, q in pending], c.top_k)
        a_prompts = [self.prompts.render("answer", it, question=q, context=numbered(h))
                     for (_, _, q), h in zip(pending, hits)]
        a_results = self._generate(a_prompts, key + ":answers", c.answer_sampling, ANSWER_SCHEMA,
                                   lambda t, n=c.top_k: parse_answer(t, n))
        for (ch, j, question), retrieved, (parsed, gen) in zip(pending, hits, a_results):
            out.append(self._qa_row(ch, j, question, retrieved, parsed, gen))
        return {k: [r.get(k) for r in out] for k in [*batch, *self.outputs, DROP, DROP_DETAIL]}

    def _qa_row(self, chunk: dict, j: int, question: str, retrieved: list, parsed, gen: Generation) -> dict:
        c = self.config
        answer, cited = parsed if parsed else (gen.text, [])
        row = make_qa(
            question=question, answer=answer, source=chunk["source"], license=chunk["license"],
            origin=chunk["provenance"]["origin"], revision=chunk["provenance"]["revision"],
            locator=f"chunk={chunk['id']}#q{j}",
            meta={"chunk_id": chunk["id"], "generator": {**self.llm.describe(), "question_sampling":
                  c.question_sampling.model_dump(), "answer_sampling": c.answer_sampling.model_dump()},
                  "prompt": self.prompts.describe(), "finish_reason": gen.finish_reason})
        row["context"] = numbered(retrieved)
        row["citations"] = [{"chunk_id": h.id, "doc_id": h.doc_id, "page": h.page, "page_end": h.page_end}
                            for n, h in enumerate(retrieved, 1) if n in cited]
        if parsed is None:
            row[DROP], row[DROP_DETAIL] = "malformed_answer", gen.text
        elif INSUFFICIENT in answer.upper().replace(" ", "_"):
            row[DROP] = "insufficient_context"
        elif copies(answer, self.prompts.examples):
            row[DROP], row[DROP_DETAIL] = "copied_example", answer
        elif not row["citations"]:
            row[DROP], row[DROP_DETAIL] = "no_citation", json.dumps({"answer": answer})
        return row


def numbered(hits: list) -> str:
    """Retrieved passages as the numbered context the model sees and the row keeps."""
    return "\n".join(f"[{n}] {h.text}" for n, h in enumerate(hits, 1))
