"""PDF connector: text-layer PDFs in, one ``page`` row per page out.

``spec.path`` is a PDF or a folder searched recursively for ``*.pdf`` (in sorted order). A ``url:`` source arrives
already downloaded and checked by ``curate.ingest.download`` (its rows name the URL and carry the sha256).

Options:

- ``engine`` – ``pypdf`` (default) or ``pypdfium2`` (faster; ``pip install 'curate[fast]'``).
- ``clean`` – tidy the text (default on): join words hyphenated across lines, normalise whitespace while keeping
  paragraph breaks, and drop running headers/footers and bare page numbers (see ``clean_pages``).
- ``min_chars`` – pages with fewer characters (after cleanup) are skipped; default 20.
- ``workers`` – parse this many files at once in a process pool; rows still come out in file order.

Output columns: ``text``, ``doc_id`` (the file stem), ``page`` (1-based), ``source``, ``license``,
``provenance`` (origin: the file path or URL; locator: ``page=N``; revision: ``spec.revision``) and ``meta``
``{"pages": <page count of the document>}`` plus ``"sha256"`` of a downloaded file.

Rejects (one per unusable file, which never yields partial pages): ``empty_file``, ``not_pdf``, ``corrupt_pdf``,
``encrypted`` (needs a password), ``image_only`` (no text layer) and ``too_short`` (text, but no page reaches
``min_chars``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import Field

from curate.ingest import base
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.ingest.download import url_name
from curate.schema import make_page

FAST_INSTALL = "pip install 'curate[fast]'"


class Options(base.Options):
    engine: Literal["pypdf", "pypdfium2"] = "pypdf"
    clean: bool = True
    min_chars: int = Field(20, ge=0)
    workers: int = Field(1, ge=1)


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    if options.engine == "pypdfium2":
        try:
            import pypdfium2  # noqa: F401
        except ImportError:
            raise ConnectorError(f"engine 'pypdfium2' needs the pypdfium2 package: {FAST_INSTALL}") from None
    """A row per page of text of ``spec``'s PDFs, and a Reject for each file that cannot be used."""
    root = base.require_path(spec, "PDF file or folder")
    if spec.url:  # a downloaded file (see curate.ingest.download): rows name the URL, not the cache
        documents = [(root, spec.url, Path(url_name(spec.url)).stem or spec.name)]
    else:
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf") if root.is_dir() \
            else [root]
        if not found:
            raise ConnectorError(f"source '{spec.name}': no .pdf files under {root}")
        documents = [(path, str(path), path.stem) for path in found]
    meta = {"sha256": spec.sha256} if spec.url else {}

    parse = partial(_parse_file, engine=options.engine, clean=options.clean, min_chars=options.min_chars)
    files = [path for path, _, _ in documents]
    if options.workers > 1 and len(files) > 1:
        pool = ProcessPoolExecutor(max_workers=min(options.workers, len(files)))
        try:
            yield from _rows(spec, documents, pool.map(parse, files), meta)
        finally:
            pool.shutdown(cancel_futures=True)
    else:
        yield from _rows(spec, documents, map(parse, files), meta)


def _rows(spec: SourceSpec, documents: list[tuple[Path, str, str]], parsed: Iterable[tuple[int, list] | Reject],
          meta: dict) -> Iterator[dict | Reject]:
    """Page rows from each parsed document (path, origin, doc_id), or its Reject located at the origin."""
    for (_, origin, doc_id), result in zip(documents, parsed, strict=True):
        if isinstance(result, Reject):
            yield dataclasses.replace(result, locator=origin)
            continue
        page_count, pages = result
        for number, text in pages:
            yield make_page(text=text, doc_id=doc_id, page=number, source=spec.name, license=spec.license,
                            origin=origin, revision=spec.revision, meta={"pages": page_count, **meta})


