"""Rows of one step read a page at a time: kept rows from the step's parquet parts (only the files and row groups a
page needs, only the columns it shows) and rejects from its JSON lines (a byte-offset index built in one pass, so a
page seeks straight to its lines). Nothing here loads a whole step.

Both readers cache what they learn about a folder (row counts per part, line offsets and reasons) keyed on the files'
sizes and modification times, so a run still writing shows new batches on the next page load.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEARCHED = ("id", "text", "caption")  # string columns a text search looks in, with messages' contents
_REASON = re.compile(rb'"reason": "((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Page:
    """One page of rows: ``rows`` (dicts, each with ``_part`` and ``_row`` locating it), ``total`` matching rows."""

    rows: list[dict]
    total: int
    offset: int


def _signature(files: list[Path]) -> tuple:
    return tuple((f.name, st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()])


def _part_rows(part: Path) -> int:
    """Rows in a part file: from its batch's shard record (``part-K`` has ``shard-K.json``, written after it) when
    there is one, which is a small JSON read instead of a parquet footer, else from the footer."""
    shard = part.with_name(part.name.replace("part-", "shard-", 1).replace(".parquet", ".json"))
    try:
        return int(json.loads(shard.read_bytes())["rows_out"])
    except (OSError, ValueError, KeyError):
        return pq.ParquetFile(part).metadata.num_rows


class KeptRows:
    """The kept rows of a step folder (``part-*.parquet``), in file order."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = sorted(folder.glob("part-*.parquet"))
        self._key = _signature(self.files)
        self.counts = [_part_rows(f) for f in self.files]
        self.starts = [0]
        for n in self.counts:
            self.starts.append(self.starts[-1] + n)
        self._matches: dict[str, array] = {}

    @property
    def total(self) -> int:
        return self.starts[-1]

    def fresh(self) -> bool:
        return sorted(self.folder.glob("part-*.parquet")) == self.files and _signature(self.files) == self._key

    def columns(self) -> list[str]:
        return pq.read_schema(self.files[0]).names if self.files else []

    def read(self, part: int, first: int, count: int, columns: list[str] | None = None) -> list[dict]:
        """Rows ``first`` .. ``first + count`` of part file ``part``, reading only the row groups that hold them."""
        pf = pq.ParquetFile(self.files[part])
        groups, start, picked, skip = [], 0, [], None
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if start + n > first and start < first + count:
                groups.append(g)
                skip = start if skip is None else skip
            start += n
        if not groups:
            return []
        table = pf.read_row_groups(groups, columns=columns).slice(first - skip, count)
        for i, row in enumerate(table.to_pylist()):
            picked.append({**row, "_part": part, "_row": first + i})
        return picked

    def row(self, part: int, index: int, columns: list[str] | None = None) -> dict:
        if not 0 <= part < len(self.files) or not 0 <= index < self.counts[part]:
            raise KeyError(f"no row {index} in part {part}")
        return self.read(part, index, 1, columns)[0]

    def first_of_each(self, column: str, per: int) -> list[int]:
        """Global indices of the first ``per`` rows of every value of ``column`` (that one column is read)."""
        seen: dict = {}
        for part, f in enumerate(self.files):
            for i, value in enumerate(pq.read_table(f, columns=[column])[column].to_pylist()):
                taken = seen.setdefault(value, [])
                if len(taken) < per:
                    taken.append(self.starts[part] + i)
        return sorted(i for taken in seen.values() for i in taken)

    def at(self, i: int, columns: list[str] | None = None) -> dict:
        """The row with global index ``i``."""
        return self.row(*self._locate(i), columns)

    def _locate(self, i: int) -> tuple[int, int]:
        part = bisect.bisect_right(self.starts, i) - 1
        return part, i - self.starts[part]

    def page(self, offset: int, limit: int, query: str = "", columns: list[str] | None = None) -> Page:
        """``limit`` rows from ``offset``; with ``query``, of the rows whose text holds it (case-insensitive)."""
        if query:
            hits = self.matches(query)
            return Page([self.at(i, columns) for i in hits[offset:offset + limit]], len(hits), offset)
        rows, i = [], offset
        while len(rows) < limit and i < self.total:
            part, first = self._locate(i)
            got = self.read(part, first, min(limit - len(rows), self.counts[part] - first), columns)
            rows += got
            i += len(got)
        return Page(rows, self.total, offset)

    def matches(self, query: str) -> array:
        """Global indices of the rows whose id, text, caption or a message holds ``query`` (one column pass per part,
        cached per query)."""
        if query not in self._matches:
            found, needle = array("q"), query
            names = set(self.columns())
            for part, f in enumerate(self.files):
                cols = [c for c in (*SEARCHED, "messages") if c in names]
                table = pq.read_table(f, columns=cols)
                if not table.num_rows:
                    continue
                mask = pa.array([False] * table.num_rows, pa.bool_())
                for c in SEARCHED:
                    if c in names:
                        hit = pc.fill_null(pc.match_substring(table[c], needle, ignore_case=True), False)
                        mask = pc.or_(mask, hit)
                if "messages" in names:
                    mask = pc.or_(mask, _messages_hold(table["messages"], needle, table.num_rows))
                found.extend(self.starts[part] + i for i in pc.indices_nonzero(mask).to_pylist())
            if len(self._matches) > 16:
                self._matches.clear()
            self._matches[query] = found
        return self._matches[query]


