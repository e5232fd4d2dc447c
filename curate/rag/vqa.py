"""``synth_vqa``: visual question-answer pairs grounded in an image's caption and UMLS concepts.

Templates, each answered only from what the record states:
- ``caption``: "Describe accurately what you see in this image." -> the caption (the captioning task).
- ``modality``: "Which imaging modality is this?" -> the modality from the record's modality CUI or DICOM header.
- ``findings``: "What structures or findings are shown in this image?" -> the names of the record's non-modality
  CUIs, in order.
- ``evidence``: "Is there evidence of X in this image?" -> "Yes. ..." with the caption sentence naming X, for concept
  names the caption itself mentions. A mention the caption negates ("no signs of placenta accreta", "resolution of
  the pneumothorax": a cue a few words before it in the same clause, or "is not"/"absent" just after) does not
  count. No "No" answers are made: a concept missing from a caption is not evidence of its absence from the image,
  and the negation cues are a heuristic, so a negated mention only withholds the pair.

Consumes ``image`` rows (``image``, ``caption``, ``cuis``, ``cui_names``, ``modality``, ``source``, ``license``,
``provenance``); other kinds pass through. Produces ``vqa`` rows (the same image, ``messages`` with one question and
its answer, ``meta`` = {template, image_id}); image rows that yield no pair are dropped with reason ``no_pairs``.

Example::

    - stage: synth_vqa
      templates: [caption, modality, findings, evidence]
      max_evidence: 2
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from curate.schema import MODALITY_CUIS, make_image
from curate.stage import DROP, Stage, StageConfig, rows

CAPTION_QUESTION = "Describe accurately what you see in this image."
MODALITY_NAMES = {
    "CT": "computed tomography (CT)", "X-ray": "a plain radiograph (X-ray)", "MRI": "magnetic resonance imaging (MRI)",
    "Ultrasound": "ultrasonography", "Angiography": "angiography", "PET": "positron emission tomography (PET)",
}
Template = Literal["caption", "modality", "findings", "evidence"]


class SynthVQAConfig(StageConfig):
    templates: list[Template] = Field(default_factory=lambda: ["caption", "modality", "findings", "evidence"])
    max_evidence: int = Field(default=2, ge=0)
    min_concept_chars: int = 4


def modality_answer(modality: str) -> str:
    parts = [MODALITY_NAMES.get(m, m) for m in modality.split("/")]
    return f"This image was acquired with {' combined with '.join(parts)}."


def concept_names(row: dict) -> list[str]:
    """Names of the row's concepts that are not modality concepts, in order, without repeats or unknowns."""
    names, seen = [], set()
    for cui, name in zip(row.get("cuis") or [], row.get("cui_names") or []):
        if cui in MODALITY_CUIS or not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        names.append(name)
    return names


# A clause ends at punctuation or a contrasting conjunction; a negation cue only reaches within its clause.
_CLAUSE_BREAK = re.compile(r"[,;:()\[\]]|\b(?:but|however|although|whereas|while)\b", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(r"\b(?:no|not|without|absence|absent|negative for|free of|resolution|resolved|"
                             r"ruled out|rule out|exclude[ds]?|neither|nor)\b", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"\b(?:not|absent|resolved|ruled out|excluded|disappeared)\b", re.IGNORECASE)


def negated(sentence: str, start: int, end: int, window: int = 6) -> bool:
    """True when the mention ``sentence[start:end]`` is denied or reported gone: a cue among the ``window`` words
    before it, or "not" / "absent" / "resolved" among the 4 words after it, within its clause."""
    before = _CLAUSE_BREAK.split(sentence[:start])[-1].split()[-window:]
    after = _CLAUSE_BREAK.split(sentence[end:])[0].split()[:4]
    return bool(_NEGATED_BEFORE.search(" ".join(before)) or _NEGATED_AFTER.search(" ".join(after)))


def evidence_sentence(caption: str, name: str) -> str | None:
    """The first caption sentence that mentions ``name`` as a whole word (case-insensitive) without negating it,
    or None."""
    pattern = re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)
    for sentence in re.split(r"(?<=[.!?])\s+", caption.strip()):
        if any(not negated(sentence, m.start(), m.end()) for m in pattern.finditer(sentence)):
            return sentence
    return None


def pairs(row: dict, config: SynthVQAConfig) -> list[tuple[str, str, str]]:
    """(template, question, answer) for one image record."""
    caption = (row.get("caption") or "").strip()
    names = concept_names(row)
    out = []
    if "caption" in config.templates and caption:
        out.append(("caption", CAPTION_QUESTION, caption))
    if "modality" in config.templates and row.get("modality"):
        out.append(("modality", "Which imaging modality is this?", modality_answer(row["modality"])))
    if "findings" in config.templates and names:
        out.append(("findings", "What structures or findings are shown in this image?",
                    "The image shows " + "; ".join(names) + "."))
    if "evidence" in config.templates and caption:
        made = 0
        for name in names:
            if made >= config.max_evidence or len(name) < config.min_concept_chars:
                continue
            sentence = evidence_sentence(caption, name)
            if sentence:
                out.append(("evidence", f"Is there evidence of {name.lower()} in this image?", f"Yes. {sentence}"))
                made += 1
    return out


class SynthVQA(Stage):
    name = "synth_vqa"
    Config = SynthVQAConfig
    inputs = ("id", "kind", "image", "caption", "cuis", "cui_names", "modality", "source", "license", "provenance")

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        out = []
        for row in rows(batch):
            if row["kind"] != "image":
                out.append(row)
                continue
            made = pairs(row, self.config)
            if not made:
                out.append({**row, DROP: "no_pairs"})
            for template, question, answer in made:
                self.counters[f"template_{template}"] += 1
                prov = row["provenance"]
                out.append(make_image(
                    image_bytes=row["image"]["bytes"], image_name=row["image"]["path"], source=row["source"],
                    license=row["license"], origin=prov["origin"], locator=f"{prov['locator']}#{template}",
                    revision=prov["revision"], caption=row["caption"], cuis=row["cuis"], cui_names=row["cui_names"],
                    modality=row["modality"], question=question, answer=answer,
                    meta={"template": template, "image_id": row["id"]}))
        return {k: [r.get(k) for r in out] for k in [*batch, DROP]}
