"""Pushes an export artifact folder to a Hugging Face Hub dataset repo without ever exposing the token.

Consumes an artifact folder written by ``curate.export.artifact.export`` (README.md, data/, report.json, ...) and a
repo id ``ORG/NAME``; produces one commit on that dataset repo (created if missing; a ``revision`` branch is created
from main if missing) that adds every file of the folder and deletes the repo's files under ``data/`` and ``arrow/``
that the folder no longer has, so stale shards never join a split. ``dry_run`` lists what would be uploaded (paths
and sizes) and needs no token.

A new repo is private unless ``private=False``; an existing repo whose visibility differs from the one asked for is
refused, never silently reused. The licence gate reads the ``source`` and ``license`` columns of ``data/*.parquet``:
rows under a licence that does not allow publishing (``licenses.blocks_publishing``) stop the push, dry run too,
with the sources named, unless every such licence is in ``allow_licenses``.

The token comes from ``token=``, else ``HF_TOKEN`` or the saved login (``huggingface_hub.get_token``). It goes to
``HfApi`` and nowhere else: it is never printed or logged, the folder's text files are checked not to contain it
before anything is sent, and every Hub error is re-raised as ``PushFailed`` with the token scrubbed from the message
and the original exception dropped (``from None``), since its message or arguments may carry it. The local folder is
only read, so a failed push leaves it as it was, and the error says how to retry.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import RepositoryNotFoundError

from curate.export import licenses

log = logging.getLogger("curate")

REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
MANAGED = ("data/", "arrow/")
TEXT_SUFFIXES = {".md", ".json", ".yaml", ".yml", ".txt"}
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{20,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)\S+")


class PushError(Exception):
    """The push cannot start (not an artifact, bad repo id, no token); the message never holds the token."""


class PushFailed(PushError):
    """The Hub refused or the upload broke; the message is scrubbed of the token and says how to retry."""


class PushRefused(PushError):
    """The push would publish what it must not: rows whose licence forbids it, or a repo of the other visibility."""


@dataclass
class UploadFile:
    path: str
    size: int


@dataclass
class PushResult:
    repo_id: str
    revision: str | None
    files: list[UploadFile]
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    commit_url: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def artifact_files(folder: str | Path) -> list[UploadFile]:
    """Every file of the artifact folder (relative POSIX paths, sizes); PushError if it is not an artifact."""
    folder = Path(folder)
    if not (folder / "README.md").is_file() or not list((folder / "data").glob("*.parquet")):
        raise PushError(f"{folder} is not an export artifact (README.md and data/*.parquet); "
                        f"make one with `curate export RUN -o {folder}`")
    return [UploadFile(p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()]


def scrub(text: str, token: str | None) -> str:
    """``text`` with the token, anything shaped like a Hub token and bearer credentials replaced by ***."""
    if token:
        text = text.replace(token, "***")
    return _BEARER.sub(r"\1***", _TOKEN_LIKE.sub("hf_***", text))


def resolve_token(token: str | None) -> str:
    """``token``, else HF_TOKEN or the saved login; PushError when there is none."""
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then retry")
    return token


def refuse_token_in_files(folder: Path, files: list[UploadFile], token: str) -> None:
    """PushError when a text file about to be uploaded holds the token."""
    needle = token.encode()
    for f in files:
        if Path(f.path).suffix in TEXT_SUFFIXES and needle in (folder / f.path).read_bytes():
            raise PushError(f"{folder / f.path} contains your Hugging Face token; remove it before pushing")


def _stale(remote: list[str], files: list[UploadFile]) -> list[str]:
    ours = {f.path for f in files}
    return sorted(p for p in remote if p.startswith(MANAGED) and p not in ours)


def row_licenses(folder: Path) -> dict[str, set[str | None]]:
    """{source: the licences its rows carry} over the artifact's data shards."""
    found: dict[str, set[str | None]] = {}
    for shard in sorted((folder / "data").glob("*.parquet")):
        if not {"source", "license"} <= set(pq.read_schema(shard).names):
            raise PushError(f"{shard} has no source and license columns, so its licences cannot be checked; "
                            "export the run again with this curate")
        table = pq.read_table(shard, columns=["source", "license"])
        for source, lic in zip(table["source"].to_pylist(), table["license"].to_pylist()):
            found.setdefault(source, set()).add(lic)
    return found


