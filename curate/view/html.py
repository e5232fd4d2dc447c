"""A tiny HTML builder that escapes by default: every ``str`` put into an element is escaped, only ``Html`` (what the
builder itself made) passes through as markup, so row text can never become markup by forgetting to escape it."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Union


class Html(str):
    """Markup that is already safe (made by ``el``, ``join`` or ``raw``)."""


Child = Union["Html", str, int, float, None, Iterable]


def text(value) -> Html:
    """``value`` as escaped text (``Html`` passes unchanged; None is nothing; iterables are joined)."""
    if value is None or value is False:
        return Html("")
    if isinstance(value, Html):
        return value
    if isinstance(value, (list, tuple)) or hasattr(value, "__next__"):
        return join(value)
    return Html(escape(str(value), quote=True))


def join(children: Iterable[Child], sep: str = "") -> Html:
    return Html(escape(sep).join(text(c) for c in children))


def el(tag: str, *children: Child, **attrs) -> Html:
    """``<tag attrs>children</tag>``; attribute names use ``_`` for ``-`` and a trailing ``_`` for keywords
    (``class_``); True is a bare attribute, None/False leaves it out."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{escape(str(value), quote=True)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in ("img", "br", "input", "meta", "link", "hr"):
        return Html(opening)
    return Html(opening + join(children) + f"</{tag}>")


def raw(markup: str) -> Html:
    """Trusted markup written by this package (the stylesheet, an SVG built from numbers and escaped labels)."""
    return Html(markup)
