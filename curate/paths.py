"""Relative paths in the files a user writes (pipelines, recipes, filter configs, ablations): read from the folder of
the file that names them, by one rule everywhere.

- ``beside(base, value)``: a value that is always a path; ``~`` expanded, relative to ``base``, resolved.
- ``path_or_name(value, base)``: a value that may be a path or a name (a catalog entry, a Hub id, ``embedded``): the
  absolute path when it names a file or folder under ``base``, else the value as written.
"""

from __future__ import annotations

from pathlib import Path


def beside(base: Path, value: str | Path) -> Path:
    """``value`` read from ``base`` unless it is absolute, as an absolute path."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def path_or_name(value: str | None, base: Path) -> str | None:
    """``value`` as an absolute path when it names something under ``base`` (or is an existing absolute path);
    otherwise as it is."""
    if value is None:
        return None
    path = beside(base, value)
    return str(path) if path.exists() else value
