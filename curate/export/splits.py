"""Leakage-safe, seeded train/validation/test splits.

Consumes rows in the curate schema (``id``, ``doc_id``, ``page``, ``page_end``, ``image``, ``meta`` and, when a stage
added them, ``chunk_id`` / ``citations`` columns); produces one split name per row.

Rows that share a document page (their own doc_id + page, every page of a page range), a source chunk (``chunk_id``,
or a ``citations`` entry: a chunk id, or {chunk_id, ...}, or {doc_id, page}; as a column or in ``meta``) or an image
(sha256 of its bytes) are joined into one group, transitively (union-find), and a group never straddles two splits.
Groups are ordered by a seeded hash of their smallest key and laid end to end, weighted by their row counts; each
group goes to the split whose share of that line holds its middle. The result depends only on the seed and the rows'
keys, not on row order, and split sizes follow the fractions as closely as the group sizes allow.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from itertools import accumulate

DEFAULT_FRACTIONS = {"train": 0.9, "validation": 0.05, "test": 0.05}
_SPLIT_NAME = re.compile(r"^\w+$")


class SplitError(ValueError):
    """Split fractions that cannot be used; the message says what to write instead."""


def parse_fractions(text: str) -> dict[str, float]:
    """``"train=0.8,validation=0.1,test=0.1"`` as a checked dict."""
    fractions = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            fractions[name.strip()] = float(value)
        except ValueError:
            raise SplitError(f"split '{item}': expected NAME=FRACTION, e.g. train=0.9,validation=0.05,test=0.05"
                             ) from None
    return check_fractions(fractions)


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    """``fractions`` if every name is a valid split name, every fraction in (0, 1] and they sum to 1."""
    if not fractions:
        raise SplitError("no splits given; e.g. train=0.9,validation=0.05,test=0.05")
    for name, value in fractions.items():
        if not _SPLIT_NAME.match(name):
            raise SplitError(f"split name '{name}' must be letters, digits or underscores")
        if not 0 < value <= 1:
            raise SplitError(f"split '{name}': fraction {value} must be in (0, 1]")
    if abs(sum(fractions.values()) - 1) > 1e-6:
        raise SplitError(f"split fractions {fractions} sum to {sum(fractions.values()):g}, not 1")
    return dict(fractions)


def group_keys(row: dict) -> list[str]:
    """Every key that ties ``row`` to others: its pages, the chunks it cites, its image; else its own id."""
    meta = _meta(row.get("meta"))
    keys = _page_keys(_first(row, meta, "doc_id"), _first(row, meta, "page"), _first(row, meta, "page_end"))
    for cited in [*_listed(row.get("chunk_id")), *_listed(meta.get("chunk_id")),
                  *_listed(row.get("citations")), *_listed(meta.get("citations"))]:
        keys += _citation_keys(cited)
    image = row.get("image")
    if image and (image.get("bytes") or image.get("path")):
        blob = image.get("bytes") or str(image["path"]).encode()
        keys.append("image:" + hashlib.sha256(blob).hexdigest())
    return keys or [f"row:{row.get('id')}"]


def _meta(value: str | None) -> dict:
    try:
        parsed = json.loads(value) if value else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _first(row: dict, meta: dict, key: str):
    return row.get(key) if row.get(key) is not None else meta.get(key)


def _page_keys(doc_id, page, page_end) -> list[str]:
    if doc_id is None or page is None:
        return []
    last = max(int(page), int(page_end)) if page_end is not None else int(page)
    return [f"page:{doc_id}:{p}" for p in range(int(page), last + 1)]


def _listed(value) -> list:
    if value is None:
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _citation_keys(cited) -> list[str]:
    """A citation as keys: a chunk id, or a {doc_id, page} reference to a page, or its canonical JSON."""
    if not isinstance(cited, dict):
        return [f"chunk:{cited}"]
    chunk = cited.get("chunk_id") or cited.get("id")
    if chunk is not None:
        return [f"chunk:{chunk}"]
    pages = _page_keys(cited.get("doc_id"), cited.get("page"), cited.get("page_end"))
    return pages or ["chunk:" + json.dumps(cited, sort_keys=True, default=str)]


class _Groups:
    """Union-find over keys; each group remembers its smallest key, a name that does not depend on row order."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, keys: list[str]) -> None:
        roots = sorted({self.find(k) for k in keys})
        for root in roots[1:]:
            self.parent[root] = roots[0]


def group_of(keys_per_row: list[list[str]]) -> list[str]:
    """Each row's group, named by the group's smallest key."""
    groups = _Groups()
    for keys in keys_per_row:
        groups.join(keys)
    return [groups.find(keys[0]) for keys in keys_per_row]


def assign_splits(keys_per_row: list[list[str]], fractions: dict[str, float], seed: int = 0) -> list[str]:
    """One split name per row (aligned with ``keys_per_row``); rows sharing any key share a split."""
    fractions = check_fractions(fractions)
    roots = group_of(keys_per_row)
    sizes = Counter(roots)
    order = sorted(sizes, key=lambda root: (_hash(seed, root), root))
    bounds = list(accumulate(fractions.values()))
    names, total, before, split_of = list(fractions), len(roots), 0, {}
    for root in order:
        middle = (before + sizes[root] / 2) / total
        split_of[root] = names[next((i for i, b in enumerate(bounds) if middle < b), len(names) - 1)]
        before += sizes[root]
    return [split_of[root] for root in roots]


def _hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()


def group_stats(keys_per_row: list[list[str]]) -> dict:
    """How many groups the rows form and how big the largest is (for the report and the card)."""
    sizes = Counter(group_of(keys_per_row))
    return {"groups": len(sizes), "largest_group": max(sizes.values(), default=0),
            "rows_in_shared_groups": sum(n for n in sizes.values() if n > 1)}
