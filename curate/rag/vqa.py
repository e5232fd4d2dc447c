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
- ``finding``: "What does this CT image show?" -> the caption's own words after "showing", "shows",
  "demonstrating", "revealing" (parenthesised pointers such as "(arrow)" removed): an extractive answer.
- ``closed_modality``: "Is this a CT scan?" asked twice, once of the image's modality ("Yes. ...") and once of
  another ("No. ..."), so closed questions are balanced. Only for images of exactly one of CT, MRI, X-ray or
  ultrasound (an angiogram or PET image may be combined with another modality, so a "No" would not be known).
- ``region``: "Which body region is shown?" and ``closed_region``: "Is this an image of the chest?" Yes for the
  region and No for a region that cannot appear with it (head vs pelvis, chest vs lower extremity, ...). The region
  comes from the ROCOv2 manual concepts or the DICOM BodyPartExamined tag, never from free text, and only when the
  image has exactly one.

``mode`` (default ``templates``): ``llm`` or ``both`` also let the local model (``llm:``) write the question of an
``llm_finding`` pair, answer first: the answer is the caption's own finding words (as in ``finding``), the model sees
the caption and that answer (``prompts/synth_vqa.v1.yaml``, JSON grammar) and writes one question about the image.
A question is kept only when it stands alone (``curate.rag.question_checks.question_problem``: a question, no mention of
the caption, no bare pronoun, not a few-shot copy), does not contain its answer and does not ask beyond what a
caption states (causes, diagnosis, treatment, "most likely", "most common": ``asks_beyond_caption``); otherwise the
pair is not made, ``llm_<problem>`` is counted and the image row goes to the rejects with that reason and the
model's raw output (``llm_malformed``: no JSON question; ``llm_generation_error``: the backend's message) as detail.

Consumes ``image`` rows (``image``, ``caption``, ``cuis``, ``cui_names``, ``modality``, ``source``, ``license``,
``provenance``); other kinds pass through. Produces ``vqa`` rows (the same image, ``messages`` with one question and
its answer, ``meta`` = {template, image_id}); image rows that yield no pair are dropped with reason ``no_pairs``.
A caption with nothing to ask about ("See text.", "Figure 2", one word) gives no caption-derived pair
(counter ``unusable_caption``); a CUI without a name is skipped (counter ``unnamed_cui``).

Example::

    - stage: synth_vqa
      templates: [caption, modality, findings, evidence]
      max_evidence: 2
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import Field

from curate.llm import LLMConfig, load_llm
from curate.llm.base import Sampling, first_json_object
from curate.llm.prompts import load_prompt
from curate.rag.question_checks import question_problem
from curate.schema import MODALITY_CUIS, make_image
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows

CAPTION_QUESTION = "Describe accurately what you see in this image."
MODALITY_NAMES = {
    "CT": "computed tomography (CT)", "X-ray": "a plain radiograph (X-ray)", "MRI": "magnetic resonance imaging (MRI)",
    "Ultrasound": "ultrasonography", "Angiography": "angiography", "PET": "positron emission tomography (PET)",
}
Template = Literal["caption", "modality", "findings", "evidence", "finding", "closed_modality", "region",
                   "closed_region"]
TEMPLATES = ("caption", "modality", "findings", "evidence", "finding", "closed_modality", "region", "closed_region")

# Modalities that are never acquired together in one image: a "No" about one of them is known for the others.
EXCLUSIVE_MODALITIES = {"CT": "a CT scan", "MRI": "an MRI scan", "X-ray": "a plain radiograph (X-ray)",
                        "Ultrasound": "an ultrasound image"}
# Body regions, from ROCOv2 manual concept CUIs and DICOM BodyPartExamined code strings.
REGION_CUIS = {"C0037303": "head", "C0817096": "chest", "C0000726": "abdomen", "C0030797": "pelvis",
               "C1140618": "upper extremity", "C0023216": "lower extremity", "C0037949": "spine", "C0006141": "breast"}
REGION_CODES = {"HEAD": "head", "SKULL": "head", "BRAIN": "head", "CHEST": "chest", "THORAX": "chest",
                "LUNG": "chest", "ABDOMEN": "abdomen", "PELVIS": "pelvis", "HAND": "upper extremity",
                "ARM": "upper extremity", "ELBOW": "upper extremity", "WRIST": "upper extremity",
                "LEG": "lower extremity", "KNEE": "lower extremity", "FOOT": "lower extremity",
                "ANKLE": "lower extremity", "SPINE": "spine", "BREAST": "breast"}
# Regions that one image of the first region cannot show (a conservative list: neighbours are never "No").
DISJOINT_REGIONS = {"head": ("pelvis", "lower extremity", "abdomen"), "chest": ("head", "pelvis", "lower extremity"),
                    "abdomen": ("head", "lower extremity"), "pelvis": ("head", "chest"),
                    "upper extremity": ("head", "pelvis", "lower extremity"),
                    "lower extremity": ("head", "chest", "upper extremity")}