def refuse_licenses(found: dict[str, Iterable[str | None]], allowed: Iterable[str], what: str) -> None:
    """PushRefused when rows ({source: their licences}) carry a licence that does not allow publishing and that
    ``allowed`` does not name; the same rule for a dataset and for a model trained on it."""
    allowed = {licenses.key(name) for name in allowed}
    blocked = sorted((str(source), lic or "") for source, lics in found.items()
                     for lic in lics if licenses.blocks_publishing(lic) and licenses.key(lic) not in allowed)
    if blocked:
        names = ", ".join(f"{source} ({lic or 'no licence given'})" for source, lic in blocked)
        flags = " ".join(sorted({f"--allow-license {shlex.quote(licenses.key(lic))}" for _, lic in blocked}))
        raise PushRefused(f"refusing to push {what}: rows from {names} carry a licence that does not allow "
                          "publishing them (all rights reserved, no-derivatives or unknown terms). Leave those "
                          f"sources out of the export, or, if you hold the rights, pass {flags}")


def check_visibility(api: HfApi, repo_id: str, private: bool, repo_type: str = "dataset") -> None:
    """PushRefused when ``repo_id`` exists with the other visibility (a private push never lands in a public repo)."""
    try:
        existing = api.repo_info(repo_id, repo_type=repo_type).private
    except RepositoryNotFoundError:
        return
    if existing != private:
        have, want = ("private", "public") if existing else ("public", "private")
        raise PushRefused(f"{repo_type} {repo_id} exists and is {have}, but a {want} push was asked for: change its "
                          f"visibility in the repo's settings on the Hub, or push with "
                          f"{'--public' if want == 'private' else 'the default (private)'} to keep it {have}")


def _retry(folder: Path, repo_id: str, revision: str | None, private: bool) -> str:
    flags = (f" --revision {revision}" if revision else "") + ("" if private else " --public")
    return (f"The local artifact {folder} is unchanged; fix the cause and retry with: "
            f"curate push {folder} --repo {repo_id}{flags}")


def push(folder: str | Path, repo_id: str, *, private: bool = True, revision: str | None = None,
         message: str | None = None, token: str | None = None, dry_run: bool = False,
         allow_licenses: Iterable[str] = ()) -> PushResult:
    """Upload the artifact ``folder`` to the dataset repo ``repo_id`` (or, with ``dry_run``, say what would go)."""
    folder = Path(folder)
    if not REPO_ID.match(repo_id):
        raise PushError(f"repo id '{repo_id}' must look like ORG/NAME")
    files = artifact_files(folder)
    refuse_licenses(row_licenses(folder), allow_licenses, str(folder))
    result = PushResult(repo_id, revision, files, dry_run)
    if dry_run:
        return result
    token = resolve_token(token)
    refuse_token_in_files(folder, files, token)
    log.info("pushing %d files (%d bytes) from %s to dataset %s", len(files), result.total_bytes, folder, repo_id)
    try:
        api = HfApi(token=token)
        check_visibility(api, repo_id, private)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        result.deleted = _stale(api.list_repo_files(repo_id, repo_type="dataset", revision=revision), files)
        operations = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(folder / f.path)) for f in files]
        operations += [CommitOperationDelete(path_in_repo=p) for p in result.deleted]
        info = api.create_commit(repo_id, operations, repo_type="dataset", revision=revision,
                                 commit_message=message or f"Upload dataset ({len(files)} files) with curate")
    except PushRefused:
        raise
    except Exception as exc:  # every failure, re-raised with the token scrubbed
        detail = scrub(f"{type(exc).__name__}: {exc}", token)
        raise PushFailed(f"push to {repo_id} failed: {detail}. {_retry(folder, repo_id, revision, private)}") from None
    result.commit_url = info.commit_url
    log.info("pushed %s", result.commit_url or repo_id)
    return result
