"""Delivery steps: export, push, finetune, compare and evaluate, each a ``curate.steps.Step`` consuming the
fingerprint of the step before it.

Markers and outputs (inside the run folder)::

    export.json + export/        the exported DatasetDict and card (the rows of the last row step)
    push.json                    the upload of export/ (its fingerprint: export's, the repo and visibility)
    finetune.json + finetune/    the LoRA adapter and loss history, trained on export/
    compare.json                 base vs tuned answers to fixed questions
    evaluate.json + evaluate/    base and tuned scored on a held-out set, compared

Each step's output folder is written under a temporary name and renamed (``curate.io.building`` inside the
libraries), and its marker only then, so a killed run never leaves a partial step that looks done.
"""

from __future__ import annotations

import time
from pathlib import Path

from curate import __version__
from curate.deliver.specs import CompareSpec, EvaluateSpec, ExportSpec, PushSpec
from curate.io import file_sha256, read_json
from curate.paths import path_or_name
from curate.steps import Context, Step, StepStats, fingerprint, inside


class DeliveryStep(Step):
    """A step with a marker ``RUN_DIR/<name>.json`` and, when it has one, an output folder ``RUN_DIR/<folder>``."""

    folder: str | None = None

    def marker(self, run_dir: Path) -> Path:
        return inside(run_dir, f"{self.name}.json")

    def outputs(self, run_dir: Path) -> list[Path]:
        return [inside(run_dir, self.folder)] if self.folder else []


class ExportStep(DeliveryStep):
    """Export the context's rows to RUN_DIR/export, with the pipeline file (``pipeline``, else RUN_DIR/pipeline.yaml)
    beside them when it exists; stats: rows in/out, skipped by reason, rows per split."""

    name = folder = "export"

    def __init__(self, spec: ExportSpec, pipeline: Path | None = None):
        self.spec, self.pipeline = spec, pipeline

    def fingerprint(self, ctx: Context) -> str:
        return fingerprint("export", self.spec.model_dump(mode="json", exclude={"push"}), ctx.fp, __version__)

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.export.artifact import ExportOptions, export

        started = time.perf_counter()
        pipeline = self.pipeline or ctx.run_dir / "pipeline.yaml"
        s = self.spec
        result = export(ctx.rows, inside(ctx.run_dir, "export"), ExportOptions(
            format=s.format, reasoning=s.reasoning, context=s.context, splits=dict(s.splits), seed=s.seed,
            pipeline=pipeline if pipeline.is_file() else None, overwrite=True))
        kept = sum(result.splits.values())
        stats = StepStats("export", kept + sum(result.skipped.values()), kept, dict(result.skipped),
                          time.perf_counter() - started, {f"split_{k}": v for k, v in result.splits.items()})
        return {"stats": stats.plain(), "license": result.license, "warnings": result.warnings}


class PushStep(DeliveryStep):
    """Upload RUN_DIR/export to the Hub (token from HF_TOKEN or the saved login; never printed), once per export."""

    name = "push"
    advances = False

    def __init__(self, spec: PushSpec):
        self.spec = spec

    def fingerprint(self, ctx: Context) -> str:
        return fingerprint("push", self.spec.model_dump(mode="json"), ctx.fp)

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.export.hub import push

        started = time.perf_counter()
        result = push(inside(ctx.run_dir, "export"), self.spec.repo, private=self.spec.private,
                      allow_licenses=self.spec.allow_license)
        stats = StepStats("push", len(result.files), len(result.files), {}, time.perf_counter() - started)
        return {"stats": stats.plain(), "repo": self.spec.repo, "private": self.spec.private}


class FinetuneStep(DeliveryStep):
    """LoRA-train ``recipe`` (a loaded ``curate.train.recipe.Recipe``) on RUN_DIR/export (or on ``export``, an
    export folder elsewhere) into RUN_DIR/finetune."""

    name = folder = "finetune"

    def __init__(self, recipe, export: Path | None = None):
        self.recipe, self.export = recipe, export

    def fingerprint(self, ctx: Context) -> str:
        return fingerprint("finetune", self.recipe.model_dump(mode="json"), ctx.fp, __version__)

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.train.run import finetune

        started = time.perf_counter()
        result = finetune(self.recipe, self.export or inside(ctx.run_dir, "export"), inside(ctx.run_dir, "finetune"),
                          overwrite=True)
        losses = [h["loss"] for h in result.history.get("train", []) if "loss" in h]
        train_rows = read_json(result.output / "data.json")["rows"]["train"]
        counters = {"tokens_trained": int(result.metrics.get("num_tokens", 0) or 0),
                    "steps": self.recipe.train.max_steps}
        stats = StepStats("finetune", train_rows, train_rows, {}, time.perf_counter() - started, counters)
        return {"stats": stats.plain(), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None}


class CompareStep(DeliveryStep):
    """The base model's and the tuned adapter's greedy answers to the same questions; for pairs of an export split
    (``from_split``), also the reference answer, where it comes from and its NLL under each model."""

    name = "compare"
    advances = False

    def __init__(self, spec: CompareSpec, model: str):
        self.spec, self.model = spec, model

    def fingerprint(self, ctx: Context) -> str:
        return fingerprint("compare", self.spec.model_dump(mode="json"), ctx.fp)

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.train.chat import apply_adapter, ask, load_chat_model, reference_nll_of

        started = time.perf_counter()
        items = [{"question": q} for q in self.spec.questions]
        if self.spec.from_split:
            items += split_pairs(inside(ctx.run_dir, "export"), ctx.rows, self.spec.from_split, self.spec.n)
        llm = load_chat_model(self.model)
        try:
            for label in ("base", "tuned"):
                if label == "tuned":
                    apply_adapter(llm, inside(ctx.run_dir, "finetune"))
                for item in items:
                    item[label] = ask(llm, item["question"], max_tokens=self.spec.max_tokens)
                    if "reference" in item:
                        item[f"{label}_reference_nll"] = reference_nll_of(llm, item["question"], item["reference"])
        finally:
            llm.close()
        stats = StepStats("compare", len(items), len(items), {}, time.perf_counter() - started)
        return {"stats": stats.plain(), "answers": items}

    def after(self, ctx: Context, record: dict) -> None:
        ctx.results["answers"] = record["answers"]


