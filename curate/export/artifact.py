"""Exports a curate run, or one stage folder, as a dataset folder ready for ``load_dataset`` and the Hub.

Consumes a run folder (its last complete stage: report.json's ``final_dir``, else the highest ``NN-*`` folder with a
``_stage.json``) or a stage folder of ``part-*.parquet`` shards; from the run it also reads ``01-ingest/_stage.json``
(each source's kind, licence and attribution), every stage's ``_stage.json`` and the pipeline's name (from
RUN_DIR/pipeline.yaml). Produces OUT/:

    README.md                              the dataset card (``curate.export.card``)
    data/<split>-NNNNN-of-NNNNN.parquet    each split's records in the chosen format (``curate.export.formats``)
                                           plus ``id``, ``source`` and ``license`` columns
    report.json                            what the export did: rows per split, skips, groups, licence, and what each
                                           step before it kept and dropped (from the stages' ``_stage.json``)
    pipeline.yaml                          the pipeline file, when given or found as RUN_DIR/pipeline.yaml, with
                                           local paths replaced (``curate.portable``)
    arrow/                                 the ``DatasetDict.save_to_disk`` form, when asked

Nothing in OUT names a local path. Of the run's own report.json only ``final_dir`` is read: the report is written at
the end of a run, so while a run exports it is missing or a previous run's. Splits come from
``curate.export.splits`` (seeded, group-aware). The folder is built beside OUT and moved into place
at the end, so a failed export leaves no half-written artifact. The whole export is held in memory while it is built.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from curate import __version__
from curate.export import licenses
from curate.export.card import CardContext, SourceRow, SplitData, render_card
from curate.export.formats import CONTEXT_MODES, FORMATS, REASONING_MODES, NotSFT
from curate.export.splits import DEFAULT_FRACTIONS, assign_splits, check_fractions, group_keys, group_stats
from curate.export.summary import summarise
from curate.io import building, count_rows, parquet_files, read_json, write_json
from curate.portable import portable_pipeline

PROVENANCE = ("id", "source", "license")
_STAGE_DIR = re.compile(r"^\d{2}-")


class ExportError(Exception):
    """The export cannot run as asked; the message names the problem and the fix."""


class NothingToExport(ExportError):
    """The input holds no supervised examples (only pages, chunks, or rows that were all skipped)."""


@dataclass
class ExportOptions:
    format: str = "messages"
    reasoning: str = "drop"
    context: str = "omit"  # retrieved passages: omit (closed-book SFT) or include (in the prompt: RAG-style SFT)
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))  # name -> share of rows
    seed: int = 0
    language: list[str] = field(default_factory=lambda: ["en"])
    name: str | None = None
    pipeline: Path | None = None
    save_to_disk: bool = False
    max_shard_mb: float = 500
    overwrite: bool = False


@dataclass
class RunInput:
    """Where the rows are and what the run says about them."""

    rows_dir: Path
    run_dir: Path | None
    name: str | None
    sources: list[dict]
    stages: list[dict]
    pipeline: Path | None


@dataclass
class ExportResult:
    out: Path
    splits: dict[str, int]
    skipped: dict[str, int]
    license: str
    warnings: list[str]
    files: list[str]


def _stage_folders(run_dir: Path) -> list[Path]:
    """The run's complete stage folders, in order."""
    return sorted(d for d in run_dir.iterdir() if d.is_dir() and _STAGE_DIR.match(d.name) and
                  (d / "_stage.json").exists())


def _final_dir(run_dir: Path, stages: list[Path]) -> Path:
    report = read_json(run_dir / "report.json") if (run_dir / "report.json").exists() else {}
    named = Path(report["final_dir"]).name if report.get("final_dir") else None
    for d in stages:
        if d.name == named:
            return d
    if not stages:
        raise ExportError(f"{run_dir} has no complete stage folder (NN-name/ with _stage.json): did the run finish? "
                          "Rerun `curate run` to complete it")
    return stages[-1]


