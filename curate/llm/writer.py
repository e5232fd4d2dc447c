"""The question writer: the embedded Gemma 3 270M with a LoRA adapter, tuned by curate to write the question that an
answer span answers.

The adapter ships with the package (``curate/llm/question_writer/``: ``adapter.gguf``, a llama.cpp LoRA in float16;
``writer.json``, how it was made; ``README.md``, its card); ``curate writer train`` rebuilds it
(``curate.train.writer``). The writer sees one prompt form, in training and in use::

    Text: {answer}
    Question: {question}

``QuestionWriter`` loads the embedded GGUF with the adapter through llama.cpp and gives, for each answer span,
several candidate questions (``write``: one greedy, then sampled ones) and the log-likelihood of a question given a
span (``loglik``), which the answer-level round trip of ``synth_qa`` compares across a chunk's units. Both run many
sequences per forward pass (``curate.llm.sequences``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROMPT = "Text: {answer}\nQuestion:"
ADAPTER_DIR = Path(__file__).parent / "question_writer"
ADAPTER = "adapter.gguf"
REBUILD = "make writer` (curate writer train finetune/question-writer.yaml --out curate/llm/question_writer)"


class WriterError(Exception):
    """The writer's adapter is missing or unreadable; the message names the file and the command that rebuilds it."""


def prompt(answer: str) -> str:
    """The writer's prompt for one answer span (whitespace collapsed, as in training)."""
    return PROMPT.format(answer=" ".join(answer.split()))


def continuation(question: str) -> str:
    """What follows the prompt for ``question``: a space, the question and the newline that ends it."""
    return f" {' '.join(question.split())}\n"


def adapter_path(path: str | os.PathLike | None = None) -> Path:
    """The adapter GGUF: ``path`` (a file, or a folder holding ``adapter.gguf``), else the shipped one; checked to
    be a llama.cpp LoRA adapter."""
    target = Path(path).expanduser() if path else ADAPTER_DIR / ADAPTER
    if target.is_dir():
        target = target / ADAPTER
    if not target.is_file():
        raise WriterError(f"question-writer adapter {target} not found; rebuild it with `{REBUILD} or point "
                          "`writer.adapter` at your own")
    try:
        import gguf

        reader = gguf.GGUFReader(target)
        kind = reader.fields["general.type"]
        kind = bytes(kind.parts[kind.data[0]]).decode()
        if kind != "adapter" or not reader.tensors:
            raise ValueError(f"general.type is {kind!r}, not a LoRA adapter")
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise WriterError(f"question-writer adapter {target} is not a readable llama.cpp LoRA adapter ({exc}); "
                          f"rebuild it with `{REBUILD}") from None
    return target


def adapter_info(path: Path) -> dict:
    """The ``writer.json`` beside an adapter (how it was trained), or {} when there is none."""
    info = path.parent / "writer.json"
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Written:
    """One candidate question: its text (up to the newline), token ids, whether it ended with a newline, and the mean
    log-probability of its tokens given its span."""

    text: str
    ids: tuple[int, ...]
    stopped: bool
    mean_logprob: float


class QuestionWriter:
    """The embedded Gemma 3 270M with the question-writer adapter, in-process through llama.cpp; candidates and
    scores are computed many sequences at a time (``curate.llm.sequences``)."""

    def __init__(self, adapter: str | os.PathLike | None = None, *, n_threads: int | None = None,
                 n_seq: int = 64, model: str | None = None):
        from .llamacpp import LlamaCppLLM
        from .sequences import Sequences

        self.adapter = adapter_path(adapter)
        self.info = adapter_info(self.adapter)
        self.llm = LlamaCppLLM(model, n_ctx=512, n_threads=n_threads, lora=self.adapter,
                               check_grammar_after_sampling=False)
        self.seqs = Sequences(self.llm._llm, n_seq=n_seq)

    def describe(self) -> dict:
        return {**self.llm.describe(), "writer": {"adapter": self.adapter.name,
                                                  "sha256": self.info.get("adapter_sha256"),
                                                  "version": self.info.get("version")}}

    def write(self, answers: list[str], n: int, seeds: list[int], temperature: float = 0.8, top_p: float = 0.95,
              max_tokens: int = 40) -> list[list[Written]]:
        """``n`` candidates per answer span: the greedy question first, then ``n - 1`` sampled ones, the k-th drawn
        with seed ``seeds[span] + k``; each ends at the first newline."""
        draws = [(a, 0.0 if k == 0 else temperature, top_p, seeds[a] + k) for a in range(len(answers))
                 for k in range(n)]
        out = self.seqs.sample([prompt(a) for a in answers], draws, max_tokens)
        written = [Written(" ".join(r["text"].split()), tuple(r["ids"]), r["stopped"], r["mean_logprob"]) for r in out]
        return [written[a * n:(a + 1) * n] for a in range(len(answers))]

    def loglik(self, answers: list[str], items: list[tuple[int, Written | str]]) -> list[float]:
        """Mean log-probability per token of each item's question (a ``Written``'s own tokens, or a question text
        and its closing newline) after the prompt of ``answers[index]``."""
        pairs = [(a, q.ids if isinstance(q, Written) else continuation(q)) for a, q in items]
        return [sum(v) / max(len(v), 1) for v in self.seqs.score([prompt(a) for a in answers], pairs)]

    def close(self) -> None:
        self.seqs.close()
        self.llm.close()
