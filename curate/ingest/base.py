"""The connector contract: a resolved source in, schema rows and rejects out.

A connector is a module in ``curate.ingest`` with an ``Options`` pydantic model (its kind-specific YAML keys) and
``read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]``. It yields rows built with the
``curate.schema.make_*`` helpers and, for every item it cannot use, a ``Reject`` naming the item and the reason.
It never writes files or prints: the runner owns output, progress and reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel, ConfigDict


class ConnectorError(Exception):
    """A whole source cannot be read (missing path, wrong columns...). The message says what and how to fix it."""


@dataclass
class Reject:
    """One input item that could not be used: ``reason`` is a short stable code, ``detail`` a readable sentence."""

    reason: str
    detail: str
    locator: str
    raw: Any = None


@dataclass
class HubLocation:
    repo: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None


@dataclass
class SourceSpec:
    """A source resolved from the catalog and the pipeline: where to read, under which licence, how to map."""

    name: str
    kind: str
    license: str | None = None
    attribution: str | None = None
    path: Path | None = None
    hub: HubLocation | None = None
    url: str | None = None
    sha256: str | None = None
    mapping: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    use: str = "train"

    @property
    def origin(self) -> str:
        """Where rows come from, for provenance: the URL, the local path or the Hub repo."""
        if self.url:
            return self.url
        if self.path is not None:
            return str(self.path)
        return self.hub.repo if self.hub else self.name

    @property
    def revision(self) -> str | None:
        """The content's pin: a URL's sha256, a Hub revision, or None for a local path."""
        if self.url:
            return self.sha256
        return self.hub.revision if self.hub and self.path is None else None


class Options(BaseModel):
    """Base for connector options: unknown keys are an error, so a misspelt option fails in ``--dry-run``."""

    model_config = ConfigDict(extra="forbid")


Reader = Callable[[SourceSpec, Any], Iterator["dict | Reject"]]


def require_path(spec: SourceSpec, what: str) -> Path:
    """The local path of ``spec``, or a ConnectorError saying how to give one."""
    if spec.path is None:
        raise ConnectorError(f"source '{spec.name}' ({spec.kind}) needs a local {what}: pass --path or set 'path:'")
    if not spec.path.exists():
        raise ConnectorError(f"source '{spec.name}': path {spec.path} does not exist")
    return spec.path
