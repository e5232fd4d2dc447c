"""A person's reading of a sample of rows: ``curate review`` records it, the ``review`` stage applies it.

No score computed from the rows tells a correct synthesized pair from a wrong one well (``benchmarks/README.md``), so
the measure of a dataset's correctness is a person reading a random sample. ``read_rows`` shows a step's question-
answer rows one at a time, in a random order fixed by ``seed``, and appends each verdict to a labels file (JSON
lines) as it is given, so a review can stop at any row and go on later where it stopped:

    {"id": "7540d511c13a86ff", "key": "3f0c...", "verdict": "wrong", "why": "asks what the answer does not say",
     "order": 3, "seed": 0}

``key`` is a hash of the row's question and answer: a label whose row changed since it was read is not applied.
``verdict`` is ``correct``, ``wrong`` or ``unsure`` (the reader could not tell); ``order`` is the row's place in the
random order, so the labels are the first rows of that order and a random sample of the step's rows.

The ``review`` stage (``labels``: that file, relative to the pipeline file) drops each row whose label says
``wrong`` (reason ``reviewed_wrong``, the reader's words as the detail) and counts ``review_correct``,
``review_wrong``, ``review_unsure`` and ``review_changed`` (a label whose row's text changed: not applied). The
dataset card turns those counts into the sample's share of correct rows with a 95% Wilson interval. The file's
sha256 is part of the stage's fingerprint: more verdicts rerun the stage and what follows it.

Consumes ``id``, ``messages``; produces no new columns.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Callable, Iterable

from curate.evaluate.stats import wilson
from curate.io import file_sha256
from curate.paths import beside
from curate.quality.text import question_answer
from curate.stage import Filter, StageConfig

VERDICTS = ("correct", "wrong", "unsure")
ANSWERS = {"c": "correct", "w": "wrong", "u": "unsure"}
PASSAGE_CHARS = 1500  # of a cited passage shown beside a pair


class LabelsError(ValueError):
    """A labels file that cannot be read: the message names the file and line."""


def row_key(row: dict) -> str:
    """A hash of the row's question and answer: the text a verdict was given on."""
    question, answer = question_answer(row)
    return hashlib.sha256(f"{question}\x00{answer}".encode()).hexdigest()[:16]


def read_labels(path: Path) -> dict[str, dict]:
    """Row id -> its latest label (a later line for the same row replaces an earlier one); none for a missing file,
    a ``LabelsError`` for a path that is not a file or a line that is not a label."""
    labels: dict[str, dict] = {}
    if path.exists() and not path.is_file():
        raise LabelsError(f"{path.name}: not a file")
    if not path.is_file():
        return labels
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            label = json.loads(line)
        except ValueError as exc:
            raise LabelsError(f"{path.name} line {n}: not JSON ({exc.msg})") from None
        if not isinstance(label, dict) or not label.get("id") or not label.get("key") or \
                label.get("verdict") not in VERDICTS:
            raise LabelsError(f"{path.name} line {n}: a label needs an id, a key and a verdict "
                              f"({', '.join(VERDICTS)})")
        labels[label["id"]] = label
    return labels


def review_order(ids: Iterable[str], seed: int) -> list[str]:
    """The row ids in the random order a review reads them: the same for the same rows and seed, whatever order the
    step's files list them in."""
    order = sorted(set(ids))
    random.Random(seed).shuffle(order)
    return order


def summary(verdicts: Iterable[str]) -> str:
    """"k of n read are correct (p%, 95% CI a-b%); w wrong, u unsure" for a list of verdicts."""
    verdicts = list(verdicts)
    n, k = len(verdicts), verdicts.count("correct")
    low, high = wilson(k, n)
    share = f" ({100 * k / n:.0f}%, 95% CI {100 * low:.0f}-{100 * high:.0f}%)" if n else ""
    return f"{k} of {n} read are correct{share}; {verdicts.count('wrong')} wrong, {verdicts.count('unsure')} unsure"


def show_row(row: dict) -> str:
    """The text a reader judges a row on: question, answer, where it comes from and the passage it cites."""
    question, answer = question_answer(row)
    where = [f"{c.get('doc_id')} p. {c.get('page')}" for c in row.get("citations") or []]
    parts = [f"Q: {question}", f"A: {answer}", f"source: {row.get('source')}" + (f", {', '.join(where)}" if where
                                                                                  else "")]
    if row.get("caption"):  # an image's pair: what it was written from (the image itself: `curate view`)
        parts.append(f"image caption: {row['caption']}")
    passage = (row.get("context") or "").strip()
    if passage:
        cut = passage[:PASSAGE_CHARS] + (" ..." if len(passage) > PASSAGE_CHARS else "")
        parts.append("cited passage:\n" + cut)
    return "\n".join(parts)


def read_rows(rows: list[dict], labels_path: Path, *, sample: int, seed: int, ask: Callable[[str], str],
              show: Callable[[str], None]) -> list[str]:
    """Show ``rows`` (question-answer rows) in ``review_order`` until ``sample`` of them carry a label with their
    current text, asking ``ask`` for each verdict: ``c`` correct, ``w [why]`` wrong, ``u [why]`` unsure, ``q`` (or the
    end of input) stops. Each verdict is appended to ``labels_path`` as it is given. Returns the verdicts of the rows
    read so far in that order (earlier sessions' too)."""
    by_id = {r["id"]: r for r in rows}
    labels = read_labels(labels_path)
    done: list[str] = []
    order = review_order(by_id, seed)
    for place, row_id in enumerate(order):
        if len(done) >= sample:
            break
        row, label = by_id[row_id], labels.get(row_id)
        if label and label["key"] == row_key(row):
            done.append(label["verdict"])
            continue
        show(f"\n[{len(done) + 1}/{sample}, row {place + 1} of {len(order)} in the review order]\n{show_row(row)}")
        verdict = _ask_verdict(ask)
        if verdict is None:
            break
        verdict, why = verdict
        with labels_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"id": row_id, "key": row_key(row), "verdict": verdict, "why": why, "order": place,
                                "seed": seed}, ensure_ascii=False) + "\n")
        done.append(verdict)
    return done


def _ask_verdict(ask: Callable[[str], str]) -> tuple[str, str] | None:
    """A verdict and the reader's words, or None to stop (``q`` or the end of input)."""
    while True:
        try:
            reply = ask("verdict: c(orrect) / w(rong) [why] / u(nsure) [why] / q(uit): ").strip()
        except EOFError:
            return None
        letter, _, why = reply.partition(" ")
        letter = letter.lower()
        if letter == "q":
            return None
        if letter in ANSWERS:
            return ANSWERS[letter], why.strip()


class ReviewConfig(StageConfig):
    labels: str

    def relative_to(self, base: Path) -> "ReviewConfig":
        return self.model_copy(update={"labels": str(beside(base, self.labels))})


class Review(Filter):
    name = "review"
    Config = ReviewConfig
    inputs = ("id", "messages")

    def fingerprint_extra(self) -> list:
        path = Path(self.config.labels).expanduser()
        return [file_sha256(path) if path.is_file() else None]

    def setup(self) -> None:
        path = Path(self.config.labels).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"review labels {path.name} not found: write them with `curate review`")
        self._labels = read_labels(path)

    def check(self, row: dict) -> str | tuple[str, str] | None:
        label = self._labels.get(row["id"])
        if label is None:
            return None
        if label["key"] != row_key(row):
            self.counters["review_changed"] += 1
            return None
        self.counters[f"review_{label['verdict']}"] += 1
        return ("reviewed_wrong", label.get("why") or "marked wrong") if label["verdict"] == "wrong" else None
