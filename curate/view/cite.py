"""The passages a synthesized pair was written from, with the sentence that supports its answer.

A pair's ``context`` holds its retrieved passages numbered ``[1] ...``; ``citations`` name the cited chunks. A
passage is *cited* when its text is a cited chunk's text (looked up in the run's chunk step, only for the ids a page
shows). In every passage, the sentence sharing the most content words with the answer is the *supporting* one when
it holds at least half of the answer's content words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.quality.text import content_stems, sentences

_NUMBER = re.compile(r"^\[(\d+)\] ", re.MULTILINE)
MIN_SUPPORT = 0.5


@dataclass(frozen=True)
class Passage:
    number: int
    sentences: list[str]
    support: int | None  # index of the supporting sentence
    share: float  # the share of the answer's content words it holds
    cited: bool


def passages(context: str) -> list[tuple[int, str]]:
    """``[(number, text)]`` of a numbered context."""
    marks = list(_NUMBER.finditer(context or ""))
    return [(int(m.group(1)), context[m.end():marks[i + 1].start() if i + 1 < len(marks) else None].strip())
            for i, m in enumerate(marks)]


def supported(answer: str, context: str, cited_texts: set[str]) -> list[Passage]:
    """Every passage of ``context`` split into sentences, its supporting sentence for ``answer`` marked."""
    want = content_stems(answer)
    out = []
    for number, body in passages(context):
        sents = sentences(body) or [body]
        shares = [len(want & content_stems(s)) / max(len(want), 1) for s in sents]
        best = max(range(len(sents)), key=shares.__getitem__)
        cited = " ".join(body.split()) in cited_texts
        out.append(Passage(number, sents, best if shares[best] >= MIN_SUPPORT else None, shares[best], cited))
    return out


def chunk_texts(folder: Path | None, ids: set[str]) -> dict[str, str]:
    """The text of the chunks ``ids`` in the rows folder ``folder``: the id column of each part is read, and the
    text only of the rows that match."""
    found: dict[str, str] = {}
    if folder is None or not ids:
        return found
    wanted = pa.array(sorted(ids))
    for f in sorted(folder.glob("part-*.parquet")):
        column = pq.read_table(f, columns=["id"])["id"]
        hits = pc.indices_nonzero(pc.fill_null(pc.is_in(column, value_set=wanted), False)).to_pylist()
        if hits:
            table = pq.read_table(f, columns=["id", "text"]).take(hits)
            found.update({r["id"]: " ".join((r["text"] or "").split()) for r in table.to_pylist()})
        if len(found) == len(ids):
            break
    return found