def split_pairs(export: Path, rows: Path | None, split: str, n: int) -> list[dict]:
    """Up to ``n`` pairs of an export split, in its order, those citing a source passage first: question, reference
    answer and source (the row's source name, with the cited pages when it has citations, read from ``rows``, the
    rows that were exported)."""
    import pyarrow.parquet as pq

    from curate.io import iter_batches
    from curate.quality.text import first_question_last_answer
    from curate.stage import rows as as_rows

    files = sorted((export / "data").glob(f"{split}-*.parquet"))
    ids = [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    found = {r["id"]: r for b in (iter_batches(rows, 256) if rows else []) for r in as_rows(b) if r["id"] in ids}
    pairs = []
    for i in sorted(ids, key=lambda i: not (found.get(i) or {}).get("citations")):
        row = found.get(i)
        pair = first_question_last_answer(row) if row else None
        if pair is None:
            continue
        question, answer = pair
        pages = sorted({c["page"] for c in row.get("citations") or [] if c.get("page")})
        source = row["source"] + (f", p. {', '.join(map(str, pages))}" if pages else "")
        pairs.append({"question": question, "reference": answer, "source": source})
        if len(pairs) == n:
            break
    return pairs


def held_out_set(spec: EvaluateSpec, base: Path):
    """The spec's evaluation set (paths read from ``base``) and what fingerprints it: the kept items and the sha256
    of the local files it was read from."""
    from curate.evaluate import load_eval_set

    eval_set = load_eval_set(path_or_name(spec.set, base), path=path_or_name(spec.path, base), split=spec.split,
                             layout=spec.layout, limit=spec.limit, seed=spec.seed)
    files = [Path(p) for p in (path_or_name(spec.set, base), path_or_name(spec.path, base)) if p and Path(p).is_file()]
    return eval_set, [eval_set.fingerprint, [file_sha256(p) for p in files]]


def eval_model_config(spec: EvaluateSpec, recipe_model: str) -> dict:
    """The LLMConfig (as a dict) both models of an evaluation load: the recipe's model on transformers, base or
    instruction-tuned as its name says unless ``spec.model`` sets ``instruction_tuned``."""
    return {"backend": "transformers", **spec.model, "model": recipe_model}


def evaluation_fingerprint(spec: EvaluateSpec, set_fp: list, model_config: dict, adapter_fp: str | None) -> str:
    """What decides an evaluation's scores, one rule for a pipeline's evaluate step and an ablation's scoring: the
    spec (its ``name`` aside), the set's fingerprint (``held_out_set``), the prompt file's sha256, the model
    configuration (``eval_model_config``), the adapter's fingerprint and the curate version."""
    from curate.evaluate.prompts import load_eval_prompts

    prompts = load_eval_prompts(spec.settings.prompt).sha256
    return fingerprint("evaluate", spec.model_dump(mode="json", exclude={"name"}), *set_fp, prompts, model_config,
                       adapter_fp, __version__)


class EvaluateStep(DeliveryStep):
    """The base model and the tuned adapter scored on the same held-out set with the same prompts, decoding and
    precision (RUN_DIR/evaluate: base/, tuned/, comparison.json)."""

    name = folder = "evaluate"
    advances = False

    def __init__(self, spec: EvaluateSpec, model: str, base: Path):
        self.spec, self.model, self.base = spec, model, base
        self._set = None

    def fingerprint(self, ctx: Context) -> str:
        self._set, set_fp = held_out_set(self.spec, self.base)
        return evaluation_fingerprint(self.spec, set_fp, eval_model_config(self.spec, self.model), ctx.fp)

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.evaluate import compare_models

        started = time.perf_counter()
        config = eval_model_config(self.spec, self.model)
        comparison = compare_models(config, config, self._set, inside(ctx.run_dir, "evaluate"),
                                    tuned_adapter=inside(ctx.run_dir, "finetune"), settings=self.spec.settings)
        counters = {f"{side}_{name}": round(m[side]["value"], 4) for name, m in comparison["metrics"].items()
                    for side in ("a", "b") if m[side].get("value") is not None}
        stats = StepStats("evaluate", len(self._set.items), comparison["n_paired"], dict(self._set.rejected),
                          time.perf_counter() - started, counters)
        return {"stats": stats.plain(), "comparison": comparison}

    def after(self, ctx: Context, record: dict) -> None:
        ctx.results["evaluation"] = record["comparison"]
        card_with_evaluation(inside(ctx.run_dir, "finetune"), record["comparison"])


def card_with_evaluation(adapter: Path, comparison: dict) -> None:
    """Rewrite an adapter folder's model card (README.md) with its evaluation table: base vs tuned on the held-out
    set, as ``curate.train.card`` renders it; the card pushed with the adapter then says how it scored."""
    from curate.train.card import render_model_card
    from curate.train.recipe import load_recipe

    if not (adapter / "data.json").is_file() or not (adapter / "recipe.yaml").is_file():
        return
    card = render_model_card(load_recipe(adapter / "recipe.yaml"), read_json(adapter / "data.json"),
                             evaluation=comparison)
    (adapter / "README.md").write_text(card, encoding="utf-8")
