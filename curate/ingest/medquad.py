"""MedQuAD (NIH medical question answering, XML): one ``qa`` row per QAPair.

``spec.path`` is one XML file or a folder searched recursively (the MedQuAD repository root, or one subset such as
``9_CDC_QA``). Each file is a Document (id, source, url) with a Focus, its UMLS annotations (CUIs, semantic types and
group; inside FocusAnnotations, with a Category and Synonyms, in the MedlinePlus subsets) and QAPairs of a
Question (qid, qtype) and an Answer. The ``hf_qa`` connector hands a path holding XML to this one, so a catalog entry
may use either kind.

Options: none (the layout is fixed). Mapping: only ``system`` (a system prompt for every row).

Output: one ``qa`` row per QAPair: the question and the answer (each line stripped, runs of blank lines collapsed);
provenance {origin: the XML file, locator: the qid}; meta {document_id, document_source, url, focus, category,
cuis, semantic_types, semantic_group, synonyms, qtype}. ``spec.limit`` stops after that many rows.

Rejects: ``empty_answer`` (the A.D.A.M., MedlinePlus drug and herbal subsets had their answers removed upstream),
``empty_question``; ``raw`` holds the question and the meta.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, ValidationError

from curate.ingest import base
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.schema import make_qa


class Options(base.Options):
    """MedQuAD takes no options."""


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str | None = None


def xml_files(path: Path) -> list[Path]:
    """The XML files at ``path`` (the file itself, or every ``*.xml`` under a folder, in path order)."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".xml" else []
    return sorted(p for p in path.rglob("*.xml") if p.is_file())


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    path = base.require_path(spec, "MedQuAD XML file or folder")
    try:
        mapping = Mapping.model_validate(spec.mapping)
    except ValidationError as e:
        raise ConnectorError(f"source '{spec.name}': a MedQuAD mapping takes only 'system': {e}") from e
    files = xml_files(path)
    if not files:
        raise ConnectorError(f"source '{spec.name}': no MedQuAD .xml files at {path}")
    kept = 0
    for file in files:
        for qid, question, answer, meta in _pairs(file):
            if not question or not answer:
                what = "question" if not question else "answer"
                yield Reject(reason=f"empty_{what}", detail=f"{file}: QAPair {qid} has an empty {what}",
                             locator=qid, raw={"question": question, **meta})
                continue
            yield make_qa(question=question, answer=answer, system=mapping.system, source=spec.name,
                          license=spec.license, origin=str(file), revision=spec.revision, locator=qid, meta=meta)
            kept += 1
            if spec.limit is not None and kept >= spec.limit:
                return


def _pairs(file: Path) -> Iterator[tuple[str, str, str, dict]]:
    """(qid, question, answer, meta) for each QAPair of one MedQuAD document."""
    try:
        root = ET.parse(file).getroot()
    except ET.ParseError as e:
        raise ConnectorError(f"{file} is not valid XML: {e}") from e
    document = {
        "document_id": root.get("id"),
        "document_source": root.get("source"),
        "url": root.get("url"),
        "focus": _first(root, "Focus"),
        "category": _first(root, "Category"),
        "cuis": _texts(root, "CUI"),
        "semantic_types": _texts(root, "SemanticType"),
        "semantic_group": _first(root, "SemanticGroup"),
        "synonyms": _texts(root, "Synonym"),
    }
    for number, pair in enumerate(root.iter("QAPair"), 1):
        question = pair.find("Question")
        qid = question.get("qid") if question is not None else None
        meta = {**document, "qtype": question.get("qtype") if question is not None else None}
        yield qid or f"{root.get('id')}-{number}", _clean(question), _clean(pair.find("Answer")), meta


def _clean(element: ET.Element | None) -> str:
    """The element's text with each line stripped and runs of blank lines collapsed to one."""
    text = "".join(element.itertext()) if element is not None else ""
    lines = "\n".join(line.strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", lines).strip()


def _texts(root: ET.Element, tag: str) -> list[str]:
    return [text for text in (_clean(e) for e in root.iter(tag)) if text]


def _first(root: ET.Element, tag: str) -> str | None:
    texts = _texts(root, tag)
    return texts[0] if texts else None
