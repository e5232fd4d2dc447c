"""Pushes a fine-tuning output folder to a Hugging Face Hub model repo, with the export's token rules.

Consumes an output folder of ``curate finetune`` (adapter, tokenizer, recipe.yaml, data.json, loss_history.json, ...)
and a repo id ``ORG/NAME``; produces one commit on that model repo (created if missing) holding every file of the
folder. The token handling is ``curate.export.hub``'s: from ``token=``, ``HF_TOKEN`` or the saved login; given to
``HfApi`` only; the folder's text files are checked not to contain it; every Hub error becomes ``PushFailed`` with
the token scrubbed and the original exception dropped. The folder is only read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import HfApi

from curate.export.hub import (
    REPO_ID,
    PushError,
    PushFailed,
    PushRefused,
    UploadFile,
    _check_visibility,
    _refuse_token_in_files,
    _token,
    scrub,
)

log = logging.getLogger("curate")


def model_files(folder: Path) -> list[UploadFile]:
    """Every file of a fine-tuning output folder; PushError when it holds no adapter or model."""
    if not ((folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()):
        raise PushError(f"{folder} holds no adapter_config.json or config.json: push the output folder of "
                        "`curate finetune`")
    return [UploadFile(p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()]


def push_model(folder: str | Path, repo_id: str, *, private: bool = True, token: str | None = None,
               message: str | None = None) -> str:
    """Upload ``folder`` to the model repo ``repo_id`` (private unless ``private=False``; an existing repo of the
    other visibility is refused); returns the commit URL."""
    folder = Path(folder)
    if not REPO_ID.match(repo_id):
        raise PushError(f"repo id '{repo_id}' must look like ORG/NAME")
    files = model_files(folder)
    token = _token(token)
    _refuse_token_in_files(folder, files, token)
    log.info("pushing %d files from %s to model %s", len(files), folder, repo_id)
    try:
        api = HfApi(token=token)
        _check_visibility(api, repo_id, private, repo_type="model")
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
