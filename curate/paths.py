"""Relative paths in the files a user writes (pipelines, recipes, filter configs, ablations): read from the folder of
the file that names them, by one rule everywhere.

- ``beside(base, value)``: a value that is always a path; ``~`` expanded, relative to ``base``, resolved.
- ``path_or_name(value, base)``: a value that may be a path or a name (a catalog entry, a Hub id, ``embedded``): the
  absolute path when it names a file or folder under ``base``, else the value as written.

And one rule for showing them: ``shown(value)`` is a path as console output prints it, never the machine's own
directory layout.
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


def shown(value: str | Path) -> str:
    """An absolute path relative to the working directory when it lies under it, else "…/" and its last two parts;
    anything else (a relative path, a model name, a Hub id) as it is."""
    path = Path(value)
    if not path.is_absolute():
        return str(value)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(Path("…", *path.parts[-2:]))
