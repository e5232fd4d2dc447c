"""``synth_qa``: grounded question-answer pairs from document chunks, checked by retrieval with the question.

Two ways to write a pair (``answer_mode``; ``auto``, the default, picks ``extractive`` for a base model and
``abstractive`` for an instruction-tuned one; each row records the mode in ``meta.generator.answer_mode``):

- ``extractive`` (answer first; what a small base model such as the embedded Gemma 3 270M can do well): each chunk is
  split into answerable units (``curate.rag.units``: a sentence or short span, a list kept whole; headings, page
  furniture, contents, references and exercise instructions are skipped and counted as ``units_skipped_*``). At most
  ``units_per_chunk`` units get a question. ``question_source``:

  - ``writer`` (the default for a base model): the question writer shipped with curate (``curate.llm.writer``, a
    LoRA on the embedded Gemma 3 270M trained to ask what an answer span answers) writes ``writer.candidates``
    questions per unit, many units per forward pass. Units that only announce what follows or are questions
    themselves, are a line of a scripted dialogue, open by pointing outside the chunk or have no verb are skipped
    (``units_skipped_announces`` / ``_asks`` / ``_dialogue`` / ``_dangling`` / ``_verbless``). A candidate must end
    its line, stand alone (``curate.rag.question_checks.question_problem``), ask what the unit can answer
    (``answer_type_problem``; a wh-question about an act the unit forbids is ``drops_prohibition``, one that negates
    what the unit states ``inverts_condition``), not restate the unit (``restates_unit``), bring no content word the
    unit cannot speak to (``adds_context``: "... if the animal is a fish?") and be one the writer is sure of: its mean
    token log-probability given the unit at least ``writer.min_logprob`` (``low_confidence``; on hand-labelled pairs of
    an earlier writer it told correct pairs from wrong ones better than the margin or the similarity did). The
    ``writer.scored`` likeliest usable candidates then go through the answer-level round trip: the writer's mean token
    log-probability of the question given its own unit minus the best given one of the ``writer.rivals`` other units of
    the chunk nearest to the question must exceed ``writer.min_margin``; the likeliest candidate that passes wins. The
    unit is dropped as ``not_singled_out`` when none passes, else with its candidates' most common problem (detail:
    every candidate with its problem and margin).
  - ``templates`` reads the question off the unit's form (``curate.rag.templates``; no model is loaded); ``llm``
    has the LLM write it (few-shot on off-domain examples, JSON grammar), and ``both`` (the default for an
    instruction-tuned model) uses the LLM where no template fits. Every question must ask what the unit can answer
    (``wrong_answer_type``); an LLM-written one must also stand alone.

  Every question is then checked by a round trip: retrieved by that question from the whole index, the unit's own
  chunk must be among the ``round_trip_k`` nearest, and the question-unit cosine similarity must reach
  ``min_question_similarity``. The answer is the unit's text, cited to its chunk and pages; the context holds the
  ``top_k`` passages the question retrieved (more when the unit's chunk ranks lower). Drop reasons:
  ``no_answerable_unit`` (the chunk row; detail: skipped spans by reason; ``no_template_question`` with templates
  only), ``generation_error`` (the backend's message as detail), ``malformed_question``, ``not_a_question``,
  ``mentions_source``, ``unresolved_pronoun``, ``copied_example`` (after ``max_retries`` extra attempts; the raw
  output kept), ``wrong_answer_type``, ``drops_prohibition``, ``inverts_condition``, ``restates_unit``,
  ``adds_context``, ``low_confidence``, ``not_singled_out``, ``duplicate_question`` (repeats a question kept for the
  same chunk), ``round_trip_failed``, ``question_off_unit``.
- ``abstractive`` (for strong models: Gemma 3n E4B-it, MedGemma, any server): the LLM writes
  ``questions_per_chunk`` questions per chunk; the ``top_k`` nearest chunks are retrieved *by each question*; the LLM
  answers from those passages only and cites them by number. Drop reasons: ``generation_error``,
  ``insufficient_context``, ``no_citation``,
  ``copied_example`` (the answer repeats a few-shot example), ``malformed_questions`` / ``malformed_answer`` (raw
  output kept). Questions that repeat an example are discarded before answering.

A backend's ``TransientError`` fails the batch without marking it done, so a rerun retries it; when it carries the
generations that finished (``partial``), those are kept and only the failed prompts are sent again first. Seeds
derive from the batch's chunk ids (the writer's from each chunk's id and unit), and each batch's generation starts
from an empty cache, so rerunning a batch (after a crash) reproduces its rows.

Consumes ``chunk`` rows (``id``, ``text``, ``doc_id``, ``page``, ``page_end``, ``source``, ``license``,
``provenance``); other kinds pass through. Produces ``qa`` rows: ``messages`` (user question, assistant answer),
``context`` (the retrieved passages as numbered text), ``citations`` ([{chunk_id, doc_id, page, page_end}]) and
``meta`` = {generator (backend, model, answer_mode, sampling), prompt (name, version, sha256), chunk_id, and for
extractive rows unit (start offset, list) and round_trip (rank, similarity), and for writer rows written
(candidate number, its mean token log-probability, margin, rival units)}.

Example::

    - stage: synth_qa
      batch_size: 8            # chunks per checkpoint
      answer_mode: auto        # extractive | abstractive | auto
      units_per_chunk: 5       # extractive
      questions_per_chunk: 2   # abstractive
      top_k: 3
      llm: {backend: llamacpp}  # the embedded Gemma 3 270M
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from curate.embed import embed
from curate.llm import LLMConfig, load_llm
from curate.llm.base import Generation, Sampling, TransientError, first_json_object
from curate.llm.prompts import load_prompt
from curate.io import file_sha256
from curate.llm.writer import QuestionWriter, Written, WriterError, adapter_path
from curate.paths import beside
from curate.quality.text import STOPWORDS, stem
from curate.rag.index import ChunkIndex, resolve
from curate.rag.question_checks import (answer_type_problem, copies, holds, pick_units, question_problem, round_trip,
                                        same_question, word_set, written_question_problem)
from curate.rag.templates import template_question
from curate.rag.units import FINITE_VERB, MAX_WORDS, MIN_WORDS, Unit, answerable_units
from curate.schema import GROUNDING_COLUMNS, make_qa
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows

INSUFFICIENT = "INSUFFICIENT_CONTEXT"


class SamplingConfig(StageConfig):
    max_tokens: int = 160
    temperature: float = 0.3
    top_p: float = 0.95
    seed: int = 0


class WriterConfig(StageConfig):
    """The question writer (``curate.llm.writer``) and how ``synth_qa`` samples it."""

    adapter: str | None = None  # an adapter.gguf or its folder; default: the one shipped with curate
    candidates: int = Field(default=4, ge=1, le=16)  # per unit: the greedy question, then sampled ones
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=40, ge=8)
    scored: int = Field(default=2, ge=1)  # likeliest usable candidates per unit given the answer-level round trip
    rivals: int = Field(default=2, ge=1)  # other units of the chunk each is scored under (nearest to the question)
    min_margin: float = 0.0  # own-unit minus best rival-unit mean log-probability per token
    min_logprob: float | None = -0.8  # a question's mean token log-probability given its unit; None: no floor
    seed: int = 0
    n_threads: int | None = None


class SynthQAConfig(StageConfig):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "synth_qa.v2"
    answer_mode: Literal["auto", "extractive", "abstractive"] = "auto"
    questions_per_chunk: int = Field(default=2, ge=1, le=10)
    units_per_chunk: int = Field(default=5, ge=1, le=20)
    question_source: Literal["auto", "writer", "templates", "llm", "both"] = "auto"
    writer: WriterConfig = Field(default_factory=WriterConfig)
    min_unit_words: int = Field(default=MIN_WORDS, ge=1)
    max_unit_words: int = Field(default=MAX_WORDS, ge=8)
    round_trip_k: int = Field(default=3, ge=1, le=20)
    min_question_similarity: float = Field(default=0.5, ge=-1, le=1)
    top_k: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=2, ge=0)
    min_question_chars: int = 12
    question_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    unit_question_sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_tokens=48,
                                                                                          temperature=0.2))
    answer_sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_tokens=200, temperature=0.2))
    index: str = "index"
    collection: str = "chunks"
    embedding_model: str | None = None

    def modes(self) -> tuple[str, str]:
        """(answer mode, question source) with ``auto`` resolved: a base model answers extractively with questions
        from the writer; an instruction-tuned one answers abstractively (or asks for units where no template fits)."""
        tuned = self.llm.is_instruction_tuned()
        mode = self.answer_mode if self.answer_mode != "auto" else "abstractive" if tuned else "extractive"
        return mode, self.question_source if self.question_source != "auto" else "both" if tuned else "writer"

    def uses_writer(self) -> bool:
        return self.modes() == ("extractive", "writer")

    @model_validator(mode="after")
    def _adapter(self) -> "SynthQAConfig":
        adapter = self.writer.adapter
        if self.uses_writer() and (adapter is None or Path(adapter).expanduser().is_absolute()):
            try:
                adapter_path(adapter)  # a relative path is checked once relative_to has placed it
            except WriterError as exc:
                raise ValueError(str(exc)) from None
        return self

    def relative_to(self, base: Path) -> "SynthQAConfig":
        adapter = self.writer.adapter
        if not adapter or Path(adapter).expanduser().is_absolute():
            return self
        data = self.model_dump()
        data["writer"]["adapter"] = str(beside(base, adapter))
        return type(self).model_validate(data)


def questions_schema(n: int) -> dict:
    return {"type": "object", "properties": {"questions": {
        "type": "array", "items": {"type": "string", "minLength": 10, "maxLength": 160}, "minItems": n,
        "maxItems": n}}, "required": ["questions"]}


# maxLength bounds make a grammar-constrained reply close its JSON before max_tokens cuts it off.
ANSWER_SCHEMA = {"type": "object", "properties": {
    "answer": {"type": "string", "minLength": 2, "maxLength": 480},
    "sources": {"type": "array", "items": {"type": "integer"}, "maxItems": 5}}, "required": ["answer", "sources"]}


UNIT_QUESTION_SCHEMA = {"type": "object", "properties": {
    "question": {"type": "string", "minLength": 10, "maxLength": 200}}, "required": ["question"]}


@dataclass(frozen=True)
class Failed:
    """Parsed output that is not usable, and why (the reject reason if no retry does better)."""

    reason: str


def parse_unit_question(text: str, examples: tuple[str, ...]) -> str | Failed | None:
    """The question in a ``{"question": ...}`` reply; a ``Failed`` reason when it cannot stand alone (see
    ``curate.rag.question_checks.question_problem``); None when malformed."""
    try:
        question = " ".join(str(first_json_object(text)["question"]).split())
    except (ValueError, KeyError, TypeError):
        return None
    problem = question_problem(question, examples)
    return Failed(problem) if problem else question


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
    outputs = GROUNDING_COLUMNS

    def fingerprint_extra(self) -> list:
        extra = [load_prompt(self.config.prompt).sha256]  # an edited prompt file redoes the stage
        if self.config.uses_writer():  # and so does another writer adapter
            extra.append(file_sha256(adapter_path(self.config.writer.adapter)))
        return extra

    def setup(self) -> None:
        c = self.config
        self.mode, self.question_source = c.modes()
        writes = self.mode == "extractive" and self.question_source == "writer"
        # template and writer questions need no LLM backend: it is loaded only when it writes something
        needs_llm = self.mode == "abstractive" or self.question_source in ("llm", "both")
        self.llm = load_llm(c.llm) if needs_llm else None
        self.writer = QuestionWriter(c.writer.adapter, n_threads=c.writer.n_threads) if writes else None
        self.prompts = load_prompt(c.prompt)
        self.index = ChunkIndex(resolve(self.run_dir, c.index), c.collection, c.embedding_model, create=False)

    def _generate(self, prompts: list, key: str, sampling: SamplingConfig, schema: dict,
                  parse) -> list[tuple[Any, Generation]]:
        """Generate with bounded retries; returns (parsed, last generation) per prompt, in order. ``parse`` returns
        the parsed value, or None or a ``Failed`` reason for output worth another attempt; a generation the backend
        reports as an error (a prompt over the context window, a server's 4xx) is ``Failed("generation_error")``, its
        message kept as the reject's detail.

        Each attempt is one batched call seeded from ``key`` (the batch's chunk ids) and the attempt number, so a
        rerun of the same batch reproduces it. When a backend's ``TransientError`` carries ``partial`` results, the
        finished generations are kept and only the failed prompts are sent again, with the same seed; an error that
        finished none is raised.
        """
        results: list[Any] = [None] * len(prompts)
        last: list[Generation | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        for attempt in range(self.config.max_retries + 1):
            if not todo:
                break
            params = Sampling(sampling.max_tokens, sampling.temperature, sampling.top_p,
                              chunk_seed(sampling.seed, key, attempt))
            pending = todo
            while pending:
                try:
                    done = list(zip(pending, self.llm.generate_batch([prompts[i] for i in pending], params, schema)))
                except TransientError as err:
                    done = [(i, gen) for i, gen in zip(pending, getattr(err, "partial", None) or []) if gen]
                    if not done:
                        raise
                for i, gen in done:
                    self.counters["tokens_generated"] += gen.completion_tokens
                    last[i] = gen
                    results[i] = Failed("generation_error") if gen.error else parse(gen.text)
                finished = {i for i, _ in done}
                pending = [i for i in pending if i not in finished]
            todo = [i for i in todo if results[i] is None or isinstance(results[i], Failed)]
        return list(zip(results, last))

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        out: list[dict] = []
        chunks = []
        for row in rows(batch):
            (chunks if row["kind"] == "chunk" else out).append(row)
        out += (self._abstractive(chunks) if self.mode == "abstractive" else
                self._written(chunks) if self.question_source == "writer" else self._extractive(chunks))
        return {k: [r.get(k) for r in out] for k in [*batch, *self.outputs, DROP, DROP_DETAIL]}

    def _abstractive(self, chunks: list[dict]) -> list[dict]:
        """Questions per chunk, retrieval by each question, then answers written from the retrieved passages."""
        c, it = self.config, self.llm.instruction_tuned
        out: list[dict] = []
        q_prompts = [self.prompts.fill("questions", it, passage=ch["text"], n=c.questions_per_chunk)
                     for ch in chunks]
        key = ",".join(ch["id"] for ch in chunks)
        q_results = self._generate(
            q_prompts, key, c.question_sampling, questions_schema(c.questions_per_chunk),
            lambda t: parse_questions(t, c.questions_per_chunk, c.min_question_chars, self.prompts.examples))
        pending = []  # (chunk, question index, question)
        for ch, (questions, gen) in zip(chunks, q_results):
            if questions is None or isinstance(questions, Failed):
                out.append({**ch, DROP: questions.reason if questions else "malformed_questions",
                            DROP_DETAIL: gen.error or gen.text})
                continue
            pending += [(ch, j, q) for j, q in enumerate(questions)]
        hits = self.index.query([q for _, _, q in pending], c.top_k)
        a_prompts = [self.prompts.fill("answer", it, question=q, context=numbered(h))
                     for (_, _, q), h in zip(pending, hits)]
        a_results = self._generate(a_prompts, key + ":answers", c.answer_sampling, ANSWER_SCHEMA,
                                   lambda t, n=c.top_k: parse_answer(t, n))
        for (ch, j, question), retrieved, (parsed, gen) in zip(pending, hits, a_results):
            out.append(self._qa_row(ch, j, question, retrieved, parsed, gen))
        return out

    def _extractive(self, chunks: list[dict]) -> list[dict]:
        """Answerable units per chunk, the question each unit answers, then the round trip (see the module
        docstring)."""
        out: list[dict] = []
        asks = []  # (chunk, unit number, unit, template name or "llm", question or None)
        for ch in chunks:
            picked, reason, skipped = self._pick(ch)
            if reason:
                out.append({**ch, DROP: reason, DROP_DETAIL: json.dumps(skipped)})
            asks += [(ch, j, unit, *template) for j, (unit, template) in enumerate(picked)]
        self.counters["units"] += len(asks)
        written = iter(self._llm_questions([a[2] for a in asks if a[3] == "llm"], chunks))
        candidates = []
        kept: dict[str, list[str]] = {}  # chunk id -> questions kept so far
        for ch, j, unit, source, question in asks:
            self.counters[f"questions_{'llm' if source == 'llm' else 'template'}"] += 1
            gen = next(written) if source == "llm" else None
            if source == "llm":
                question, reason = gen[0], (None if isinstance(gen[0], str) else
                                            gen[0].reason if gen[0] else "malformed_question")
                reason = reason or answer_type_problem(question, unit.text)
                if reason:
                    out.append(self._unit_row(ch, j, unit, question if isinstance(question, str) else None, source,
                                              [], gen[1], reason, gen[1].error or gen[1].text))
                    continue
            elif reason := answer_type_problem(question, unit.text):
                out.append(self._unit_row(ch, j, unit, question, source, [], None, reason, question))
                continue
            if same_question(question, kept.setdefault(ch["id"], [])):
                out.append(self._unit_row(ch, j, unit, question, source, [], gen and gen[1], "duplicate_question",
                                          question))
                continue
            kept[ch["id"]].append(question)
            candidates.append((ch, j, unit, source, question, gen and gen[1], None))
        return out + self._round_trips(candidates)

    def _written(self, chunks: list[dict]) -> list[dict]:
        """Questions from the question writer (see the module docstring); one generation call and one scoring call
        for the whole batch. Seeds derive from each chunk's id and unit number."""
        c, w = self.config, self.config.writer
        out: list[dict] = []
        plans = []  # (chunk, its units, the picked units' indexes)
        for ch in chunks:
            units, skipped = self._units(ch, writer=True)
            if not units:
                out.append({**ch, DROP: "no_answerable_unit", DROP_DETAIL: json.dumps(dict(skipped))})
                continue
            plans.append((ch, units, pick_units(units, c.units_per_chunk)))
        spans = [(p, i) for p, (_, _, picked) in enumerate(plans) for i in picked]
        self.counters["units"] += len(spans)
        written = self.writer.write([plans[p][1][i].text for p, i in spans], w.candidates,
                                    [chunk_seed(w.seed, plans[p][0]["id"], i) for p, i in spans],
                                    w.temperature, w.top_p, w.max_tokens)
        self.counters["tokens_generated"] += sum(len(x.ids) for cands in written for x in cands)
        checked = {span: [self._check_written(x, plans[span[0]][1][span[1]], k) for k, x in enumerate(cands)]
                   for span, cands in zip(spans, written)}
        self._margins(plans, checked)
        candidates = []
        for p, (ch, units, picked) in enumerate(plans):
            kept: list[str] = []
            for i in picked:
                cands = checked[(p, i)]
                scored = [x for x in cands if x["margin"] is not None]
                best = max((x for x in scored if x["margin"] > w.min_margin),
                           key=lambda x: x["written"].mean_logprob, default=None)
                detail = json.dumps({"candidates": [{**{k: v for k, v in x.items() if k != "written"},
                                                     "margin": _rounded(x["margin"])} for x in cands]})
                if best is None:
                    problems = [x["problem"] for x in cands if x["problem"]]
                    reason = "not_singled_out" if scored else max(sorted(set(problems)), key=problems.count)
                    out.append(self._unit_row(ch, i, units[i], scored[0]["question"] if scored else None, "writer",
                                              [], None, reason, detail))
                    continue
                if same_question(best["question"], kept):
                    out.append(self._unit_row(ch, i, units[i], best["question"], "writer", [], None,
                                              "duplicate_question", best["question"]))
                    continue
                kept.append(best["question"])
                self.counters["questions_writer"] += 1
                candidates.append((ch, i, units[i], "writer", best["question"], None,
                                   {"candidate": best["candidate"], "logprob": best["logprob"],
                                    "margin": _rounded(best["margin"]), "rivals": best["rivals"]}))
        return out + self._round_trips(candidates)

    def _check_written(self, written: Written, unit: Unit, k: int) -> dict:
        """Candidate ``k`` (0: the greedy one): its question and why it cannot be used (None when it can)."""
        question, floor = written.text, self.config.writer.min_logprob
        problem = ("not_a_question" if not written.stopped else written_question_problem(question, unit.text) or
                   ("low_confidence" if floor is not None and written.mean_logprob < floor else None))
        return {"question": question, "problem": problem, "candidate": k, "logprob": round(written.mean_logprob, 4),
                "written": written, "margin": None, "rivals": None}

    def _margins(self, plans: list, checked: dict[tuple[int, int], list[dict]]) -> None:
        """The answer-level round trip. For the ``writer.scored`` likeliest usable candidates of each unit, the mean
        token log-probability of the question given its own unit minus the best given one of its chunk's other
        units (the ``writer.rivals`` nearest to the question by embedding); set as each candidate's ``margin``
        (``problem`` ``not_scored`` for the others). A unit alone in its chunk has nothing to be confused with: its
        candidates pass (margin ``inf``, recorded as null)."""
        w = self.config.writer
        texts: list[str] = []
        first: dict[int, int] = {}  # plan -> index of its first unit in ``texts``
        for p, (_, units, _) in enumerate(plans):
            first[p] = len(texts)
            texts += [u.text for u in units]
        scored = []
        for (p, i), cands in checked.items():
            usable = sorted((x for x in cands if x["problem"] is None), key=lambda x: -x["written"].mean_logprob)
            for x in usable[w.scored:]:
                x["problem"] = "not_scored"
            scored += [(p, i, x) for x in usable[:w.scored]]
        if not scored:
            return
        q_vectors = embed([x["question"] for _, _, x in scored], self.index.embedder)
        u_vectors = embed(texts, self.index.embedder)
        items, where = [], []
        for (p, i, x), qv in zip(scored, q_vectors):
            n_units = len(plans[p][1])
            if n_units == 1:
                x["margin"], x["rivals"] = float("inf"), []
                continue
            others = sorted((j for j in range(n_units) if j != i),
                            key=lambda j: -float(np.dot(qv, u_vectors[first[p] + j])))[:w.rivals]
            x["rivals"] = others
            for j in others:
                items.append((first[p] + j, x["written"]))
                where.append(x)
        rival: dict[int, float] = {}
        for x, value in zip(where, self.writer.loglik(texts, items)):
            rival[id(x)] = max(rival.get(id(x), -np.inf), value)
        for x in where:  # given its own unit, a candidate's score is the one it was written with
            x["margin"] = x["written"].mean_logprob - rival[id(x)]

    def _units(self, chunk: dict, writer: bool = False) -> tuple[list[Unit], Counter]:
        """The chunk's answerable units and the skipped spans by reason, counted as ``units_skipped_*``; for the
        writer, less the units it cannot ask about (``unusable``)."""
        c = self.config
        units, skipped = answerable_units(chunk["text"], c.min_unit_words, c.max_unit_words)
        if writer:
            usable = []
            for u in units:
                if reason := unusable(u):
                    skipped[reason] += 1
                else:
                    usable.append(u)
            units = usable
        for reason, n in skipped.items():
            self.counters[f"units_skipped_{reason}"] += n
        return units, skipped

    def _pick(self, chunk: dict) -> tuple[list[tuple[Unit, tuple[str, str | None]]], str | None, dict]:
        """The chunk's units to ask about, each with (template name, question) or ("llm", None); a drop reason for
        the chunk when there are none; the skipped spans by reason."""
        c = self.config
        units, skipped = self._units(chunk)
        if not units:
            return [], "no_answerable_unit", dict(skipped)
        templated = {i: t for i, u in enumerate(units)
                     if self.question_source != "llm" and (t := template_question(u)) is not None}
        if self.question_source == "templates":
            if not templated:
                return [], "no_template_question", dict(skipped)
            units, templated = [units[i] for i in templated], {k: t for k, t in enumerate(templated.values())}
        picked = pick_units(units, c.units_per_chunk, set(templated))
        return [(units[i], (templated[i][1], templated[i][0]) if i in templated else ("llm", None)) for i in picked], \
            None, dict(skipped)

    def _llm_questions(self, units: list[Unit], chunks: list[dict]) -> list[tuple[Any, Generation]]:
        """(question, ``Failed`` reason or None when malformed; last generation) for each unit, written by the LLM
        (retried, seeded by the batch's chunk ids)."""
        prompts = [self.prompts.fill("unit_question", self.llm.instruction_tuned, unit=u.text) for u in units]
        key = ",".join(ch["id"] for ch in chunks) + ":units"
        return self._generate(prompts, key, self.config.unit_question_sampling, UNIT_QUESTION_SCHEMA,
                              lambda t: parse_unit_question(t, self.prompts.examples)) if units else []

    def _round_trips(self, candidates: list) -> list[dict]:
        """Each candidate's row, dropped as ``round_trip_failed`` / ``question_off_unit`` when its question does not
        lead back to its unit."""
        if not candidates:
            return []
        c = self.config
        q_vectors = embed([cand[4] for cand in candidates], self.index.embedder)
        u_vectors = embed([cand[2].text for cand in candidates], self.index.embedder)
        hits = self.index.query_vectors(q_vectors, max(c.top_k, c.round_trip_k))
        out = []
        for (ch, j, unit, source, question, gen, extra), found, qv, uv in zip(candidates, hits, q_vectors, u_vectors):
            trip = round_trip(unit, ch["id"], found[:c.round_trip_k], qv, uv)
            reason = ("round_trip_failed" if trip.rank is None else
                      "question_off_unit" if trip.similarity < c.min_question_similarity else None)
            detail = json.dumps({"question": question, **trip.to_dict(),
                                 "retrieved": [h.id for h in found[:c.round_trip_k]]}) if reason else None
            out.append(self._unit_row(ch, j, unit, question, source, found[:max(c.top_k, trip.rank or 0)], gen,
                                      reason, detail, trip, extra))
        return out

    def _unit_row(self, chunk: dict, j: int, unit: Unit, question: str | None, source: str, retrieved: list,
                  gen: Generation | None, reason: str | None, detail: str | None, trip=None,
                  written: dict | None = None) -> dict:
        """A qa row whose answer is ``unit`` and whose question came from ``source`` (a template's name, "llm" or
        "writer"; ``written``: the writer's margin and candidate number); rejected with ``reason`` when one is
        given."""
        generator = {"answer_mode": "extractive", "question_source": source}
        if source == "llm":
            generator.update(self.llm.describe(), question_sampling=self.config.unit_question_sampling.model_dump())
        elif source == "writer":
            generator.update(self.writer.describe(), question_sampling=self.config.writer.model_dump(
                exclude={"adapter", "n_threads"}))
        meta = {"chunk_id": chunk["id"], "unit": {"start": unit.start, "list": unit.is_list}, "generator": generator,
                "prompt": self.prompts.describe() if source == "llm" else None,
                "finish_reason": gen.finish_reason if gen else None,
                "round_trip": trip.to_dict() if trip else None, "written": written,
                "template": None if source in ("llm", "writer") else f"synth_qa.{source}"}
        row = make_qa(question=question or "", answer=unit.text, source=chunk["source"], license=chunk["license"],
                      origin=chunk["provenance"]["origin"], revision=chunk["provenance"]["revision"],
                      locator=f"chunk={chunk['id']}#u{j}", meta={k: v for k, v in meta.items() if v is not None})
        row["context"] = numbered(retrieved) if retrieved else None
        row["citations"] = [{"chunk_id": h.id, "doc_id": h.doc_id, "page": h.page, "page_end": h.page_end}
                            for h in retrieved if h.id == chunk["id"] or holds(h.text, unit.text)]
        if reason:
            row[DROP], row[DROP_DETAIL] = reason, detail
        return row

    def _qa_row(self, chunk: dict, j: int, question: str, retrieved: list, parsed, gen: Generation) -> dict:
        c = self.config
        failed = parsed if isinstance(parsed, Failed) else None
        answer, cited = parsed if parsed and not failed else (gen.text, [])
        row = make_qa(
            question=question, answer=answer, source=chunk["source"], license=chunk["license"],
            origin=chunk["provenance"]["origin"], revision=chunk["provenance"]["revision"],
            locator=f"chunk={chunk['id']}#q{j}",
            meta={"chunk_id": chunk["id"], "generator": {**self.llm.describe(), "answer_mode": "abstractive",
                                                          "question_sampling":
                  c.question_sampling.model_dump(), "answer_sampling": c.answer_sampling.model_dump()},
                  "prompt": self.prompts.describe(), "finish_reason": gen.finish_reason})
        row["context"] = numbered(retrieved)
        row["citations"] = [{"chunk_id": h.id, "doc_id": h.doc_id, "page": h.page, "page_end": h.page_end}
                            for n, h in enumerate(retrieved, 1) if n in cited]
        if failed:
            row[DROP], row[DROP_DETAIL] = failed.reason, gen.error
        elif parsed is None:
            row[DROP], row[DROP_DETAIL] = "malformed_answer", gen.text
        elif INSUFFICIENT in answer.upper().replace(" ", "_"):
            row[DROP] = "insufficient_context"
        elif copies(answer, self.prompts.examples):
            row[DROP], row[DROP_DETAIL] = "copied_example", answer
        elif not row["citations"]:
            row[DROP], row[DROP_DETAIL] = "no_citation", json.dumps({"answer": answer})
        return row


_ANNOUNCES = re.compile(r"\b(?:the following|as follows|listed below|below are)\b|:$", re.IGNORECASE)
# A line of a scripted conversation, as guidelines print their worked examples: "You: " (the helper's lines), or a
# speaker (one to three words, not a label such as "Note") and a quote or what they say in the first person ("Woman:
# I feel terrible!", "Child: We all ran ...").
_STAGE_DIRECTION = r"(?: \[[^\]]*\])?"  # "You [to the wife]: ..."
_DIALOGUE = re.compile(rf"^(?:You{_STAGE_DIRECTION}: |(?!(?i:note|warning|caution|remember|important|example|tip|key "
                       r"point|step|source|reference|figure|table)\b)[A-Z][\w’'.-]*(?: [\w’'.-]+){0,2}: +(?:[\"“‘\[]|"
                       r"(?:\S+ ){0,6}(?:I|I[’']\w+|(?i:my|me|we|our|us))\b))")
# ... or a turn of one anywhere in the unit, by a person speaking ("Where are your parents? Child: We all ran ...",
# "Wife: Yes, please!")
_TURN = re.compile(r"(?:^|(?<=[.!?\]”\"’)]) )(?i:you|(?:young |old |elderly |older )?(?:wo)?man|child|girl|boy|wife|"
                   r"husband|mother|father|parent|daughter|son|sister|brother|survivor|helper|refugee|neighbou?r|"
                   rf"friend|teacher|volunteer|nurse|doctor|patient|elder|student|aunt|uncle){_STAGE_DIRECTION}: ")
# ... or a speaker's own words: a manual does not say "I will" or "I can" ("If you like, we can talk over there and I
# can sit with you"); "MARK I will ..." (an upper-case name before it) is not a speaker
_SPEAKS = re.compile(r"(?:^|(?<=[a-z,;:.!?\"“] ))I(?:[’'](?:m|ll|ve|d)| (?:am|will|can|could|have|had|would|need|want|"
                     r"think|know|see|understand|just|wonder|hope|feel|promise)\b)")


_DANGLING = re.compile(r"^(?:(?:it|its|this|these|those|they|their|such|he|his|she|her)\b(?! is (?:important|"
                       r"essential|necessary|best|recommended|not|often))|(?:when|if|because of|after|before|in) "
                       r"(?:this|these|those|that|such)\b|(?:or|and|but|also|however|otherwise|then|instead|thus|hence|"
                       r"therefore|consequently|as a result)\b|for (?:this|these|that|those) reasons?\b|"
                       r"in (?:either|each|both) cases?\b)", re.IGNORECASE)


# ... or does what the text before it described ("Tell the casualty you are doing this because ...")
_DOES_THIS = re.compile(r"\b(?:doing|do|does|did|done) (?:this|that|so)(?=\s*(?:because|before|after|when|so|to|"
                        r"[,.;]))", re.IGNORECASE)


# ... or speaks of "these"/"such" things it has not named ("free of these organisms", "such lapses"); "such items as
# boards" names them after
_NAMED_BEFORE = re.compile(r"\b(?:these|such) ([a-z]+)\b(?!(?: [\w-]+){0,3} as\b)", re.IGNORECASE)


def _unnamed_referent(text: str) -> bool:
    """True when ``text`` says "these X" or "such X" of an X (a content word) it has not named before."""
    for m in _NAMED_BEFORE.finditer(text):
        word = m.group(1).lower()
        before = {stem(w) for w in word_set(text[:m.start()])}
        if word not in STOPWORDS and stem(word) not in before:
            return True
    return False


_RELATIVE = re.compile(r"\b(?:which|that|who|where)\b[^,.;:]*", re.IGNORECASE)


def verbless(text: str) -> bool:
    """True for a gerund phrase with no verb of its own ("Providing safe disposal of clinical waste to protect
    health care workers."): an item whose list lead-in was lost, not a statement."""
    first = text.split()[0] if text.split() else ""
    main = re.sub(r"\bto \w+", "", _RELATIVE.sub("", text))  # "... to reduce risk": not a verb of its own
    return first.endswith("ing") and first[:1].isupper() and not FINITE_VERB.search(main)


def unusable(unit: Unit) -> str | None:
    """Why a unit cannot be an answer to the writer's question, or None: ``announces`` (a prose unit that only
    announces what follows, "The following items are minimum safety equipment.": its items are not in it), ``asks``
    (it is itself a question, as checklists are written), ``dialogue`` (a line of a scripted conversation, "Child:
    We all ran outside ...", "You [to the wife]: ...", or words in the first person, "I will try to help you": what
    someone says in an example, not what the text teaches), ``dangling`` (it opens by pointing at what came before it,
    outside the chunk: "It should extend at least 4 inches ...", "Because of these possible complications, ...",
    "Instead, ...", "For this reason, ...", "In either case, ...", does
    what was described there: "Tell the casualty you are doing this because ...", or speaks of things it has not
    named: "... free of these organisms") or ``verbless`` (a list item without its lead-in: ``verbless``). A unit
    whose content is elsewhere in the document ("... proceed to step (3)") is already a ``reference`` skip of
    ``curate.rag.units``."""
    if unit.text.rstrip("\"'”’)").endswith("?"):
        return "asks"
    if _DIALOGUE.match(unit.text) or _TURN.search(unit.text) or _SPEAKS.search(unit.text):
        return "dialogue"
    if _DANGLING.match(unit.text) or _DOES_THIS.search(unit.text) or _unnamed_referent(unit.text):
        return "dangling"
    if not unit.is_list and verbless(unit.text):
        return "verbless"
    return "announces" if not unit.is_list and _ANNOUNCES.search(unit.text.rstrip(".")) else None


def _rounded(margin: float | None) -> float | None:
    """A margin as rows record it: rounded, and null where there was nothing to compare with (or no score)."""
    return None if margin is None or np.isinf(margin) else round(margin, 4)


def numbered(hits: list) -> str:
    """Retrieved passages as the numbered context the model sees and the row keeps."""
    return "\n".join(f"[{n}] {h.text}" for n, h in enumerate(hits, 1))
