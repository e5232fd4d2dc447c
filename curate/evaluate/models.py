"""The model under evaluation: loaded from an ``LLMConfig`` (plus an optional LoRA adapter), with what identifies it.

Consumes an ``LLMConfig`` (or its dict) and an adapter folder written by ``curate finetune``; produces a
``LoadedModel``: the backend (``curate.llm``) and ``info``, recorded in ``summary.json``:

- ``fingerprint``: a GGUF file's sha256 (llama.cpp, or transformers on ``embedded`` / a ``.gguf``); a local model
  folder's digest (sha256 over each file's path and sha256); a Hub id with the commit transformers resolved; for an
  OpenAI-compatible server only the served name and URL (the client cannot see the weights).
- ``config`` (the ``LLMConfig`` as loaded), ``adapter`` and ``adapter_fingerprint`` (digest of the adapter folder),
  and what the backend describes (``device``, ``dtype``, ``gguf``).
- ``precision``: the runtime and the numeric format the weights ran in: the GGUF quantisation for llama.cpp, the
  torch dtype (and the GGUF it was dequantized from) for transformers. ``curate eval --compare`` refuses runs whose
  precision differs, so a 4-bit base is never compared with a float32 tuned model by accident.

Adapters load through the transformers backend only (``curate.train.chat.apply_adapter``); asking for one with
another backend is an ``EvalError`` naming the fix.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from curate.llm import LLM, LLMConfig, load_llm
from curate.io import file_sha256


class EvalError(ValueError):
    """The evaluation cannot run as asked (set, model, adapter, settings); the message says what to change."""


@dataclass
class LoadedModel:
    llm: LLM
    info: dict

    @classmethod
    def wrap(cls, llm: LLM) -> "LoadedModel":
        """An already built backend (a test's scripted model): described by itself, fingerprint unknown."""
        return cls(llm, {**llm.describe(), "adapter": None, "fingerprint": {"kind": "unknown"},
                         "adapter_fingerprint": None, "precision": {"runtime": llm.backend}})


def model_config(backend: str, model: str | None, options: dict | None = None) -> LLMConfig:
    """An ``LLMConfig`` from command-line parts: backend, model and ``KEY=VALUE`` options (n_threads, dtype, ...)."""
    return LLMConfig.model_validate({"backend": backend, "model": model, **(options or {})})


def judge_config(spec: str, options: dict | None = None) -> LLMConfig:
    """A judge's ``LLMConfig`` from ``BACKEND`` or ``BACKEND:MODEL`` (``llamacpp``, ``openai:medgemma-4b-it``)."""
    backend, _, model = spec.partition(":")
    return model_config(backend, model or None, options)


@functools.lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def sha256_of(path: Path) -> str:
    """A file's sha256, computed once per process for an unchanged file."""
    stat = path.stat()
    return _cached_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def folder_digest(folder: Path) -> str:
    """sha256 over every (non-hidden) file's relative path and sha256, in path order."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        total.update(f"{path.relative_to(folder).as_posix()}\0{sha256_of(path)}\n".encode())
    return total.hexdigest()


def _gguf_of(config: LLMConfig) -> Path | None:
    from curate.llm.llamacpp import EMBEDDED, resolve_gguf

    if config.backend == "llamacpp":
        return resolve_gguf(config.model)
    if config.backend == "transformers":
        if config.gguf_file:
            path = Path(config.gguf_file).expanduser()
            return path if path.is_absolute() or config.model == EMBEDDED else Path(config.model) / path
        if config.model == EMBEDDED or config.model.endswith(".gguf"):
            return resolve_gguf(config.model)
    return None


def model_fingerprint(config: LLMConfig, llm: LLM) -> dict:
    """What pins the weights (see the module docstring)."""
    gguf = _gguf_of(config)
    if gguf is not None:
        return {"kind": "gguf", "file": gguf.name, "sha256": sha256_of(gguf)}
    if config.backend == "openai":
        return {"kind": "served", "model": config.model, "base_url": config.base_url,
                "note": "an OpenAI-compatible server does not show its weights"}
    folder = Path(config.model).expanduser()
    if folder.is_dir():
        return {"kind": "folder", "path": str(folder), "sha256": folder_digest(folder)}
    return {"kind": "hub", "id": config.model, "commit": getattr(llm.hf_model.config, "_commit_hash", None)}


def precision(config: LLMConfig, llm: LLM) -> dict:
    """The runtime and numeric format of the weights as they ran."""
    if config.backend == "llamacpp":
        return {"runtime": "llama.cpp", "weights": _gguf_file_type(llm)}
    if config.backend == "transformers":
        gguf = _gguf_of(config)
        return {"runtime": "transformers", "dtype": llm.describe()["dtype"],
                "weights": f"dequantized from {gguf.name}" if gguf else "checkpoint"}
    return {"runtime": "openai-compatible server", "weights": "not visible to the client"}


def _gguf_file_type(llm) -> str:
    raw = llm._llm.metadata.get("general.file_type")
    try:
        import gguf

        return f"gguf {gguf.LlamaFileType(int(raw)).name}"
    except (ImportError, TypeError, ValueError):
        return f"gguf file_type {raw}"


def check_adapter(backend: str, adapter: Path) -> None:
    """An ``EvalError`` unless ``adapter`` is an adapter folder and ``backend`` can load it."""
    if backend != "transformers":
        raise EvalError(f"--adapter needs --backend transformers (the {backend} backend cannot load a PEFT LoRA "
                        "adapter); evaluate the base model with the same backend and dtype too")
    if not (adapter / "adapter_config.json").is_file():
        raise EvalError(f"{adapter} holds no adapter_config.json: give the output folder of `curate finetune`")


def add_adapter(model: LoadedModel, adapter: str | Path) -> LoadedModel:
    """``model`` answering through a LoRA adapter from now on (its weights are shared, not copied)."""
    from curate.train.chat import ChatError, apply_adapter

    adapter = Path(adapter).expanduser()
    check_adapter(model.llm.backend, adapter)
    try:
        apply_adapter(model.llm, adapter)
    except ChatError as exc:
        raise EvalError(str(exc)) from exc
    return LoadedModel(model.llm, {**model.info, "adapter": str(adapter),
                                   "adapter_fingerprint": {"kind": "folder", "sha256": folder_digest(adapter)}})


def load_model(config: LLMConfig | dict, adapter: str | Path | None = None) -> LoadedModel:
    """The configured backend with the adapter applied, and its identifying ``info``."""
    config = config if isinstance(config, LLMConfig) else LLMConfig.model_validate(config)
    if adapter is not None:
        check_adapter(config.backend, Path(adapter).expanduser())  # before the slow load
    llm = load_llm(config)
    try:
        model = LoadedModel(llm, {**llm.describe(), "config": config.model_dump(), "adapter": None,
                                  "adapter_fingerprint": None, "fingerprint": model_fingerprint(config, llm),
                                  "precision": precision(config, llm)})
        return add_adapter(model, adapter) if adapter is not None else model
    except BaseException:
        llm.close()
        raise