def _messages_hold(messages: pa.ChunkedArray, needle: str, n: int) -> pa.Array:
    """Per row: whether any message's content holds ``needle``."""
    flat = pc.list_flatten(messages)
    parents = pc.list_parent_indices(messages)
    hit = pc.fill_null(pc.match_substring(pc.struct_field(flat, "content"), needle, ignore_case=True), False)
    rows = set(pc.filter(parents, hit).to_pylist())
    return pa.array([i in rows for i in range(n)], pa.bool_())


class Rejects:
    """The rejects of a step folder: ``rejects.jsonl`` (a finished step) or its ``rejects-*.jsonl`` batch files (a
    step still running), indexed once by line offset and reason."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = self._files(folder)
        self._key = _signature(self.files)
        self.file_of, self.offset_of, self.reason_of = array("i"), array("q"), array("i")
        self.reasons: list[str] = []
        codes: dict[bytes, int] = {}  # the reason as written (JSON-escaped bytes) -> its code
        for k, f in enumerate(self.files):
            with f.open("rb") as fh:
                position = 0
                for line in fh:
                    if line.strip():
                        found = _REASON.search(line, 0, 400)
                        written = found.group(1) if found else b"?"
                        if written not in codes:
                            codes[written] = len(self.reasons)
                            self.reasons.append(json.loads(b'"' + written + b'"'))
                        self.file_of.append(k)
                        self.offset_of.append(position)
                        self.reason_of.append(codes[written])
                    position += len(line)
        self._filtered: dict[tuple, array] = {}

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        final = folder / "rejects.jsonl"
        return [final] if final.exists() else sorted(folder.glob("rejects-*.jsonl"))

    def fresh(self) -> bool:
        return self._files(self.folder) == self.files and _signature(self.files) == self._key

    @property
    def total(self) -> int:
        return len(self.offset_of)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.reasons, 0)
        for code in self.reason_of:
            out[self.reasons[code]] += 1
        return out

    def _line(self, i: int) -> dict:
        with self.files[self.file_of[i]].open("rb") as fh:
            fh.seek(self.offset_of[i])
            return {**json.loads(fh.readline()), "_reject": i}

    def select(self, reason: str = "", query: str = "") -> array | range:
        """Indices of the rejects with ``reason`` (any when empty) whose JSON holds ``query`` (case-insensitive)."""
        if not reason and not query:
            return range(self.total)
        key = (reason, query)
        if key not in self._filtered:
            code = self.reasons.index(reason) if reason in self.reasons else -1
            picked = array("q", (i for i, c in enumerate(self.reason_of) if not reason or c == code))
            if query:
                picked = array("q", self._holding(picked, query.lower()))
            if len(self._filtered) > 16:
                self._filtered.clear()
            self._filtered[key] = picked
        return self._filtered[key]

    def _holding(self, picked: array, needle: str):
        """Those of ``picked`` whose line holds ``needle``, escaped as the rejects writer escapes strings (one
        sequential read per file; nothing is decoded)."""
        wanted, k, escaped = set(picked), 0, json.dumps(needle, ensure_ascii=False)[1:-1].encode()
        for f in self.files:
            with f.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        if k in wanted and escaped in line.lower():
                            yield k
                        k += 1

    def page(self, offset: int, limit: int, reason: str = "", query: str = "") -> Page:
        chosen = self.select(reason, query)
        return Page([self._line(i) for i in chosen[offset:offset + limit]], len(chosen), offset)


class RowCache:
    """One ``KeptRows`` and one ``Rejects`` per step folder, rebuilt when the folder's files change."""

    def __init__(self):
        self._kept: dict[Path, KeptRows] = {}
        self._rejects: dict[Path, Rejects] = {}
        self._lock = threading.Lock()

    def kept(self, folder: Path) -> KeptRows:
        return self._current(self._kept, KeptRows, folder)

    def rejects(self, folder: Path) -> Rejects:
        return self._current(self._rejects, Rejects, folder)

    def _current(self, cache: dict, build, folder: Path):
        """``cache[folder]``, built again by ``build(folder)`` when missing or when its files changed."""
        with self._lock:
            cached = cache.get(folder)
            if cached is None or not cached.fresh():
                cached = cache[folder] = build(folder)
            return cached
