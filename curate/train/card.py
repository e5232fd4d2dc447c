"""The model card (``README.md``) of a fine-tuning output: Hub metadata, then what was trained on what.

Consumes the recipe, the training data's record (``data.json``: rows, and per source the licences its rows carry)
and, when there is one, an evaluation (``curate.evaluate.compare_models``' comparison); produces the card's text. The
YAML header carries ``base_model``, ``library_name: peft``, the licence (the most restrictive of the training data's,
``curate.export.licenses.decide``), ``datasets`` when the data's Hub repo is known, and tags. The card never holds a
local path: a base model given as a local folder is named by its last part.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCardData

from curate import __version__
from curate.export.card import DISCLAIMER
from curate.export.licenses import decide
from curate.train.recipe import EMBEDDED, Recipe

EMBEDDED_HUB_ID = "google/gemma-3-270m"  # the embedded GGUF is a quantisation of this model


def base_model(model: str) -> str:
    """The base model as the card names it: a Hub id, the embedded model's Hub id, or a local folder's name."""
    if model == EMBEDDED:
        return EMBEDDED_HUB_ID
    path = Path(model).expanduser()
    return path.name if path.is_absolute() or model.startswith("~") else model


def _per_source(data: dict) -> dict[str, str | None]:
    """{source (and licence, when its rows carry several): licence}, as the dataset card decides its licence."""
    out = {}
    for source, lics in (data.get("licenses") or {}).items():
        for lic in lics:
            out[source if len(lics) == 1 else f"{source} ({lic})"] = lic
    return out


def _interval(m: dict) -> str:
    value = m.get("value")
    if value is None:
        return "-"
    ci = f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if m.get("ci_low") is not None else ""
    return f"{value:.3f}{ci}"


def _evaluation(comparison: dict) -> str:
    rows = []
    for name, m in comparison["metrics"].items():
        test = m.get("test") or {}
        p = f"{test['test']} p = {test['p_value']:.3g}" if test.get("p_value") is not None else "-"
        rows.append(f"| {name} | {_interval(m['a'])} | {_interval(m['b'])} | {_interval(m.get('difference') or {})} "
                    f"| {p} |")
    level = next((m["a"].get("level") for m in comparison["metrics"].values() if m["a"].get("level")), 0.95)
    return (f"## Evaluation\n\n{comparison.get('set')}, {comparison.get('n_paired')} items, the base model and this "
            f"adapter with the same prompts and scoring ({level:.0%} bootstrap intervals, paired difference and "
            "test):\n\n| metric | base | tuned | tuned - base | paired test |\n|---|---|---|---|---|\n" + "\n".join(rows))


def render_model_card(recipe: Recipe, data: dict, *, dataset_repo: str | None = None,
                      evaluation: dict | None = None) -> str:
    """The whole README.md of an adapter folder."""
    decision = decide(_per_source(data))
    meta = ModelCardData(base_model=base_model(recipe.model), library_name="peft", license=decision.license,
                         datasets=[dataset_repo] if dataset_repo else None, pipeline_tag="text-generation",
                         tags=["curate", "lora", "medical", recipe.modality])
    if decision.license_name:
        meta["license_name"] = decision.license_name
    sources = "\n".join(f"| {source} | {', '.join(lic or 'unknown' for lic in lics)} |"
                        for source, lics in sorted((data.get("licenses") or {}).items())) or "| unknown | unknown |"
    train = recipe.train
    stop = f"{train.max_steps} steps" if train.max_steps else f"{train.num_epochs:g} epoch(s)"
    body = [
        f"# {recipe.name}",
        f"A LoRA adapter (rank {recipe.lora.r}, alpha {recipe.lora.alpha}) for `{base_model(recipe.model)}`, trained "
        f"with curate {__version__} on {data['rows']['train']:,} rows ({stop}, learning rate "
        f"{train.learning_rate:g}); the recipe is `recipe.yaml`, the data's digest `data.json`.",
        f"**Licence: `{decision.license}`**: the most restrictive licence among the training data's sources.",
        *(f"> **Warning:** {w}" for w in decision.warnings),
        "## Training data\n\n| source | licence |\n|---|---|\n" + sources,
        _evaluation(evaluation) if evaluation else "## Evaluation\n\nNone yet: `curate eval` scores the base model and this adapter.",
        "## Medical disclaimer\n\n" + DISCLAIMER.replace("This dataset is", "This model and its data are"),
    ]
    return f"---\n{meta.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n"
