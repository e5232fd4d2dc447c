"""The source catalog: one YAML file per upstream source in ``sources/`` (``curate/sources`` links there, so a wheel
ships it as package data).

Each entry says what kind of connector reads the source, where it lives (a Hub dataset pinned to a revision, a URL
with its sha256, or a local path), its licence and attribution, and how its columns map onto the record schema.
``curate sources list`` and ``curate sources show NAME`` print them. Extra catalog folders can be given with the
``CURATE_SOURCES`` environment variable (``os.pathsep``-separated).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.ingest.base import HubLocation, SourceSpec

BUILTIN_SOURCES = Path(__file__).resolve().parent / "sources"


class Location(BaseModel):
    """Exactly one of ``hub``, ``url`` or ``path``."""

    model_config = ConfigDict(extra="forbid")
    hub: str | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    url: str | None = None
    sha256: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> "Location":
        given = [k for k in ("hub", "url", "path") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"location needs exactly one of hub, url, path (got {given or 'none'})")
        return self


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["pdf", "hf_qa", "medquad", "rocov2", "dicom", "vqa"]
    description: str
    location: Location
    license: str
    attribution: str
    homepage: str | None = None
    use: Literal["train", "eval"] = "train"
    mapping: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = None

    def spec(self, path: Path | None = None) -> SourceSpec:
        """This entry as a SourceSpec; ``path`` points it at a local copy in the same format."""
        loc = self.location
        local = path if path is not None else (Path(loc.path).expanduser() if loc.path else None)
        return SourceSpec(
            name=self.name, kind=self.kind, license=self.license, attribution=self.attribution, path=local,
            hub=HubLocation(loc.hub, loc.config, loc.split, loc.revision) if loc.hub and local is None else None,
            url=loc.url if local is None else None, sha256=loc.sha256, mapping=dict(self.mapping),
            options=dict(self.options), use=self.use,
        )


class CatalogError(Exception):
    pass


def catalog_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("CURATE_SOURCES", "").split(os.pathsep) if p]
    return [d for d in [BUILTIN_SOURCES, *extra] if d.is_dir()]


def load_catalog(dirs: list[Path] | None = None) -> dict[str, CatalogEntry]:
    """Every entry in the catalog folders, by name. A malformed file is a CatalogError naming the file."""
    entries: dict[str, CatalogEntry] = {}
    for folder in dirs if dirs is not None else catalog_dirs():
        for file in sorted(folder.glob("*.yaml")):
            try:
                entry = CatalogEntry.model_validate(yaml.safe_load(file.read_text()))
            except (ValidationError, yaml.YAMLError) as exc:
                raise CatalogError(f"{file}: {exc}") from exc
            if entry.name in entries:
                raise CatalogError(f"{file}: source name '{entry.name}' is already defined")
            entries[entry.name] = entry
    return entries
