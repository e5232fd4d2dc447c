"""Connectors: one module per source kind, each with ``Options`` and ``read(spec, options)`` (see ``base``)."""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.ingest.download import fetch

CONNECTORS = {
    "pdf": "curate.ingest.pdf",
    "hf_qa": "curate.ingest.hf_qa",
    "medquad": "curate.ingest.medquad",
    "rocov2": "curate.ingest.rocov2",
    "dicom": "curate.ingest.dicom",
    "vqa": "curate.ingest.vqa",
    "rows": "curate.ingest.rows",
}


def connector(kind: str) -> ModuleType:
    """The connector module for ``kind``; a ConnectorError lists the known kinds."""
    if kind not in CONNECTORS:
        raise ConnectorError(f"unknown source kind '{kind}'; known kinds: {', '.join(sorted(CONNECTORS))}")
    return importlib.import_module(CONNECTORS[kind])


def validate_options(spec: SourceSpec):
    """The connector's Options for ``spec``; a pydantic ValidationError names a bad or misspelt key."""
    return connector(spec.kind).Options.model_validate(spec.options)


def read_source(spec: SourceSpec):
    """Rows and Rejects from one source, honouring ``spec.limit`` (counted in good rows).

    A ``url:`` source is first fetched into the download cache (sha256-checked); the connector then reads the
    cached file while provenance keeps naming the URL and its sha256.
    """
    if spec.path is None and spec.url:
        path, digest = fetch(spec.url, spec.sha256)
        spec = dataclasses.replace(spec, path=path, sha256=spec.sha256 or digest)
    module = connector(spec.kind)
    options = module.Options.model_validate(spec.options)
    kept = 0
    for item in module.read(spec, options):
        if not isinstance(item, Reject):
            if spec.limit is not None and kept >= spec.limit:
                return
            kept += 1
        yield item


__all__ = ["CONNECTORS", "ConnectorError", "Reject", "SourceSpec", "connector", "read_source", "validate_options"]
