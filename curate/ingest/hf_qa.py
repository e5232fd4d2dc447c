"""Question-answer sets (local files or a Hugging Face Hub dataset) mapped to ``qa`` rows.

Where items come from:

- ``spec.path``: a file, or a folder searched recursively, of ``.parquet``, ``.jsonl``, ``.json`` and ``.csv`` files
  (read one by one in path order). A ``.json`` file holds a list of objects, an object of objects keyed by id
  (PubMedQA's ori_pqal.json: the key is the locator) or JSON lines. A path holding XML is MedQuAD and is read by the
  ``medquad`` connector.
- otherwise ``spec.hub``: ``datasets.load_dataset(repo, config, split=split, revision=revision)``.

Parquet files go through ``datasets.load_dataset`` too, so a Hub snapshot on disk reads like the Hub. JSON lines and
CSV files are read record by record (``curate.ingest.lines``): a line that does not parse is one ``bad_line`` Reject
(file, line number, the parser's message) and the other rows go on. Text files are UTF-8, or UTF-8/16/32 with a BOM.

Options:

- ``split``: a local folder: only files with a path part named ``<split>`` or starting ``<split>-``, ``<split>_``,
  ``<split>.`` (``data/train-00000-of-00001.parquet``, ``train.jsonl``; default all files); the Hub: the split to
  load (default ``hub.split``).
- ``records``: a JSON file holding an object: the top-level key of the list of records.
- ``encoding``: the text files' encoding when it is not UTF-8 (a Python codec name: ``latin-1``, ``cp1252``...).

Mapping (``spec.mapping``; a column may be nested as ``a.b``):

- ``question``, ``answer``: the columns of the user turn and of the assistant turn.
- ``input``: a column appended to the question after a blank line (Alpaca's ``input``).
- ``reasoning``: a chain-of-thought column, kept in the row's ``reasoning``.
- ``system``: a system prompt (a string, not a column).
- ``context``: a column put before the question as "Context:\\n<context>\\n\\nQuestion: <question>" (a list is joined
  by blank lines; PubMedQA's CONTEXTS).
- ``options``: multiple choice: a column holding {label: text} or a list (labelled A, B, ...), or a list of columns.
  The question gets one "A. <text>" line per option and the answer is "<label>. <text>" of the correct option, given
  by ``answer_key`` (a column holding the label, or a 0-based integer index) or else by ``answer`` (its text).
- ``long_answer``: ``answer`` is then a short decision (PubMedQA's yes/no/maybe) and the answer becomes
  ``answer_template`` (default "{Answer}. {long_answer}"; ``{answer}`` is the decision as it is, ``{Answer}`` with a
  capital first letter).
- ``id``: the column used as locator (default: the row index in its file, or the key of an id-keyed JSON object).
- ``meta``: columns copied into ``meta`` as they are.

Without ``question`` and ``answer`` the pair is inferred from the first table's columns, the first match of
question/answer, Question/Response, Question/Answer, instruction/output (with ``input`` when there is one),
input/output; a ``Complex_CoT`` or ``reasoning`` column becomes the reasoning. ``infer_mapping`` returns the pick and
``read`` logs it on the ``curate`` logger.

Values that are not strings are made text: numbers with ``str``, lists joined by new lines, objects as JSON, empty
cells as "".

Output: one ``qa`` row per item: messages (system, user, assistant), reasoning, provenance {origin: the file or the
Hub repo, revision, locator}, meta {options, answer_idx (multiple choice), decision (with long_answer), the ``meta``
columns}. ``spec.limit`` stops after that many rows.

Rejects: ``empty_question``, ``empty_answer``, ``bad_answer_key`` (no option with that key or text); per file:
``bad_line``, ``bad_encoding`` (naming the byte and the fix), ``bad_json`` (a ``.json`` file that is neither one JSON
document nor JSON lines), ``empty_file``.
ConnectorError: an invalid mapping, a mapped column missing from a table (naming the table and its columns), nothing
readable at the path.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import datasets
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from curate.ingest import base, lines, medquad
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.schema import make_qa

log = logging.getLogger("curate")

SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
PAIRS = (
    ("question", "answer"),
    ("Question", "Response"),
    ("Question", "Answer"),
    ("instruction", "output"),
    ("input", "output"),
)
REASONING_COLUMNS = ("Complex_CoT", "reasoning")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Options(base.Options):
    split: str | None = None
    records: str | None = None
    encoding: lines.Encoding | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    answer: str | None = None
    input: str | None = None
    reasoning: str | None = None
    system: str | None = None
    context: str | None = None
    options: str | list[str] | None = None
    answer_key: str | None = None
    long_answer: str | None = None
    answer_template: str = "{Answer}. {long_answer}"
    id: str | None = None
    meta: list[str] = []

    @field_validator("answer_template")
    @classmethod
    def _template_fields(cls, template: str) -> str:
        try:
            template.format(answer="", Answer="", long_answer="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"answer_template may use only {{answer}}, {{Answer}} and {{long_answer}}: {e}") from e
        return template

    @model_validator(mode="after")
    def _complete(self) -> Mapping:
        if self.question is None and any((self.answer, self.input, self.options, self.answer_key, self.long_answer)):
            raise ValueError("give 'question' with 'answer', 'input', 'options', 'answer_key' or 'long_answer'")
        if self.question is not None and self.answer is None and self.answer_key is None:
            raise ValueError("give 'answer' (or 'options' with 'answer_key') with 'question'")
        if self.answer_key is not None and self.options is None:
            raise ValueError("'answer_key' needs 'options'")
        return self

    def columns(self) -> list[str]:
        """Every column the mapping reads."""
        named = [self.question, self.answer, self.input, self.reasoning, self.context, self.answer_key,
                 self.long_answer, self.id, *self.meta]
        named += self.options if isinstance(self.options, list) else [self.options]
        return [c for c in named if c is not None]


@dataclass
class _Table:
    """One loaded file or Hub split: its name for messages, its provenance origin, columns and (locator, item)s."""

    name: str
    origin: str
    columns: list[str]
    items: Iterable[tuple[str, dict] | Reject]


def infer_mapping(columns: list[str]) -> dict[str, str]:
    """The question/answer (and input, reasoning) columns picked for a source without a mapping."""
    for question, answer in PAIRS:
        if question in columns and answer in columns:
            pick = {"question": question, "answer": answer}
            if question == "instruction" and "input" in columns:
                pick["input"] = "input"
            reasoning = next((c for c in REASONING_COLUMNS if c in columns), None)
            return pick | ({"reasoning": reasoning} if reasoning else {})
    known = ", ".join(f"{q}/{a}" for q, a in PAIRS)
    raise ConnectorError(f"no mapping given and none of the known column pairs ({known}) is there; "
                         f"columns are {', '.join(columns)}: set 'mapping: {{question: ..., answer: ...}}'")


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    if spec.path is not None and medquad.xml_files(base.require_path(spec, "file or folder")):
        yield from medquad.read(spec, medquad.Options())
        return
    try:
        mapping = Mapping.model_validate(spec.mapping)
    except ValidationError as e:
        raise ConnectorError(f"source '{spec.name}': invalid mapping: {e}") from e
    kept = 0
    for table in _tables(spec, options):
        if isinstance(table, Reject):
            yield table
            continue
        if mapping.question is None:
            pick = infer_mapping(table.columns)
            log.info("source '%s': no question/answer mapping, inferred %s from %s", spec.name, pick, table.name)
            mapping = mapping.model_copy(update=pick)
        _check_columns(spec, mapping, table)
        for entry in table.items:
            if isinstance(entry, Reject):
                yield entry
                continue
            out = _convert(spec, mapping, table.origin, *entry)
            yield out
            kept += not isinstance(out, Reject)
            if spec.limit is not None and kept >= spec.limit:
                return


def _tables(spec: SourceSpec, options: Options) -> Iterator[_Table | Reject]:
    if spec.path is None:
        if spec.hub is None:
            raise ConnectorError(f"source '{spec.name}' (hf_qa) needs 'path:' or 'hub:' (a 'url:' is read once "
                                 "fetched to a local path)")
        hub = spec.hub
        dataset = _load(f"Hub dataset {hub.repo}", hub.repo, hub.config, split=options.split or hub.split,
                        revision=hub.revision)
        yield _dataset_table(dataset, hub.repo, hub.repo)
        return
    files = _files(spec.path, options.split)
    if not files:
        wanted = f" of split '{options.split}'" if options.split else ""
        raise ConnectorError(f"source '{spec.name}': no {', '.join(SUFFIXES)} files{wanted} at {spec.path}")
    for file in files:
        yield _file_table(file, options)


def _files(path: Path, split: str | None) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if split:
        part = re.compile(rf"{re.escape(split)}([-_.]|$)")
        files = [p for p in files if any(part.match(name) for name in p.relative_to(path).parts)]
    return files


def _file_table(file: Path, options: Options) -> _Table | Reject:
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        dataset = _load(str(file), "parquet", data_files=str(file), split="train")
        return _dataset_table(dataset, file.name, str(file))
    text = lines.decode(file, options.encoding)
    if isinstance(text, Reject):
        return text
    if not text.strip():
        return Reject("empty_file", f"{file} is empty", str(file))
    if suffix == ".csv":
        columns, items = lines.csv_records(file, text)
        return _Table(file.name, str(file), columns, items) if columns else items[0]  # the header's bad_line
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            items = lines.json_lines(file, text)
            if all(isinstance(item, Reject) for item in items):
                return Reject("bad_json", f"{file} is neither JSON ({e}) nor JSON lines", str(file))
        else:
            if options.records is not None:
                if not isinstance(data, dict) or options.records not in data:
                    keys = ", ".join(data) if isinstance(data, dict) else "none (the file holds a list)"
                    raise ConnectorError(f"{file} has no top-level key '{options.records}'; keys are {keys}")
                data = data[options.records]
            return _json_table(data, file)
    else:
        items = lines.json_lines(file, text)
    columns = list(dict.fromkeys(key for item in items if not isinstance(item, Reject) for key in item[1]))
    return _Table(file.name, str(file), columns, items)


def _json_table(data: Any, file: Path) -> _Table:
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        items = [(str(key), value) for key, value in data.items()]
    elif isinstance(data, list) and all(isinstance(v, dict) for v in data):
        items = [(str(index), value) for index, value in enumerate(data)]
    else:
        raise ConnectorError(f"{file} holds neither a list of objects nor objects keyed by id")
    columns = list(dict.fromkeys(key for _, item in items for key in item))
    return _Table(file.name, str(file), columns, items)


def _dataset_table(dataset: datasets.Dataset, name: str, origin: str) -> _Table:
    return _Table(name, origin, list(dataset.column_names), ((str(i), row) for i, row in enumerate(dataset)))


def _load(what: str, *args: Any, **kwargs: Any) -> datasets.Dataset:
    try:
        return datasets.load_dataset(*args, **kwargs)
    except Exception as e:  # datasets raises many types (network, missing repo, malformed file)
        raise ConnectorError(f"cannot load {what}: {e}") from e


def _check_columns(spec: SourceSpec, mapping: Mapping, table: _Table) -> None:
    missing = [c for c in mapping.columns() if c not in table.columns and c.split(".")[0] not in table.columns]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise ConnectorError(f"source '{spec.name}': column{'s' * (len(missing) > 1)} {names} not found in "
                             f"{table.name}; columns are {', '.join(table.columns)}")


def _convert(spec: SourceSpec, m: Mapping, origin: str, locator: str, item: dict) -> dict | Reject:
    """One item as a qa row, or a Reject saying why not."""
    if m.id is not None:
        locator = _text(_get(item, m.id)) or locator
    question = _text(_get(item, m.question))
    if not question:
        return Reject("empty_question", f"{origin} item {locator} has an empty '{m.question}'", locator, item)
    extra = _text(_get(item, m.input))
    question = f"{question}\n\n{extra}" if extra else question
    meta = {c: _get(item, c) for c in m.meta}
    if m.options is not None:
        choices, label = _choice(item, m)
        if label is None:
            return Reject("bad_answer_key", f"{origin} item {locator}: the correct option is not among "
                          f"{list(choices)}", locator, item)
        question += "\n\n" + "\n".join(f"{key}. {text}" for key, text in choices.items())
        answer = f"{label}. {choices[label]}"
        meta.update(options=choices, answer_idx=label)
    else:
        answer = _text(_get(item, m.answer))
    if not answer:
        return Reject("empty_answer", f"{origin} item {locator} has an empty '{m.answer}'", locator, item)
    if m.long_answer is not None:
        meta["decision"] = answer
        answer = m.answer_template.format(answer=answer, Answer=answer[:1].upper() + answer[1:],
                                          long_answer=_text(_get(item, m.long_answer))).strip()
    context = _text(_get(item, m.context), "\n\n")
    if context:
        question = f"Context:\n{context}\n\nQuestion: {question}"
    return make_qa(question=question, answer=answer, reasoning=_text(_get(item, m.reasoning)) or None,
                   system=m.system, source=spec.name, license=spec.license, origin=spec.url or origin,
                   revision=spec.revision, locator=locator, meta=meta)


def _choice(item: dict, m: Mapping) -> tuple[dict[str, str], str | None]:
    """The non-empty options {label: text} and the correct label (None when it is not among them)."""
    raw = [_get(item, c) for c in m.options] if isinstance(m.options, list) else _get(item, m.options)
    pairs = list(raw.items()) if isinstance(raw, dict) else list(zip(LETTERS, raw or []))
    labels = [str(key) for key, _ in pairs]
    choices = {str(key): _text(value) for key, value in pairs if _text(value)}
    if m.answer_key is None:
        answer = _text(_get(item, m.answer))
        return choices, next((key for key, text in choices.items() if text == answer), None)
    key = _get(item, m.answer_key)
    if isinstance(key, int) and not isinstance(key, bool):
        label = labels[key] if 0 <= key < len(labels) else None
    else:
        label = _text(key)
        label = label if label in choices else label.upper()
    return choices, label if label in choices else None


def _get(item: dict, column: str | None) -> Any:
    """The value of ``column`` (``a.b`` reads nested objects); None when absent."""
    if column is None:
        return None
    if column in item:
        return item[column]
    value: Any = item
    for part in column.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any, separator: str = "\n") -> str:
    """A cell as stripped text: numbers via str, lists joined by ``separator``, missing or NaN as ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return separator.join(text for text in (_text(v, separator) for v in value) if text)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()
