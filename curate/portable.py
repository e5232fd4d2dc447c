"""Keeping this machine's paths out of what travels (an export folder, a pushed repo, a static report).

``portable`` rewrites a pipeline (or any YAML-like value): every absolute or home-relative path becomes
``<local>/NAME``, its last part, so a reader sees which file was used and gives their own copy (``--source-path``);
relative paths and catalog names stay. ``scrub`` replaces known local folders inside free text.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import yaml

PLACEHOLDER = "<local>"


def is_local_path(value: str) -> bool:
    """Whether ``value`` is an absolute or ``~`` path of some machine (a URL or a relative path is not)."""
    return value.startswith(("/", "~")) or PureWindowsPath(value).drive != ""


def portable(value):
    """``value`` (dicts, lists, strings) with every local path replaced by ``<local>/NAME``."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and is_local_path(value):
        name = Path(value.rstrip("/\\")).name or PureWindowsPath(value).name
        return f"{PLACEHOLDER}/{name}" if name else PLACEHOLDER
    return value


def portable_pipeline(path: Path) -> str:
    """The pipeline file at ``path`` as YAML without local paths (nor its ``run_dir``), with a header saying how to
    run it again."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    spec.pop("run_dir", None)
    return ("# the pipeline as run; local paths are written <local>/NAME: run it with your copies, e.g.\n"
            "#   curate run pipeline.yaml --source-path SOURCE=PATH\n"
            + yaml.safe_dump(portable(spec), sort_keys=False, allow_unicode=True))


def scrub(text: str, folders: dict[str, str]) -> str:
    """``text`` with each local folder (a key) replaced by its label (a value), longest folder first."""
    for folder in sorted(folders, key=len, reverse=True):
        if folder and folder not in ("/", "\\"):
            text = text.replace(folder, folders[folder])
    return text