def resolve_input(path: str | Path, pipeline: Path | None = None) -> RunInput:
    """The rows folder and run metadata for a run folder or a stage folder."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"{path} is not a folder: give a run folder (with report.json) or a stage folder "
                          "(with part-*.parquet)")
    if (path / "_stage.json").exists() and not count_rows(path):
        raise NothingToExport(f"{path} holds no rows: every row was dropped by this step or one before it (each "
                              "step's rejects.jsonl says why); fix the sources or loosen the step that dropped them")
    if parquet_files(path):
        if not (path / "_stage.json").exists():
            raise ExportError(f"{path} has no _stage.json: that stage did not finish; rerun `curate run` to complete "
                              "it")
        run_dir, rows_dir = (path.parent if (path.parent / "01-ingest").is_dir() else None), path
    elif (path / "report.json").exists() or _stage_folders(path):
        run_dir, rows_dir = path, None
    else:
        raise ExportError(f"{path} is neither a run folder (report.json, NN-stage/ folders) nor a stage folder "
                          "(part-*.parquet)")
    stages = _stage_folders(run_dir) if run_dir else [rows_dir]
    if rows_dir is None:
        rows_dir = _final_dir(run_dir, stages)
    stages = stages[: stages.index(rows_dir) + 1] if rows_dir in stages else [rows_dir]
    metas = [{"dirname": d.name, **read_json(d / "_stage.json")} for d in stages]
    sources = next((m["sources"] for m in metas if "sources" in m), [])
    found = run_dir / "pipeline.yaml" if run_dir else None
    pipeline = pipeline or (found if found and found.exists() else None)
    return RunInput(rows_dir, run_dir, _pipeline_name(pipeline), sources, metas, pipeline)


def _pipeline_name(path: Path | None) -> str | None:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) if path else None
    except (OSError, yaml.YAMLError):
        return None
    return spec.get("name") if isinstance(spec, dict) and isinstance(spec.get("name"), str) else None


def _read_rows(folder: Path) -> list[dict]:
    return [row for f in parquet_files(folder) for row in pq.read_table(f).to_pylist()]


@dataclass
class _Kept:
    """The exported records with what the card and the splits need to know about each."""

    records: list[dict] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)
    row_kinds: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    licenses: dict[str, Counter] = field(default_factory=dict)
    generation: dict[str, Counter] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)

    def add(self, record: dict, row: dict) -> None:
        for col in PROVENANCE:
            record.setdefault(col, row.get(col))
        self.records.append(record)
        self.keys.append(group_keys(row))
        self.row_kinds.append(row.get("kind"))
        self.kinds[row.get("kind")] += 1
        self.licenses.setdefault(row.get("source"), Counter())[row.get("license")] += 1
        for key, value in generation(row.get("meta")).items():
            self.generation.setdefault(key, Counter())[value] += 1


def generation(meta: str | None) -> dict[str, str]:
    """What made a generated row, from its meta: model (``generator``: backend and model), prompt (name and
    version) and template (``synth_vqa``)."""
    meta = json.loads(meta) if meta else {}
    if not isinstance(meta, dict):
        return {}
    gen, prompt, out = meta.get("generator"), meta.get("prompt"), {}
    if isinstance(gen, dict) and gen.get("model"):
        out["model"] = " / ".join(str(gen[k]) for k in ("backend", "model") if gen.get(k))
    if isinstance(prompt, dict) and prompt.get("name"):
        out["prompt"] = f"{prompt['name']} (version {prompt.get('version')}, sha256 {str(prompt.get('sha256'))[:12]})"
    if meta.get("template"):
        out["template"] = str(meta["template"])
    return out


def _has_image(row: dict) -> bool:
    return bool((row.get("image") or {}).get("bytes"))


def format_rows(rows: list[dict], options: ExportOptions) -> tuple[_Kept, bool]:
    """Every row in the chosen format, or counted as skipped; and whether the records carry images."""
    fmt = FORMATS[options.format]
    multimodal = fmt.images and any(_has_image(r) for r in rows)
    kept = _Kept()
    for row in rows:
        try:
            record = fmt.to(row, reasoning=options.reasoning, multimodal=multimodal, context=options.context)
        except NotSFT as skip:
            kept.skipped[skip.reason] += 1
            continue
        kept.add(record, row)
    return kept, multimodal


def _write_split(records: list[dict], features: datasets.Features, data_dir: Path, split: str,
                 max_shard_bytes: float, images: bool) -> tuple[pa.Table, int]:
    """Write ``records`` as ``data/<split>-NNNNN-of-NNNNN.parquet`` shards; returns the table and bytes written."""
    table = pa.Table.from_pylist(records, schema=features.arrow_schema)
    per_shard = math.ceil(table.num_rows / max(1, math.ceil(table.nbytes / max_shard_bytes)))
    shards = math.ceil(table.num_rows / per_shard)
    written = 0
    for i in range(shards):
        path = data_dir / f"{split}-{i:05d}-of-{shards:05d}.parquet"
        pq.write_table(table.slice(i * per_shard, per_shard), path, row_group_size=100 if images else 10_000)
        written += path.stat().st_size
    return table, written


def _source_rows(run: RunInput, kept: _Kept) -> list[SourceRow]:
    """The sources table: every ingested source (with 0 rows if none survived) and any other source on the rows."""
    meta = {s["name"]: s for s in run.sources}
    names = list(meta) + sorted(n for n in kept.licenses if n not in meta)
    rows = []
    for name in names:
        spec, counts = meta.get(name, {}), kept.licenses.get(name, Counter())
        hub = (spec.get("hub") or {}).get("repo") if isinstance(spec.get("hub"), dict) else None
        rows.append(SourceRow(name, spec.get("kind"), ", ".join(sorted(map(str, counts))) or spec.get("license"),
                              spec.get("attribution"), hub or spec.get("url"), sum(counts.values())))
    return rows


def _license_inputs(kept: _Kept) -> dict[str, str | None]:
    """{source (and licence, when a source's rows carry several): licence} over the sources that contributed."""
    out = {}
    for source, counts in kept.licenses.items():
        for lic in counts:
            out[source if len(counts) == 1 else f"{source} ({lic})"] = lic
    return out


def _check(src: Path, out: Path, options: ExportOptions) -> None:
    if options.format not in FORMATS:
        raise ExportError(f"unknown format '{options.format}'; formats are {', '.join(FORMATS)}")
    if options.reasoning not in REASONING_MODES:
        raise ExportError(f"unknown reasoning mode '{options.reasoning}'; modes are {', '.join(REASONING_MODES)}")
    if options.context not in CONTEXT_MODES:
        raise ExportError(f"unknown context mode '{options.context}'; modes are {', '.join(CONTEXT_MODES)} (omit: "
                          "the user turn holds the question only; include: the retrieved passages go in the prompt)")
    try:
        check_fractions(options.splits)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if out == src.resolve() or out in src.resolve().parents:
        raise ExportError(f"{out} holds the input {src}: write the export somewhere else")
    if out.exists() and any(out.iterdir()):
        if not options.overwrite:
            raise ExportError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
        if not ((out / "README.md").is_file() and (out / "data").is_dir()):
            raise ExportError(f"{out} is not an export artifact (README.md and data/), so --overwrite will not "
                              "replace it; choose another folder")


def export(src: str | Path, out: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the rows at ``src`` (run or stage folder) to the artifact folder ``out``."""
    src, out, options = Path(src), Path(out).resolve(), options or ExportOptions()
    _check(src, out, options)
    run = resolve_input(src, options.pipeline)
    kept, multimodal = format_rows(_read_rows(run.rows_dir), options)
    if not kept.records:
        raise NothingToExport(f"no supervised examples in {run.rows_dir}: skipped {dict(kept.skipped) or 'nothing'}")
    assigned = assign_splits(kept.keys, options.splits, options.seed)
    by_split = {s: [i for i, a in enumerate(assigned) if a == s] for s in options.splits}
    by_split = {s: indices for s, indices in by_split.items() if indices}
    features = FORMATS[options.format].features(multimodal=multimodal, reasoning=options.reasoning)
    features.update({c: datasets.Value("string") for c in PROVENANCE if c not in features})
    with building(out) as tmp:
        (tmp / "data").mkdir()
        result = _build(tmp, run, kept, by_split, features, multimodal, options)
    return replace(result, out=out)


def _samples(kept: _Kept, indices: list[int]) -> dict[str, dict]:
    """The first record of each kind in a split, summarised: {kind: record}."""
    first: dict[str, int] = {}
    for i in indices:
        first.setdefault(kept.row_kinds[i], i)
    return {kind: summarise(kept.records[i]) for kind, i in first.items()}


def _write_splits(folder: Path, kept: _Kept, by_split: dict[str, list[int]], features: datasets.Features,
                  multimodal: bool, options: ExportOptions) -> dict[str, SplitData]:
    """Every split's shards under ``folder/data`` (and ``folder/arrow`` when asked); their sizes and samples."""
    splits, records = {}, {s: [kept.records[i] for i in indices] for s, indices in by_split.items()}
    for split, indices in by_split.items():
        table, written = _write_split(records[split], features, folder / "data", split,
                                      options.max_shard_mb * 2**20, multimodal)
        splits[split] = SplitData(len(indices), table.nbytes, written, _samples(kept, indices))
    if options.save_to_disk:
        datasets.DatasetDict({s: datasets.Dataset.from_list(records[s], features=features) for s in records}
                             ).save_to_disk(str(folder / "arrow"))
    return splits


def _build(folder: Path, run: RunInput, kept: _Kept, by_split: dict[str, list[int]], features: datasets.Features,
           multimodal: bool, options: ExportOptions) -> ExportResult:
    splits = _write_splits(folder, kept, by_split, features, multimodal, options)
    if run.pipeline is not None:
        (folder / "pipeline.yaml").write_text(portable_pipeline(run.pipeline), encoding="utf-8")
    groups = group_stats(kept.keys)
    warnings = [f"split '{s}' is empty: its share ({options.splits[s]:g}) is smaller than the groups that must "
                f"stay whole (the largest has {groups['largest_group']:,} rows)"
                for s in options.splits if s not in by_split]
    ctx = CardContext(
        name=options.name or run.name or run.rows_dir.name, format=options.format,
        reasoning=options.reasoning, context=options.context, features=features, splits=splits, kinds=dict(kept.kinds),
        sources=_source_rows(run, kept), license=licenses.decide(_license_inputs(kept)), stages=run.stages,
        skipped=dict(kept.skipped),
        generation={k: dict(v.most_common()) for k, v in kept.generation.items()}, groups=groups,
        fractions=options.splits, seed=options.seed, warnings=warnings, language=options.language,
        pipeline_file="pipeline.yaml" if run.pipeline is not None else None)
    (folder / "README.md").write_text(render_card(ctx), encoding="utf-8")
    write_json(folder / "report.json", _report(run, ctx))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return ExportResult(folder, {s: d.rows for s, d in splits.items()}, dict(kept.skipped), ctx.license.license,
                        ctx.license.warnings + warnings, files)


def _report(run: RunInput, ctx: CardContext) -> dict:
    """report.json of the artifact: the export's numbers and what each step before it did, without local paths."""
    steps = [{"step": s["dirname"], "stage": s.get("stage", "ingest"),
              **{k: s["stats"][k] for k in ("rows_in", "rows_out", "dropped")}} for s in run.stages]
    return {
        "curate_version": __version__, "input": run.rows_dir.name, "format": ctx.format, "reasoning": ctx.reasoning,
        "context": ctx.context,
        "fractions": ctx.fractions, "seed": ctx.seed, "splits": {s: d.rows for s, d in ctx.splits.items()},
        "rows": ctx.total, "kinds": ctx.kinds, "skipped": ctx.skipped, "groups": ctx.groups,
        "sources": [{"name": s.name, "kind": s.kind, "license": s.license, "rows": s.rows} for s in ctx.sources],
        "license": {"card": ctx.license.license, "name": ctx.license.license_name,
                    "per_source": ctx.license.per_source, "warnings": ctx.license.warnings},
        "warnings": ctx.warnings,
        "generation": ctx.generation,
        "run": {"pipeline": ctx.name, "final_dir": run.rows_dir.name, "rows_out": steps[-1]["rows_out"] if steps
                else None, "steps": steps},
    }
