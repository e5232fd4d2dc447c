"""Pushes a fine-tuning output folder to a Hugging Face Hub model repo, with the export's token rules.

Consumes an output folder of ``curate finetune`` (adapter, tokenizer, recipe.yaml, data.json, loss_history.json, ...)
and a repo id ``ORG/NAME``; produces one commit on that model repo (created if missing) holding every file of the
folder, its model card (README.md) included. Rows trained on under a licence that does not allow publishing
(``data.json``'s licences) refuse the push, by the dataset push's rule. The token handling is
``curate.export.hub``'s: from ``token=``, ``HF_TOKEN`` or the saved login; given to ``HfApi`` only; the folder's
text files are checked not to contain it; every Hub error becomes ``PushFailed`` with the token scrubbed and the
original exception dropped. The folder is only read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from huggingface_hub import HfApi

from curate.export.hub import (
    REPO_ID,
    PushError,
    PushFailed,
    PushRefused,
    UploadFile,
    check_visibility,
    refuse_licenses,
    refuse_token_in_files,
    resolve_token,
    scrub,
)
from curate.io import read_json

log = logging.getLogger("curate")


def model_files(folder: Path) -> list[UploadFile]:
    """Every file of a fine-tuning output folder; PushError when it holds no adapter or model."""
    if not ((folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()):
        raise PushError(f"{folder} holds no adapter_config.json or config.json: push the output folder of "
                        "`curate finetune`")
    return [UploadFile(p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()]


def trained_licenses(folder: Path) -> dict[str, list[str]]:
    """{source: licences of its rows} the model was trained on, from ``data.json``; PushRefused when unknown."""
    record = read_json(folder / "data.json") if (folder / "data.json").is_file() else {}
    if record.get("licenses") is None:
        raise PushRefused(f"{folder} does not say which licences its training rows carry (data.json 'licenses'), so "
                          "the push cannot be checked: train again with this curate on an export folder")
    return record["licenses"]


def push_model(folder: str | Path, repo_id: str, *, private: bool = True, token: str | None = None,
               message: str | None = None, allow_licenses: Iterable[str] = ()) -> str:
    """Upload ``folder`` to the model repo ``repo_id`` (private unless ``private=False``; an existing repo of the
    other visibility is refused; rows trained on under a licence that does not allow publishing refuse it, as for
    a dataset, unless ``allow_licenses`` names it); returns the commit URL."""
    folder = Path(folder)
    if not REPO_ID.match(repo_id):
        raise PushError(f"repo id '{repo_id}' must look like ORG/NAME")
    files = model_files(folder)
    refuse_licenses(trained_licenses(folder), allow_licenses, f"the model in {folder}")
    token = resolve_token(token)
    refuse_token_in_files(folder, files, token)
    log.info("pushing %d files from %s to model %s", len(files), folder, repo_id)
    try:
        api = HfApi(token=token)
        check_visibility(api, repo_id, private, repo_type="model")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message=message
                                 or f"Upload fine-tuned adapter ({len(files)} files) with curate")
    except PushRefused:
        raise
    except Exception as exc:  # every failure, re-raised with the token scrubbed
        detail = scrub(f"{type(exc).__name__}: {exc}", token)
        raise PushFailed(f"push to {repo_id} failed: {detail}. The trained folder {folder} is kept; fix the cause and "
                         f"upload it with: hf upload {repo_id} {folder}") from None
    return str(getattr(info, "commit_url", None) or info)
