"""The dataset card (``README.md``) of an export: Hub YAML metadata, then what the data is and how it was made.

Consumes a ``CardContext`` that the exporter fills from the written splits, the run's ``_stage.json`` files and
the pipeline's name; produces the card's text. The YAML header carries the licence (``curate.export.licenses``),
language, task categories, size category, tags, ``dataset_info`` (features, split sizes) and the ``configs`` block
that maps each split to its ``data/<split>-*`` shards, so ``datasets.load_dataset(folder_or_repo)`` finds the splits. The body holds a
summary, a sources table, the stages with their parameters, the export's format, reasoning and context mode
(closed-book or RAG-style, also a tag), filter statistics, a sample row per split and kind (images summarised),
limitations and a medical disclaimer; non-commercial and share-alike conditions stand right under the title. The
card never holds a token, a local path of a source or image bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData

from curate import __version__
from curate.evaluate.stats import wilson
from curate.export.licenses import LicenseDecision, normalise, notices
from curate.portable import portable
from curate.quality.review import VERDICTS

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
TASKS = {"qa": ["question-answering"], "vqa": ["visual-question-answering"], "image": ["image-to-text"]}
CONTEXT = {
    "omit": "closed-book SFT: the user turn holds the question only; passages retrieved during synthesis are not in "
            "the prompt, so the model learns to answer the way it is evaluated and used",
    "include": "RAG-style SFT: the passages retrieved during synthesis are in the prompt (\"Context: ...\" before the "
               "question), so the model learns to answer from given passages",
}
DISCLAIMER = (
    "This dataset is for research on training and evaluating language models. It is **not medical advice** and "
    "**not for clinical use**: answers come from the listed sources and, where a stage generated or rewrote them, from "
    "language models; none has been reviewed by a clinician for this release. Do not use models trained on it to "
    "diagnose, treat or triage people. In an emergency call your local emergency number.")


@dataclass
class SourceRow:
    """One line of the sources table."""

    name: str
    kind: str | None
    license: str | None
    attribution: str | None
    where: str | None
    rows: int


@dataclass
class SplitData:
    rows: int
    num_bytes: int
    download_bytes: int
    samples: dict[str, dict]


@dataclass
class CardContext:
    name: str
    format: str
    reasoning: str
    context: str
    features: datasets.Features
    splits: dict[str, SplitData]
    kinds: dict[str, int]
    sources: list[SourceRow]
    license: LicenseDecision
    stages: list[dict]  # each step's _stage.json (with its ``dirname``), ingest first
    skipped: dict[str, int]
    generation: dict[str, dict[str, int]]
    groups: dict
    fractions: dict[str, float]
    seed: int
    warnings: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=lambda: ["en"])
    pipeline_file: str | None = None

    @property
    def total(self) -> int:
        return sum(s.rows for s in self.splits.values())


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "n>100M")


def task_categories(kinds: dict[str, int]) -> list[str]:
    return sorted({"text-generation", *(t for kind in kinds for t in TASKS.get(kind, []))})


def header(ctx: CardContext) -> str:
    """The YAML front matter: Hub metadata, dataset_info and the configs that map splits to files."""
    tags = ["medical", "sft", "curate", ctx.format, "closed-book" if ctx.context == "omit" else "rag"] + (
        ["reasoning"] if ctx.reasoning != "drop" else [])
    data = DatasetCardData(language=ctx.language, license=ctx.license.license, pretty_name=ctx.name,
                           size_categories=[size_category(ctx.total)], task_categories=task_categories(ctx.kinds),
                           tags=tags)
    if ctx.license.license_name:
        data["license_name"] = ctx.license.license_name
    splits = datasets.SplitDict()
    for split, info in ctx.splits.items():
        splits.add(datasets.SplitInfo(name=split, num_bytes=info.num_bytes, num_examples=info.rows))
    info = datasets.DatasetInfo(features=ctx.features, splits=splits,
                                download_size=sum(s.download_bytes for s in ctx.splits.values()),
                                dataset_size=sum(s.num_bytes for s in ctx.splits.values()))
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    MetadataConfigs({"default": {"data_files": [{"split": s, "path": f"data/{s}-*"} for s in ctx.splits]}}
                    ).to_dataset_card_data(data)
    return f"---\n{data.to_yaml()}\n---\n"


def render_card(ctx: CardContext) -> str:
    """The whole README.md."""
    sections = [_summary(ctx), _sources(ctx), _how_made(ctx), _filters(ctx), *_reviews(ctx), _samples(ctx),
                _limitations(ctx), "## Medical disclaimer\n\n" + DISCLAIMER]
    return header(ctx) + "\n" + "\n\n".join(sections) + "\n"


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def _table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows])


def _summary(ctx: CardContext) -> str:
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(ctx.kinds.items()))
    lic = ctx.license
    text = [
        f"# {ctx.name}",
        *(f"> {line}." for line in notices(lic)),
        f"{ctx.total:,} supervised fine-tuning examples ({kinds}) in the `{ctx.format}` format, built with curate "
        f"{__version__} from {len([s for s in ctx.sources if s.rows])} source(s).",
        _table(["split", "rows"], [[s, f"{d.rows:,}"] for s, d in ctx.splits.items()]),
        "```python\nfrom datasets import load_dataset\n\nds = load_dataset(\"<this repo or folder>\")\n```",
        f"**Licence: `{lic.license}`**" + (f" ({lic.license_name})" if lic.license_name else "")
        + ": the most restrictive licence among the sources used, so that every source's conditions hold "
        f"({', '.join(lic.conditions) or 'no conditions'}). Each row keeps its own source licence in the `license` "
        "column." + "".join(f" Note: {n}." for n in lic.notes),
    ]
    text += [f"> **Warning:** {w}" for w in lic.warnings + ctx.warnings]
    return "\n\n".join(text)


def _sources(ctx: CardContext) -> str:
    rows = [[s.name, s.kind, s.license, _normalised(s.license), s.attribution, s.where, f"{s.rows:,}"]
            for s in ctx.sources]
    return "## Sources\n\n" + _table(
        ["source", "kind", "licence (as given)", "licence (normalised)", "attribution", "where", "rows"], rows)


def _normalised(given: str | None) -> str:
    return ", ".join(normalise(lic) or "unknown" for lic in (given or "").split(", "))


def _how_made(ctx: CardContext) -> str:
    parts = ["## How it was made"]
    stage_rows = [[s.get("dirname"), s.get("stage", "ingest"), _params(s), s["stats"]["rows_in"],
                   s["stats"]["rows_out"], _reasons(s["stats"]["dropped"])] for s in ctx.stages]
    if stage_rows:
        parts.append(_table(["step", "stage", "parameters", "rows in", "rows out", "dropped"], stage_rows))
    if ctx.pipeline_file:
        parts.append(f"The pipeline file is included as `{ctx.pipeline_file}`.")
    if ctx.generation:
        parts.append("Models and prompt versions recorded on the rows:\n\n" + "\n".join(
            f"- `{key}`: " + ", ".join(f"`{v}` ({n:,} rows)" for v, n in values.items())
            for key, values in ctx.generation.items()))
    fractions = ", ".join(f"{s} {f:g}" for s, f in ctx.fractions.items())
    parts.append(
        f"Export: format `{ctx.format}`, reasoning `{ctx.reasoning}`, context `{ctx.context}` "
        f"({CONTEXT[ctx.context]}). Splits ({fractions}, seed {ctx.seed}) are "
        f"group-aware: rows sharing a document page, a cited source chunk or an image are kept in one split "
        f"({ctx.groups.get('groups', 0):,} groups; the largest has {ctx.groups.get('largest_group', 0):,} rows; "
        f"{ctx.groups.get('rows_in_shared_groups', 0):,} rows share a group with another row).")
    return "\n\n".join(parts)


def _params(stage: dict) -> str:
    if "sources" in stage:
        return ", ".join(s["name"] + (f" (limit {s['limit']})" if s.get("limit") else "") for s in stage["sources"])
    return "`" + json.dumps(portable(stage.get("config", {})), ensure_ascii=False, sort_keys=True) + "`"


def _reasons(dropped: dict) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1])) or "-"


def _filters(ctx: CardContext) -> str:
    rows = [[s.get("stage", "ingest"), reason, f"{n:,}"] for s in ctx.stages
            for reason, n in sorted(s["stats"]["dropped"].items(), key=lambda kv: -kv[1])]
    rows += [["export", f"skipped: {reason}", f"{n:,}"] for reason, n in sorted(ctx.skipped.items())]
    body = _table(["step", "reason", "rows"], rows) if rows else "No rows were dropped."
    return "## Filter statistics\n\nRows removed on the way, by step and reason:\n\n" + body


def _reviews(ctx: CardContext) -> list[str]:
    """What a person's reading found, per ``review`` step: the sample's share of correct rows with its 95% Wilson
    interval, what was removed, and what no one read."""
    parts = []
    for s in ctx.stages:
        if s.get("stage") != "review":
            continue
        n = s["stats"].get("counters", {})
        correct, wrong, unsure = (n.get(f"review_{v}", 0) for v in VERDICTS)
        read, rows_in = correct + wrong + unsure, s["stats"]["rows_in"]
        low, high = wilson(correct, read)
        share = (f"**{correct} correct** ({100 * correct / read:.0f}%, 95% Wilson interval {100 * low:.0f}-"
                 f"{100 * high:.0f}%), {wrong} wrong, {unsure} unsure") if read else "no verdict applied"
        text = (f"A person read {read:,} of the {rows_in:,} rows that reached step `{s.get('dirname')}`, taken in a "
                f"random order (`curate review`): {share}. Rows read as wrong were removed (`reviewed_wrong`). " + (
                    f"Rows not read: {rows_in - read:,}; the sample's share is the estimate of how many of them are "
                    "correct." if read < rows_in else "Every row kept was read."))
        if n.get("review_changed"):
            text += f" Verdicts not applied because their row's text changed after it was read: {n['review_changed']}."
        parts.append(text)
    return ["## Human review\n\n" + "\n\n".join(parts)] if parts else []


def _samples(ctx: CardContext) -> str:
    parts = ["## Sample rows\n\nThe first row of each kind in each split; images are summarised, long text is cut."]
    for split, info in ctx.splits.items():
        for kind, sample in info.samples.items():
            text = json.dumps(sample, indent=1, ensure_ascii=False, default=str)
            parts.append(f"### {split} ({kind})\n\n```json\n{text}\n```")
    return "\n\n".join(parts)


def _limitations(ctx: CardContext) -> str:
    items = [
        "Answers are as good as their sources: they were not checked by clinicians for this release, may be out of "
        "date, and reflect the sources' regions and practices.",
        "Splits keep rows that share a page, a chunk or an image together, but near-duplicate questions from "
        "different pages or images can still fall in different splits unless a dedup stage ran.",
        "Licences differ per source; the card's licence is the most restrictive one, and each row names its own.",
    ]
    if ctx.skipped:
        items.append("Rows that are not supervised examples were left out: "
                     + ", ".join(f"{k} ({v:,})" for k, v in sorted(ctx.skipped.items())) + ".")
    items += ctx.license.warnings + ctx.warnings
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items)
