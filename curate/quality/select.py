"""``select``: keep rows by kind, source and minimum text length.

Consumes ``kind``, ``source``, ``text``, ``messages``, ``caption``. Produces no new columns; drops rows with
reasons ``kind``, ``source`` or ``too_short``.

Example::

    - stage: select
      kinds: [page, qa]
      min_chars: 200
"""

from __future__ import annotations

from curate.stage import Filter, StageConfig


class SelectConfig(StageConfig):
    kinds: list[str] | None = None
    sources: list[str] | None = None
    min_chars: int = 0


def row_text(row: dict) -> str:
    """The row's main text: page/chunk text, the conversation's contents, or the caption."""
    if row.get("text"):
        return row["text"]
    if row.get("messages"):
        return "\n".join(m["content"] for m in row["messages"])
    return row.get("caption") or ""


class Select(Filter):
    name = "select"
    Config = SelectConfig
    inputs = ("kind", "source", "text", "messages", "caption")

    def check(self, row: dict):
        c = self.config
        if c.kinds is not None and row["kind"] not in c.kinds:
            return "kind", row["kind"]
        if c.sources is not None and row["source"] not in c.sources:
            return "source", row["source"]
        n = len(row_text(row).strip())
        if n < c.min_chars:
            return "too_short", n
        return None
