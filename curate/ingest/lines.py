"""Text tables read record by record (JSON lines, CSV), so one bad line costs one row, not the file.

``decode`` picks the encoding: the source's ``encoding:`` option when given, else the file's BOM (UTF-8, UTF-16 or
UTF-32), else UTF-8. A file that does not decode is one ``bad_encoding`` Reject saying where and how to fix it.
``json_lines`` and ``csv_records`` return (locator, record) pairs and a ``bad_line`` Reject (file, line number, the
parser's message) for each line they cannot parse. The locator is the 0-based index among non-blank records, bad
ones included, so mending a line does not renumber the rows after it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from curate.ingest.base import Reject

BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
Record = tuple[str, dict]


def _known_codec(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError as e:
        raise ValueError(f"unknown encoding '{name}' (Python codec names: utf-8, latin-1, cp1252, utf-16...)") from e
    return name


Encoding = Annotated[str, AfterValidator(_known_codec)]


def decode(file: Path, encoding: str | None = None) -> str | Reject:
    """The text of ``file``, or a ``bad_encoding`` Reject naming the first undecodable byte and the fix."""
    data = file.read_bytes()
    codec = encoding or next((codec for bom, codec in BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(codec).removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[: e.start].decode(codec, errors="replace").count("\n") + 1
        fix = ("the source's 'encoding' option does not fit this file" if encoding else
               "save it as UTF-8, or name its encoding in the source's options (e.g. 'encoding: latin-1')")
        return Reject("bad_encoding", f"{file} is not {codec}: byte 0x{data[e.start]:02x} at offset {e.start} "
                      f"(line {line}): {e.reason}; {fix}", str(file))


def json_lines(file: Path, text: str) -> list[Record | Reject]:
    """One (locator, object) per non-blank line of ``text``; a ``bad_line`` Reject for a line that is not one."""
    out: list[Record | Reject] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            out.append(_bad_line(file, number, f"{e.msg}: column {e.colno}", line))
            continue
        if isinstance(record, dict):
            out.append((str(len(out)), record))
        else:
            out.append(_bad_line(file, number, f"a JSON {type(record).__name__}, not an object", line))
    return out


def csv_records(file: Path, text: str) -> tuple[list[str], list[Record | Reject]]:
    """The header of a CSV ``text`` and one (locator, {column: cell}) per record; a Reject per unparsable record.

    A record whose field count differs from the header's is a ``bad_line`` too: its cells cannot be placed.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    out: list[Record | Reject] = []
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return header or [], out
        except csv.Error as e:
            out.append(_bad_line(file, start, f"CSV: {e}", None))
            if header is None:
                return [], out
            start = reader.line_num + 1
            continue
        number, start = start, reader.line_num + 1
        if not fields:
            continue
        if header is None:
            header = fields
        elif len(fields) != len(header):
            out.append(_bad_line(file, number, f"{len(fields)} fields where the header has {len(header)}", fields))
        else:
            out.append((str(len(out)), dict(zip(header, fields))))


def _bad_line(file: Path, number: int, message: str, raw: object) -> Reject:
    return Reject("bad_line", f"{file} line {number}: {message}", f"{file}:{number}", raw)