class SynthVQAConfig(StageConfig):
    templates: list[Template] = Field(default_factory=lambda: list(TEMPLATES))
    mode: Literal["templates", "llm", "both"] = "templates"
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "synth_vqa.v1"
    max_tokens: int = Field(default=48, ge=8)
    seed: int = 0
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


# A negation cue reaches to the end of its scope: punctuation or a contrasting conjunction.
_SCOPE_END = re.compile(r"[,;:()\[\]]|\b(?:but|however|although|whereas|while)\b", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(r"\b(?:no|not|without|absence|absent|negative for|free of|resolution|resolved|"
                             r"ruled out|rule out|exclude[ds]?|neither|nor)\b", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"\b(?:not|absent|resolved|ruled out|excluded|disappeared)\b", re.IGNORECASE)


def denied(sentence: str, start: int, end: int, window: int = 6) -> bool:
    """True when the mention ``sentence[start:end]`` is denied or reported gone: a cue among the ``window`` words
    before it, or "not" / "absent" / "resolved" among the 4 words after it, within the cue's scope."""
    before = _SCOPE_END.split(sentence[:start])[-1].split()[-window:]
    after = _SCOPE_END.split(sentence[end:])[0].split()[:4]
    return bool(_NEGATED_BEFORE.search(" ".join(before)) or _NEGATED_AFTER.search(" ".join(after)))


def evidence_sentence(caption: str, name: str) -> str | None:
    """The first caption sentence that mentions ``name`` as a whole word (case-insensitive) without negating it,
    or None."""
    pattern = re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)
    for sentence in re.split(r"(?<=[.!?])\s+", caption.strip()):
        if any(not denied(sentence, m.start(), m.end()) for m in pattern.finditer(sentence)):
            return sentence
    return None


_SHOWING = re.compile(r"\b(?:showing|shows|demonstrating|demonstrates|revealing|reveals)\s+(.+?)(?:[.;]|$)",
                      re.IGNORECASE)
_POINTER = re.compile(r"\s*\((?:[^()]*\b(?:arrows?|arrowheads?|asterisks?|circles?|stars?)\b[^()]*|[^\w()]*)\)",
                      re.IGNORECASE)


# ROCOv2 captions often glue a glossary or the next sentence to the last word: "valve (arrow)TEE: trans...",
# "acute infarct (white arrow)An interval decrease": a sentence ends there.
_GLUED = re.compile(r"(?<=[a-z0-9)\]])(?=[A-Z][A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*:\s)|(?<=[a-z)\]])(?=[A-Z][a-z])"
                    r"|(?<=[A-Z]{2})(?=[A-Z][a-z]{3,})")


def finding_span(caption: str) -> str | None:
    """What the caption says the image shows: the words after its first "showing"/"reveals"/..., up to the end of
    its sentence (a glued glossary or next sentence ends it too), pointers removed; None when there is no such
    clause or it is shorter than two words."""
    match = _SHOWING.search(_GLUED.sub(". ", caption))
    if not match:
        return None
    span = _POINTER.sub("", match.group(1)).strip(" ,:")
    return span if len(span.split()) >= 2 else None


def row_meta(row: dict) -> dict:
    try:
        return json.loads(row.get("meta") or "{}")
    except (TypeError, ValueError):
        return {}


def body_region(row: dict) -> str | None:
    """The image's one body region: from ROCOv2 manual concepts, else the DICOM BodyPartExamined tag."""
    meta = row_meta(row)
    regions = {REGION_CUIS[c] for c in meta.get("manual_cuis") or [] if c in REGION_CUIS}
    code = str(meta.get("BodyPartExamined") or "").upper()
    if code in REGION_CODES:
        regions.add(REGION_CODES[code])
    return regions.pop() if len(regions) == 1 else None


def _other(choices: list[str], key: str) -> str:
    """One of ``choices``, the same for the same ``key`` on every run."""
    return choices[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(choices)]


def closed_modality(row: dict) -> list[tuple[str, str, str]]:
    modalities = (row.get("modality") or "").split("/")
    if len(modalities) != 1 or modalities[0] not in EXCLUSIVE_MODALITIES:
        return []
    true = modalities[0]
    other = _other(sorted(set(EXCLUSIVE_MODALITIES) - {true}), row["id"])
    said = modality_answer(true)
    return [("closed_modality", f"Is this {EXCLUSIVE_MODALITIES[true]}?", f"Yes. {said}"),
            ("closed_modality", f"Is this {EXCLUSIVE_MODALITIES[other]}?", f"No. {said}")]


def closed_region(region: str, key: str) -> list[tuple[str, str, str]]:
    if region not in DISJOINT_REGIONS:
        return []
    other = _other(list(DISJOINT_REGIONS[region]), key)
    return [("closed_region", f"Is this an image of the {region}?", f"Yes. The image shows the {region}."),
            ("closed_region", f"Is this an image of the {other}?", f"No. The image shows the {region}.")]


