"""The ``curate`` command line: parse arguments, call the library, print its report.

Exit codes (every command):
  0  success (some rows may have been rejected: see the report and rejects.jsonl)
  1  nothing usable came out (every item rejected, or no rows)
  2  invalid input: a bad pipeline/recipe/catalog file, an unknown source, a missing path or column
  3  a stage failed while running; completed work is kept and rerunning the same command resumes
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from curate import __version__

OK, NOTHING_USABLE, INVALID, FAILED = 0, 1, 2, 3
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def fail(label: str, exc: Exception, code: int) -> int:
    """Print ``label`` and the error (never its traceback) to stderr; return the exit code."""
    errors.print(f"[red]{label}[/red] {escape(str(exc))}", highlight=False)
    return code


def _pairs(values: list[str] | None, flag: str) -> dict[str, object]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects KEY=VALUE, got '{item}'")
        out[key] = yaml.safe_load(value)
    return out


def cmd_run(args) -> int:
    from curate.executors import ExecutorSpec
    from curate.orchestrate import run_plan
    from curate.pipeline import PipelineError, load_plan
    from curate.progress import Progress
    from curate.report import print_report
    from curate.steps import StepFailed

    try:
        plan = load_plan(args.pipeline, args.run_dir,
                         {k: str(v) for k, v in _pairs(args.source_path, "--source-path").items()},
                         _pairs(args.set, "--set"))
    except PipelineError as exc:
        return fail("invalid pipeline", exc, INVALID)
    for w in plan.warnings:
        errors.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    overrides = {k: v for k, v in (("kind", args.executor), ("workers", args.workers)) if v}
    executor = ExecutorSpec.model_validate({**plan.executor.model_dump(), **overrides})
    if args.dry_run:
        console.print(plan_table(plan, executor))
        return OK
    from curate.export.artifact import ExportError, NothingToExport
    from curate.export.hub import PushError, PushFailed
    from curate.train.run import FinetuneError, NothingToTrain

    try:
        with Progress(enabled=not args.no_progress, console=errors) as progress:
            report = run_plan(plan, force_step=args.force, progress=progress, push=not args.no_push,
                              executor=executor)
    except (NothingToExport, NothingToTrain) as exc:
        return fail("nothing usable:", exc, NOTHING_USABLE)
    except (StepFailed, PushFailed) as exc:
        errors.print(f"[red]failed:[/red] {escape(str(exc).rstrip('.'))}. Completed steps are kept; rerun to "
                     "resume.", highlight=False)
        return FAILED
    except (ExportError, PushError, FinetuneError, ValueError) as exc:  # the input, not the machine
        return fail("error:", exc, INVALID)
    print_report(report.to_json(), console)
    return OK if report.rows_out else NOTHING_USABLE


def plan_table(plan, executor) -> Table:
    width = f", {executor.workers} workers" if executor.kind != "serial" else ""
    table = Table(title=f"plan: {plan.name} -> {plan.run_dir} ({executor.kind} executor{width})",
                  title_justify="left")
    for col in ("step", "what", "where / config"):
        table.add_column(col)
    for spec in plan.sources:
        where = str(spec.path) if spec.path else spec.url or (
            f"hub {spec.hub.repo} config={spec.hub.config} split={spec.hub.split} revision={spec.hub.revision}")
        limit = f" (limit {spec.limit})" if spec.limit else ""
        table.add_row("01-ingest", f"{spec.name} [{spec.kind}, {spec.license}]{limit}", where)
    for p in plan.stages:  # the keys the pipeline sets; `curate run --help` and the stage docs list defaults
        cfg = json.dumps(p.stage.config.model_dump(mode="json", exclude_unset=True), ensure_ascii=False)
        table.add_row(p.dirname, p.stage.name + (f" x{p.workers}" if p.workers else ""), cfg)
    if plan.export:
        table.add_row("export", plan.export.format, json.dumps(plan.export.model_dump(mode="json", exclude_unset=True)))
    if plan.finetune:
        table.add_row("finetune", Path(plan.finetune.recipe).name,
                      json.dumps(plan.finetune.model_dump(mode="json", exclude_unset=True, exclude={"recipe"})))
    return table


def cmd_ingest(args) -> int:
    from curate.catalog import CatalogError, load_catalog
    from curate.ingest import ConnectorError
    from curate.orchestrate import RunReport
    from curate.pipeline import SourceRef, check_source, resolve_source
    from curate.progress import Progress
    from curate.report import print_report
    from curate.rowsteps import ingest

    try:
        catalog = load_catalog()
        ref = SourceRef(source=args.source, name=args.name, license=args.license, limit=args.limit,
                        options=_pairs(args.option, "--option"))
        spec = resolve_source(ref, Path.cwd(), catalog, Path(args.path).resolve() if args.path else None)
    except (CatalogError, ConnectorError, ValueError) as exc:
        return fail("error:", exc, INVALID)
    problems = check_source(spec)
    if problems:
        errors.print("[red]error:[/red] " + "\n".join(problems), highlight=False)
        return INVALID
    out = Path(args.output)
    with Progress(enabled=not args.no_progress, console=errors) as progress:
        stats, _ = ingest([spec], out, progress=progress)
    report = RunReport(f"ingest {spec.name}", str(out), __version__, stats.seconds, [stats], str(out),
                       stats.rows_out)
    print_report(report.to_json(), console)
    if stats.dropped:
        console.print(f"rejects: {out / 'rejects.jsonl'}")
    return OK if stats.rows_out else NOTHING_USABLE


def cmd_sources(args) -> int:
    from curate.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog()
    except CatalogError as exc:
        return fail("invalid catalog", exc, INVALID)
    if args.action == "list":
        table = Table(title="source catalog", title_justify="left")
        for col in ("name", "kind", "use", "licence", "location"):
            table.add_column(col, overflow="fold")
        for e in catalog.values():
            loc = e.location
            where = f"hub:{loc.hub}" + (f" [{loc.config}]" if loc.config else "") if loc.hub else (loc.url or loc.path)
            table.add_row(e.name, e.kind, e.use, e.license, where)
        console.print(table)
        return OK
    if args.name not in catalog:
        errors.print(f"[red]error:[/red] no source '{args.name}'; known: {', '.join(catalog)}", highlight=False)
        return INVALID
    console.print(yaml.safe_dump(catalog[args.name].model_dump(exclude_none=True), sort_keys=False,
                                 allow_unicode=True), highlight=False)
    return OK


def cmd_report(args) -> int:
    from curate.report import print_report

    path = Path(args.run_dir) / "report.json"
    if not path.exists():
        errors.print(f"[red]error:[/red] {path} not found: is {args.run_dir} a run folder?", highlight=False)
        return INVALID
    print_report(json.loads(path.read_text()), console)
    return OK


def cmd_export(args) -> int:
    from curate.export.artifact import ExportError, ExportOptions, NothingToExport, export
    from curate.export.splits import SplitError, parse_fractions

    try:
        options = ExportOptions(
            format=args.format, reasoning=args.reasoning, splits=parse_fractions(args.split), seed=args.seed,
            language=args.language or ["en"], name=args.name, pipeline=Path(args.pipeline) if args.pipeline else None,
            save_to_disk=args.save_to_disk, max_shard_mb=args.max_shard_mb, overwrite=args.overwrite,
            context=args.context)
        result = export(args.source, args.output, options)
    except NothingToExport as exc:
        return fail("nothing to export:", exc, NOTHING_USABLE)
    except (ExportError, SplitError) as exc:
        return fail("error:", exc, INVALID)
    table = Table(title=f"export -> {result.out}  (licence {result.license})", title_justify="left")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for split, n in result.splits.items():
        table.add_row(split, f"{n:,}")
    for reason, n in sorted(result.skipped.items()):
        table.add_row(f"skipped: {reason}", f"{n:,}")
    console.print(table)
    for w in result.warnings:
        errors.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    return OK


def cmd_push(args) -> int:
    from curate.export.hub import PushError, PushFailed, push

    try:
        result = push(args.folder, args.repo, private=not args.public, revision=args.revision,
                      message=args.message, dry_run=args.dry_run, allow_licenses=args.allow_license)
    except PushFailed as exc:
        return fail("failed:", exc, FAILED)
    except PushError as exc:
        return fail("error:", exc, INVALID)
    if args.dry_run:
        table = Table(title=f"dry run: would upload to dataset {result.repo_id}", title_justify="left")
        table.add_column("path")
        table.add_column("bytes", justify="right")
        for f in result.files:
            table.add_row(f.path, f"{f.size:,}")
        table.caption = f"{len(result.files)} files, {result.total_bytes:,} bytes"
        console.print(table)
        return OK
    console.print(f"pushed {len(result.files)} files ({result.total_bytes:,} bytes) to {result.repo_id}"
                  + (f", deleted stale {', '.join(result.deleted)}" if result.deleted else "")
                  + (f": {result.commit_url}" if result.commit_url else ""), highlight=False)
    return OK


def cmd_review(args) -> int:
    import pyarrow.parquet as pq

    from curate.io import parquet_files
    from curate.paths import shown
    from curate.quality.review import LabelsError, read_rows, summary

    folder, labels = Path(args.folder), Path(args.labels)
    if args.sample < 1:
        return fail("error:", ValueError("--sample must be at least 1"), INVALID)
    files = parquet_files(folder)
    if not files:
        return fail("error:", FileNotFoundError(f"{shown(folder)} holds no rows (part-*.parquet)"), INVALID)
    present = set(pq.read_schema(files[0]).names)
    wanted = [c for c in ("id", "messages", "source", "context", "citations", "caption") if c in present]
    rows = [r for f in files for r in pq.read_table(f, columns=wanted).to_pylist() if r.get("messages")]
    if not rows:
        return fail("error:", ValueError(f"{shown(folder)} holds no question-answer rows to review"), INVALID)
    try:
        verdicts = read_rows(rows, labels, sample=args.sample, seed=args.seed, ask=input,
                             show=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True))
    except (LabelsError, OSError) as exc:
        return fail("error:", exc, INVALID)
    console.print(f"\n{summary(verdicts)} (labels: {shown(labels)}). A pipeline applies them with "
                  f"`- stage: review` and `labels: {labels.name}`.", markup=False, highlight=False, soft_wrap=True)
    return OK


def cmd_inspect(args) -> int:
    from curate.export.summary import inspect_folder

    try:
        summary = inspect_folder(args.folder, args.rows)
    except FileNotFoundError as exc:
        return fail("error:", exc, INVALID)
    table = Table(title=summary.folder, title_justify="left")
    for col, justify in (("split", "left"), ("source", "left"), ("rows", "right")):
        table.add_column(col, justify=justify)
    for split, n in summary.rows.items():
        table.add_row(split, "(all)", f"{n:,}")
        for source, m in sorted(summary.sources[split].items(), key=lambda kv: -kv[1]):
            table.add_row("", source, f"{m:,}")
    console.print(table)
    for split, rows in summary.samples.items():
        for row in rows:
            console.print(f"[bold]{split}[/bold]")
            console.print(json.dumps(row, ensure_ascii=False, indent=1), markup=False, highlight=False)
    return OK


def cmd_filter(args) -> int:
    from curate.orchestrate import FilterError, load_filters, run_filters
    from curate.progress import Progress
    from curate.report import print_report
    from curate.steps import StepFailed

    try:
        plan = load_filters(args.config)
        with Progress(enabled=not args.no_progress, console=errors) as progress:
            report = run_filters(Path(args.input), Path(args.output), plan, progress=progress)
    except FilterError as exc:
        return fail("invalid filter", exc, INVALID)
    except StepFailed as exc:
        return fail("failed:", exc, FAILED)
    print_report(report.to_json(), console)
    return OK if report.rows_out else NOTHING_USABLE


def cmd_ablate(args) -> int:
    from rich.markup import escape

    from curate.deliver.ablate import AblationError, load_ablation, run_ablation, set_table, variants_table
    from curate.evaluate import EvalError
    from curate.export.artifact import NothingToExport
    from curate.progress import Progress
    from curate.steps import StepFailed
    from curate.train.run import FinetuneError

    try:
        ablation = load_ablation(args.ablation, args.run_dir, args.output)
    except AblationError as exc:  # pydantic's messages hold [brackets] that are not markup
        errors.print(f"[red]invalid ablation[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    for w in ablation.warnings:
        errors.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    if args.dry_run:
        console.print(f"ablation {ablation.name} -> {ablation.out}: variants "
                      + ", ".join(f"{n} ({v.rows})" for n, v in ablation.variants.items())
                      + f"; reference {ablation.reference}; seeds {', '.join(map(str, ablation.seeds))}; held-out "
                      + ", ".join(ablation.held_out), markup=False)
        return OK
    try:
        with Progress(enabled=not args.no_progress, console=errors) as progress:
            result = run_ablation(ablation, progress)
    except AblationError as exc:
        errors.print(f"[red]refused:[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    except NothingToExport as exc:
        return fail("nothing to export:", exc, NOTHING_USABLE)
    except EvalError as exc:
        errors.print(f"[red]refused:[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    except (StepFailed, FinetuneError) as exc:
        return fail("failed:", exc, FAILED)
    console.print(variants_table(result))
    for name in result["sets"]:
        console.print(set_table(result, name))
    console.print(f"{ablation.out / 'ablation.json'}  ·  {result['seconds']:.1f} s", markup=False)
    return OK


def _single_stage_report(name: str, out: Path, stats) -> dict:
    from curate.orchestrate import RunReport

    return RunReport(name, str(out), __version__, stats.seconds, [stats], str(out), stats.rows_out).to_json()


def cmd_index(args) -> int:
    from curate.orchestrate import index_folder
    from curate.progress import Progress
    from curate.report import print_report

    source = Path(args.input)
    if not any(source.glob("part-*.parquet")):
        errors.print(f"[red]error:[/red] {source} holds no part-*.parquet rows (an ingest or stage folder)")
        return INVALID
    out = Path(args.output)
    with Progress(enabled=not args.no_progress, console=errors) as progress:
        stats, total = index_folder(source, out, {"size": args.size, "overlap": args.overlap},
                                    embedding_model=args.embedding_model, progress=progress)
    print_report(_single_stage_report(f"index {source}", out / "chunks", stats), console)
    console.print(f"{total:,} chunks in {out / 'chroma'}")
    return OK if total else NOTHING_USABLE


def cmd_synth(args) -> int:
    from pydantic import ValidationError

    from curate.orchestrate import synth_folder
    from curate.progress import Progress
    from curate.report import print_report
    from curate.steps import StepFailed

    index = Path(args.index)
    if not (index / "chunks").is_dir() or not (index / "chroma").is_dir():
        errors.print(f"[red]error:[/red] {index} is not an index folder (chunks/ and chroma/): run `curate index`")
        return INVALID
    config = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    config.update({k: v for k, v in (("questions_per_chunk", args.questions), ("top_k", args.top_k)) if v})
    try:
        with Progress(enabled=not args.no_progress, console=errors) as progress:
            stats = synth_folder(index, Path(args.output), config, args.batch_size, progress)
    except ValidationError as exc:
        return fail("invalid synth config", exc, INVALID)
    except StepFailed as exc:
        return fail("failed:", exc, FAILED)
    print_report(_single_stage_report(f"synth {index}", Path(args.output), stats), console)
    return OK if stats.rows_out else NOTHING_USABLE


def cmd_writer(args) -> int:
    from curate.llm.writer import QuestionWriter, WriterError
    from curate.train.recipe import RecipeError

    if args.writer_command == "ask":
        try:
            writer = QuestionWriter(args.adapter)
        except WriterError as exc:
            return fail("invalid adapter:", exc, INVALID)
        for answer in args.answer:
            for written in writer.write([answer], args.n, [args.seed])[0]:
                console.print(escape(written.text), highlight=False)
        writer.close()
        return OK
    from pydantic import ValidationError

    from curate.train.writer import load_writer_recipe, train_writer

    try:
        recipe = load_writer_recipe(args.recipe)
        if args.max_steps:
            from curate.train.recipe import TrainSpec

            train = TrainSpec.model_validate({**recipe.train.model_dump(), "max_steps": args.max_steps,
                                              "epochs": None})
            recipe = recipe.model_copy(update={"train": train})
        train_writer(recipe, args.out, log=lambda m: console.print(escape(m), highlight=False))
    except (RecipeError, ValidationError) as exc:
        return fail("invalid writer recipe", exc, INVALID)
    except Exception as exc:  # training broke: say what, keep the traceback for -v
        logging.getLogger("curate").debug("writer training failed", exc_info=True)
        errors.print(f"[red]failed:[/red] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        return FAILED
    return OK


def cmd_finetune(args) -> int:
    from rich.markup import escape

    from curate.export.hub import PushError, PushRefused
    from curate.train import FinetuneError, NothingToTrain, finetune, plan_finetune

    try:
        if args.dry_run:
            plan = plan_finetune(args.recipe, args.data, args.output, args.overwrite)
            console.print(finetune_table(plan))
            for w in plan.warnings:
                errors.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
            return OK
        result = finetune(args.recipe, args.data, args.output, overwrite=args.overwrite, push=args.push,
                          private=not args.public, allow_licenses=args.allow_license)
    except NothingToTrain as exc:
        errors.print(f"[red]nothing to train:[/red] {escape(str(exc))}", highlight=False)
        return NOTHING_USABLE
    except (FinetuneError, PushRefused) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    except PushError as exc:
        errors.print(f"[red]failed:[/red] {escape(str(exc))}", highlight=False)
        return FAILED
    except Exception as exc:  # training itself broke: say what, keep the traceback for -v
        logging.getLogger("curate").debug("fine-tuning failed", exc_info=True)
        errors.print(f"[red]failed:[/red] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        return FAILED
    losses, evals = [e["loss"] for e in result.history["train"]], result.history["eval"]
    console.print(f"trained with {result.backend}: "
                  + (f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} logged steps" if losses else
                     "no training loss logged")
                  + (f", eval loss {evals[-1]['loss']:.4f}" if evals else "")
                  + f"\nadapter: {result.output}" + (f"\npushed: {result.pushed}" if result.pushed else ""),
                  highlight=False)
    return OK


def finetune_table(plan) -> Table:
    r, d = plan.recipe, plan.data
    table = Table(title=f"dry run: {r.name} -> {plan.output}", title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("model", f"{r.model} ({r.modality}, {'4-bit, ' if r.load_in_4bit else ''}{r.train.precision})")
    table.add_row("backend", f"{plan.backend} (recipe: {r.backend})")
    table.add_row("lora", json.dumps(r.lora.model_dump(mode="json")))
    table.add_row("train", json.dumps(r.train.model_dump(mode="json", exclude_none=True)))
    table.add_row("data", f"{d.folder} [{d.format}]: {len(d.train):,} train rows, "
                          f"{len(d.eval) if d.eval else 0:,} eval rows, sha256 {d.digest['sha256'][:16]}")
    return table


def cmd_chat(args) -> int:
    from rich.markup import escape

    from curate.train.chat import ChatError, chat

    try:
        answer = chat(args.model, args.question, args.adapter, system=args.system, max_tokens=args.max_tokens,
                      device=args.device)
    except (ChatError, OSError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    console.print(answer, markup=False, highlight=False)
    return OK if answer else NOTHING_USABLE


def cmd_eval(args) -> int:
    from pydantic import ValidationError
    from rich.markup import escape

    from curate.evaluate import EvalError, compare_runs, evaluate, load_eval_set
    from curate.evaluate.models import judge_config, model_config
    from curate.evaluate.report import comparison_table, summary_table
    from curate.progress import Progress

    try:
        if args.compare:
            console.print(comparison_table(compare_runs(*args.compare, force=args.force, out=args.output)))
            return OK
        if not (args.model and args.set and args.output):
            raise EvalError("give MODEL, --set NAME_OR_PATH and -o OUT, or --compare RUN_A RUN_B")
        eval_set = load_eval_set(args.set, path=args.path, split=args.split, layout=args.layout, limit=args.limit,
                                 seed=args.seed)
        settings = {k: v for k, v in (("prompt", args.prompt), ("style", args.style), ("shots", args.shots),
                                      ("scoring", args.scoring), ("choices", args.choices),
                                      ("max_tokens_open", args.max_tokens)) if v is not None}
        judge = judge_config(args.judge, _pairs(args.judge_option, "--judge-option")) if args.judge else None
        with Progress(enabled=not args.no_progress, console=errors) as progress:
            summary = evaluate(model_config(args.backend, args.model, _pairs(args.option, "--option")), eval_set,
                               args.output, adapter=args.adapter, judge=judge, settings=settings,
                               overwrite=args.overwrite, progress=progress)
    except (EvalError, ValidationError, ValueError, OSError, ImportError) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return INVALID
    except Exception as exc:  # the model or judge broke mid-run: the records written so far stay in OUT
        logging.getLogger("curate").debug("evaluation failed", exc_info=True)
        errors.print(f"[red]failed:[/red] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        return FAILED
    console.print(summary_table(summary))
    for w in summary["warnings"]:
        errors.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    return NOTHING_USABLE if summary["counts"]["errors"] == summary["counts"]["items"] else OK


def cmd_view(args) -> int:
    from curate.view import NotARun, RunFolder

    try:
        run = RunFolder(args.run_dir)
    except NotARun as exc:
        return fail("error:", exc, INVALID)
    if args.static:
        from curate.view.static import write_static

        console.print(f"wrote {write_static(run, args.static)}", highlight=False)
        return OK
    from curate.view.server import make_server

    try:
        server = make_server(run, args.host, args.port)
    except OSError as exc:
        return fail("error:", f"cannot listen on {args.host}:{args.port}: {exc}", INVALID)
    host, port = server.server_address[:2]
    console.print(f"viewing {run.path} at http://{host}:{port}/  (Ctrl-C stops)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (never secrets)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a pipeline YAML (resumes completed stages)")
    p.add_argument("pipeline")
    p.add_argument("--run-dir", help="where stage outputs go (default: the pipeline's run_dir or runs/NAME)")
    p.add_argument("--dry-run", action="store_true", help="validate sources, options and stages; print the plan")
    p.add_argument("--force", metavar="STEP", help="redo this step (a stage's name or folder, ingest, export, push, "
                                                  "finetune, compare, evaluate) and every step after it")
    p.add_argument("--executor", choices=["serial", "processes", "ray"],
                   help="where row stages run (default: the pipeline's executor:, else serial)")
    p.add_argument("--workers", type=int, help="processes or Ray workers per stage (default 2)")
    p.add_argument("--source-path", action="append", metavar="NAME=PATH",
                   help="read source NAME from a local copy in the same format (repeatable)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a pipeline value: STAGE.key=v, sources.NAME.key=v, export.key=v, finetune.key=v "
                        "(VALUE is YAML; repeatable)")
    p.add_argument("--no-push", action="store_true", help="skip the export's upload to the Hub")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ingest", help="ingest one source (catalog name or bare kind) into a folder of parquet")
    p.add_argument("source", help="catalog name, or a kind: pdf, hf_qa, medquad, rocov2, dicom, vqa")
    p.add_argument("--path", help="local file or folder in the source's format")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--name", help="source name written on rows (bare kinds)")
    p.add_argument("--license", help="licence written on rows (bare kinds)")
    p.add_argument("--limit", type=int, help="stop after this many good rows")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="connector option (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("sources", help="the source catalog")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("report", help="print a run's report again")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("index", help="chunk page rows and index them in chromadb (idempotent)")
    p.add_argument("input", help="a folder of rows (part-*.parquet), e.g. from `curate ingest`")
    p.add_argument("-o", "--output", required=True, help="index folder (chunks/ and chroma/)")
    p.add_argument("--size", type=int, default=200, help="chunk size in embedding-model tokens")
    p.add_argument("--overlap", type=int, default=40)
    p.add_argument("--embedding-model", help="sentence-transformers model path (default: embedded MiniLM)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("synth", help="grounded QA pairs from an index (resumable)")
    p.add_argument("index", help="index folder made by `curate index`")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--config", help="YAML of synth_qa options (llm, prompt, sampling, ...)")
    p.add_argument("--questions", type=int, help="questions per chunk")
    p.add_argument("--top-k", type=int, help="passages retrieved per question")
    p.add_argument("--batch-size", type=int, default=8, help="chunks per checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("export", help="export a run or stage folder as an SFT dataset folder (load_dataset, Hub)")
    p.add_argument("source", metavar="RUN_OR_DIR", help="a run folder (its last stage is used) or a stage folder")
    p.add_argument("-o", "--output", required=True, help="the artifact folder to write")
    p.add_argument("--format", default="messages", help="messages (default), medrescue, alpaca or sharegpt")
    p.add_argument("--reasoning", default="drop", help="chain of thought: drop (default), think_tags or field")
    p.add_argument("--context", default="omit", help="retrieved passages: omit (default: closed-book SFT) or include "
                                                      "(RAG-style SFT, the passages in the prompt)")
    p.add_argument("--split", default="train=0.9,validation=0.05,test=0.05", metavar="NAME=FRACTION,...",
                   help="split fractions, summing to 1 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    p.add_argument("--pipeline", help="pipeline YAML to include (default: RUN_DIR/pipeline.yaml when present)")
    p.add_argument("--name", help="dataset name on the card (default: the pipeline's name)")
    p.add_argument("--language", action="append", help="language code for the card (repeatable; default: en)")
    p.add_argument("--save-to-disk", action="store_true", help="also write the save_to_disk form under arrow/")
    p.add_argument("--max-shard-mb", type=float, default=500, help="largest parquet shard (default: 500)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("push", help="upload an export folder to a Hugging Face Hub dataset repo")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, metavar="ORG/NAME")
    visibility = p.add_mutually_exclusive_group()
    visibility.add_argument("--private", action="store_true", help="a private repo (the default)")
    visibility.add_argument("--public", action="store_true", help="a public repo; an existing repo of the other "
                            "visibility is refused either way")
    p.add_argument("--allow-license", action="append", default=[], metavar="NAME",
                   help="push rows under this licence although it does not allow publishing (all-rights-reserved, "
                        "unknown, ...): only if you hold the rights; repeatable")
    p.add_argument("--revision", metavar="BRANCH", help="push to this branch (created from main if missing)")
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded, with sizes, "
                   "after the same licence check")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("inspect", help="counts per split and source, and a few rows, of an export or stage folder")
    p.add_argument("folder")
    p.add_argument("-n", "--rows", type=int, default=3, help="rows shown per split (default: 3)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("review", help="read a random sample of a step's question-answer rows and record a verdict "
                                      "on each (resumable); the `review` stage drops the rows read as wrong")
    p.add_argument("folder", help="a step folder of a run (part-*.parquet), e.g. runs/demo/09-dedup")
    p.add_argument("--labels", required=True, help="JSON-lines file the verdicts are appended to")
    p.add_argument("--sample", type=int, default=40, help="rows to read in all, earlier sessions' included "
                   "(default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random reading order (default: 0)")
    p.set_defaults(func=cmd_review)
    p = sub.add_parser("filter", help="run quality stages (heuristics, pii, grounding, decontaminate, dedup) "
                                      "over a stage folder; rejects and drops per reason like `run`")
    p.add_argument("input", help="a stage or ingest folder of a run (part-*.parquet)")
    p.add_argument("-o", "--output", required=True, help="folder for one sub-folder per stage and report.json")
    p.add_argument("--config", required=True, help="YAML: batch_size and a `stages:` list as in a pipeline")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("ablate", help="train one recipe on several row sets of a run (raw vs curated, ...) and "
                                      "compare the models on held-out sets with paired intervals")
    p.add_argument("ablation", help="ablation YAML: pipeline, variants, and optionally export, finetune, evaluate")
    p.add_argument("--run-dir", help="the pipeline's run folder (default: the ablation's run_dir or the pipeline's)")
    p.add_argument("-o", "--output", help="ablation folder (default: RUN_DIR/ablate/NAME)")
    p.add_argument("--dry-run", action="store_true", help="validate the file, its pipeline, recipe and sets")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("writer", help="the question writer (a LoRA on the embedded Gemma 3 270M): train it, or ask "
                                      "it what an answer span answers")
    wsub = p.add_subparsers(dest="writer_command", required=True)
    w = wsub.add_parser("train", help="train the writer from a recipe (finetune/question-writer.yaml)")
    w.add_argument("recipe", nargs="?", default="finetune/question-writer.yaml")
    w.add_argument("--out", default="runs/question-writer", help="output folder (the shipped adapter lives in "
                                                                 "curate/llm/question_writer)")
    w.add_argument("--max-steps", type=int, help="override train.max_steps (a quick try)")
    w.set_defaults(func=cmd_writer)
    w = wsub.add_parser("ask", help="candidate questions for answer spans (the greedy one first)")
    w.add_argument("answer", nargs="+")
    w.add_argument("--adapter", help="an adapter.gguf or its folder (default: the shipped one)")
    w.add_argument("-n", type=int, default=3, help="candidates per span (default: 3)")
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=cmd_writer)

    from curate.train.recipe import recipe_keys

    p = sub.add_parser("finetune", help="LoRA-train a Gemma recipe (finetune/*.yaml) on an export folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="recipe keys (default):\n" + "\n".join(f"  {k}" for k in recipe_keys()))
    p.add_argument("recipe", help="recipe YAML, e.g. finetune/gemma3-270m-cpu-lora.yaml")
    p.add_argument("--data", required=True, help="an export folder (curate export -o DIR)")
    p.add_argument("-o", "--output", help="output folder (default: runs/finetune/<recipe name>)")
    p.add_argument("--dry-run", action="store_true", help="validate the recipe, data and backend; load no model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--push", metavar="ORG/NAME", help="upload the output folder to this Hub model repo")
    visibility = p.add_mutually_exclusive_group()
    visibility.add_argument("--private", action="store_true", help="a private model repo (the default)")
    visibility.add_argument("--public", action="store_true", help="a public model repo; an existing repo of the "
                                                                  "other visibility is refused")
    p.add_argument("--allow-license", action="append", default=[], metavar="NAME",
                   help="push a model trained on rows under this licence although it does not allow publishing: "
                        "only if you hold the rights; repeatable")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("chat", help="answer a question with a base model, or with a fine-tuned adapter")
    p.add_argument("model", help="embedded (the Gemma 3 270M), a .gguf path, a model folder or a Hub id")
    p.add_argument("question")
    p.add_argument("--adapter", help="an output folder of curate finetune")
    p.add_argument("--system", help="system text (folded into the user turn)")
    p.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens (default: 256)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="evaluate a model (optionally with an adapter) on a held-out set, or compare two "
                                    "evaluations with confidence intervals and paired tests")
    p.add_argument("model", nargs="?", help="embedded, a .gguf path, a model folder, a Hub id, or a served name")
    p.add_argument("--backend", default="llamacpp", help="llamacpp (default), transformers or openai")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="model backend option, e.g. dtype=float32, n_threads=1, base_url=... (repeatable)")
    p.add_argument("--adapter", help="LoRA adapter folder from curate finetune (transformers backend)")
    p.add_argument("--set", help="catalog name (curate sources list) or a path: QA file, export folder, rows folder")
    p.add_argument("--path", help="local copy of a catalog set that lives at a URL or on the Hub")
    p.add_argument("--split", default="test", help="split of an export folder (default: test)")
    p.add_argument("--layout", help="column layout of a QA file: a catalog name or medmcqa (default: detected)")
    p.add_argument("--limit", type=int, help="evaluate a seeded random sample of this many items")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default: 0)")
    p.add_argument("--scoring", choices=["generate", "loglik"], help="choice items: parse the generated answer "
                   "(default for instruction-tuned models) or pick the most probable option (default for base ones)")
    p.add_argument("--choices", choices=["text", "letters"], help="loglik scoring: each option's text after the "
                   "bare question, as lm-evaluation-harness (default for base models), or the letters of listed "
                   "options (default for instruction-tuned ones)")
    p.add_argument("--style", choices=["chat", "completion"], help="prompt style (default: completion for a base "
                                                                   "model, chat for an instruction-tuned one)")
    p.add_argument("--shots", type=int, help="few-shot examples per prompt (default: 0 for a base model, 3 for an "
                                             "instruction-tuned one)")
    p.add_argument("--prompt", help="prompt file (default: eval.v1)")
    p.add_argument("--max-tokens", type=int, help="longest open answer in tokens (default: 256)")
    p.add_argument("--judge", metavar="BACKEND[:MODEL]", help="grade open answers with this model, e.g. llamacpp "
                                                              "or openai:google/medgemma-4b-it")
    p.add_argument("--judge-option", action="append", metavar="KEY=VALUE", help="judge backend option (repeatable)")
    p.add_argument("-o", "--output", help="evaluation folder (summary.json, predictions.jsonl); with --compare, "
                                          "where comparison.json goes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing evaluation in OUT")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two evaluation folders")
    p.add_argument("--force", action="store_true", help="compare runs whose prompts, decoding or precision differ")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("view", help="browse a run folder in a local web page (funnel, rows and rejects, pairs and "
                                    "citations, images, delivery), or write it as one self-contained HTML file")
    p.add_argument("run_dir")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--static", metavar="FILE.html", help="write a self-contained summary to this file and exit")
    p.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "sources" and args.action == "show" and not args.name:
        errors.print("[red]error:[/red] curate sources show NAME")
        return INVALID
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