def _parse_file(path: Path, *, engine: str, clean: bool, min_chars: int) -> tuple[int, list] | Reject:
    """``(page count, [(page number, text), ...])`` of one file, or the Reject saying why it cannot be used."""
    locator = str(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        return Reject("empty_file", "the file is empty (0 bytes)", locator)
    if b"%PDF-" not in head:
        return Reject("not_pdf", f"no %PDF- header: this is not a PDF (starts with {head[:16]!r})", locator)
    try:
        texts = _extract_pypdfium2(path) if engine == "pypdfium2" else _extract_pypdf(path)
    except _PasswordNeeded:
        return Reject("encrypted", "the PDF is encrypted and needs a password to open; decrypt it first "
                                   "(e.g. qpdf --decrypt --password=... in.pdf out.pdf)", locator)
    except Exception as e:  # broken files raise anything from the parsers; one bad file must not stop the rest
        return Reject("corrupt_pdf", f"cannot parse the PDF ({type(e).__name__}: {e})", locator)
    if clean:
        texts = clean_pages(texts)
    pages = [(number, text.strip()) for number, text in enumerate(texts, 1) if len(text.strip()) >= min_chars]
    if not pages:
        if not any(text.strip() for text in texts):
            return Reject("image_only", f"none of the {len(texts)} pages has a text layer; OCR it first "
                                        "(e.g. ocrmypdf in.pdf out.pdf)", locator)
        return Reject("too_short", f"no page of {len(texts)} has {min_chars} characters of text", locator)
    return len(texts), pages


class _PasswordNeeded(Exception):
    pass


def _extract_pypdf(path: Path) -> list[str]:
    import pypdf

    pypdf_logger = logging.getLogger("pypdf")
    level = pypdf_logger.level
    pypdf_logger.setLevel(logging.ERROR)  # pypdf logs every repair it makes; the connector does not print
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pypdf.PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                raise _PasswordNeeded
            return [page.extract_text() for page in reader.pages]
    finally:
        pypdf_logger.setLevel(level)


def _extract_pypdfium2(path: Path) -> list[str]:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError as e:
        if "password" in str(e).lower():
            raise _PasswordNeeded from e
        raise
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


# --- cleanup -------------------------------------------------------------------------------------------------------

EDGE_LINES = 3  # how many lines at the top and at the bottom of a page may be running headers/footers
RUNNING_SHARE = 0.4  # a header/footer is on at least this share of a document's pages...
RUNNING_MIN_PAGES = 3  # ...and on at least this many

# Control characters go; pdfium marks a soft hyphen at a line end with U+FFFE and drops the line break.
_CONTROL = {c: None for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (0x09, 0x0A)} | {0xFFFE: "-\n"}
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"(?:(?i:page)\s*)?(?:[A-Z]-)?\d{1,4}(?:-\d{1,4})?(?:\s*(?:of|/)\s*\d{1,4})?"  # 7, Page 7, 1-12, A-3, 7 of 9
    r"|[-–—]\s*\d{1,4}\s*[-–—]"  # - 7 -
    r"|(?=[ivx])x{0,3}(?:ix|iv|v?i{0,3})"  # front matter: iii, xiv
)
_BLANK_RUNS = re.compile(r"\n{3,}")
_LINE_BREAK_HYPHEN = re.compile(r"([A-Za-z]+(?:-[A-Za-z]+)*)-\n([a-z]+)")
_WORDS = re.compile(r"[a-z]+(?:-[a-z]+)*")


def clean_pages(pages: list[str]) -> list[str]:
    """Clean the page texts of one document (all its pages, for the header/footer and vocabulary statistics).

    Whitespace: runs of spaces collapse, each line is stripped, blank lines (paragraph breaks) collapse to one.
    Running headers/footers: a line among the first or last ``EDGE_LINES`` of a page is dropped when, with its
    digits removed, it is at an edge of >= ``RUNNING_SHARE`` of the pages (and >= ``RUNNING_MIN_PAGES``); so is a
    bare page number there. Hyphenation: ``emer-\\ngency`` becomes ``emergency`` when the next line starts in
    lower case, unless the document suggests a compound (see ``_join_hyphenated``).
    """
    pages_lines = [[" ".join(line.split()) for line in _unify(text).split("\n")] for text in pages]
    running = _running_lines(pages_lines)
    texts = [_BLANK_RUNS.sub("\n\n", "\n".join(_drop_edges(lines, running))).strip() for lines in pages_lines]
    join = partial(_join_hyphenated, vocabulary=_vocabulary(texts))
    return [_LINE_BREAK_HYPHEN.sub(join, text) if "-\n" in text else text for text in texts]


def _unify(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL)


def _edge_indexes(lines: list[str]) -> list[int]:
    filled = [i for i, line in enumerate(lines) if line]
    return filled[:EDGE_LINES] + filled[EDGE_LINES:][-EDGE_LINES:]


def _mask(line: str) -> str:
    """A line without its digits, so that "12 Guide" on one page and "Guide 13" on the next compare equal."""
    return " ".join(_DIGITS.sub(" ", line).split())


def _running_lines(pages_lines: list[list[str]]) -> set[str]:
    """Masked lines at the page edges on enough pages of the document to be running headers or footers."""
    counts = Counter()
    for lines in pages_lines:
        counts.update({_mask(lines[i]) for i in _edge_indexes(lines)})
    needed = max(RUNNING_MIN_PAGES, math.ceil(RUNNING_SHARE * len(pages_lines)))
    return {line for line, count in counts.items() if count >= needed}


def _drop_edges(lines: list[str], running: set[str]) -> list[str]:
    drop = {i for i in _edge_indexes(lines)
            if _mask(lines[i]) in running or _PAGE_NUMBER.fullmatch(lines[i])}
    return [line for i, line in enumerate(lines) if i not in drop]


def _vocabulary(texts: list[str]) -> set[str]:
    """Lower-case words and hyphenated compounds of a document, leaving out the halves of line-break hyphens."""
    unbroken = (_LINE_BREAK_HYPHEN.sub(" ", text) if "-\n" in text else text for text in texts)
    words = set(_WORDS.findall("\n".join(unbroken).lower()))
    return words | {part for word in words if "-" in word for part in word.split("-")}


def _join_hyphenated(match: re.Match, vocabulary: set[str]) -> str:
    """``head-\\ntail`` as one word: ``headtail`` for a hyphenated word, ``head-tail`` for a compound.

    A compound is a form the document itself writes with a hyphen, a chain (``mouth-to-\\nmouth``), or two halves
    that are both words of the document (``blood-\\nsoaked``) and do not also appear written together.
    """
    head, tail = match.groups()
    joined, lower_head = head + tail, head.lower()
    if joined.lower() in vocabulary:
        return joined
    if "-" in head or f"{lower_head}-{tail}" in vocabulary or (lower_head in vocabulary and tail in vocabulary):
        return f"{head}-{tail}"
    return joined