# A caption that points elsewhere or says nothing about the image ("See text.", "Figure 2", "N/A").
_NO_CONTENT = re.compile(r"^\W*(?:see (?:text|main text|figure|fig\.?|legend|above|below)|(?:figure|fig\.?|image|panel)"
                         r"\s*[\dA-Za-z]?|n/?a|none|no caption)\W*$", re.IGNORECASE)


def usable_caption(caption: str) -> str:
    """The caption, or "" when it has no content to ask about (one word, or a pointer elsewhere)."""
    caption = caption.strip()
    return "" if len(caption.split()) < 2 or _NO_CONTENT.match(caption) else caption


def pairs(row: dict, config: SynthVQAConfig) -> list[tuple[str, str, str]]:
    """(template, question, answer) for one image record; caption templates only for a usable caption."""
    caption = usable_caption(row.get("caption") or "")
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
    span = finding_span(caption) if "finding" in config.templates and caption else None
    if span:
        kind = f" {row['modality']}" if row.get("modality") and "/" not in row["modality"] else ""
        out.append(("finding", f"What does this{kind} image show?", span[0].upper() + span[1:] + "."))
    if "closed_modality" in config.templates:
        out += closed_modality(row)
    region = body_region(row) if {"region", "closed_region"} & set(config.templates) else None
    if region and "region" in config.templates:
        out.append(("region", "Which body region is shown?", f"The {region}."))
    if region and "closed_region" in config.templates:
        out += closed_region(region, row["id"])
    return out


# A caption states what an image shows; a question about causes, diagnosis, treatment or frequency asks beyond it.
_BEYOND = re.compile(r"\b(?:causes?|caused|diagnos\w*|treat\w*|manag\w*|prognos\w*|most common|most likely|why|"
                     r"risks?)\b", re.IGNORECASE)
QUESTION_SCHEMA = {"type": "object", "properties": {"question": {"type": "string", "maxLength": 200}},
                   "required": ["question"]}


class SynthVQA(Stage):
    name = "synth_vqa"
    Config = SynthVQAConfig
    inputs = ("id", "kind", "image", "caption", "cuis", "cui_names", "modality", "source", "license", "provenance")

    def fingerprint_extra(self) -> list:
        return [load_prompt(self.config.prompt).sha256] if self.config.mode != "templates" else []

    def setup(self) -> None:
        if self.config.mode != "templates":  # templates need no model
            self.llm = load_llm(self.config.llm)
            self.prompts = load_prompt(self.config.prompt)

    def _llm_pairs(self, images: list[dict]) -> tuple[dict[str, list[tuple[str, str, str]]], dict[str, tuple]]:
        """image id -> its ``llm_finding`` pair, for the images whose caption has a finding and whose question
        passes the checks; and image id -> (reason, raw output or backend error) for those whose question did not."""
        todo = [(row, span) for row in images if (span := finding_span(usable_caption(row.get("caption") or "")))]
        prompts = [self.prompts.fill("vqa_question", self.llm.instruction_tuned, caption=row["caption"].strip(),
                                       answer=span[0].upper() + span[1:] + ".") for row, span in todo]
        sampling = Sampling(self.config.max_tokens, 0.0, 1.0, self.config.seed)
        out: dict[str, list[tuple[str, str, str]]] = {}
        failed: dict[str, tuple[str, str]] = {}
        for (row, span), gen in zip(todo, self.llm.generate_batch(prompts, sampling, QUESTION_SCHEMA)):
            self.counters["tokens_generated"] += gen.completion_tokens
            if gen.error:
                failed[row["id"]] = ("llm_generation_error", gen.error)
                continue
            try:
                question = str(first_json_object(gen.text)["question"]).strip()
            except (ValueError, KeyError, TypeError):
                failed[row["id"]] = ("llm_malformed", gen.text)
                continue
            problem = question_problem(question, self.prompts.examples) or (
                "gives_answer_away" if span.lower() in question.lower() else
                "asks_beyond_caption" if _BEYOND.search(question) else None)
            if problem:
                failed[row["id"]] = (f"llm_{problem}", gen.text)
                continue
            out[row["id"]] = [("llm_finding", question, span[0].upper() + span[1:] + ".")]
        for reason, _ in failed.values():
            self.counters[reason] += 1
        return out, failed

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        images = [r for r in rows(batch) if r["kind"] == "image"]
        written, failed = self._llm_pairs(images) if self.config.mode != "templates" else ({}, {})
        out = []
        for row in rows(batch):
            if row["kind"] != "image":
                out.append(row)
                continue
            self.counters["unusable_caption"] += not usable_caption(row.get("caption") or "")
            names = row.get("cui_names") or [None] * len(row.get("cuis") or [])
            self.counters["unnamed_cui"] += sum(not n for n in names)
            made = (pairs(row, self.config) if self.config.mode != "llm" else []) + written.get(row["id"], [])
            if row["id"] in failed:
                reason, detail = failed[row["id"]]
                out.append({**row, DROP: reason, DROP_DETAIL: detail})
            elif not made:
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
        return {k: [r.get(k) for r in out] for k in [*batch, DROP, DROP_DETAIL]}
