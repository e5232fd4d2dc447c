"""LLM backends behind one interface (see ``base.py``), chosen by a validated ``LLMConfig``.

``load_llm(LLMConfig())`` is the embedded default: the Gemma 3 270M GGUF from PyPI run by llama.cpp. Backends are
imported only when chosen, so the heavy or optional libraries (llama-cpp-python, torch, httpx) load on demand::

    llm = load_llm({"backend": "openai", "model": "google/medgemma-4b-it", "base_url": "http://127.0.0.1:8000/v1"})
    llm.generate([{"role": "user", "content": "List three causes of anaemia."}], Sampling(max_tokens=128))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import LLM, Generation, Message, Prompt, Sampling, TransientError

__all__ = ["LLM", "LLMConfig", "Generation", "Message", "Prompt", "Sampling", "TransientError", "load_llm",
           "is_instruction_tuned"]

EMBEDDED = "embedded"
_BACKEND_OPTIONS = {
    "llamacpp": {"n_ctx", "n_threads"},
    "transformers": {"n_threads", "batch_size", "device", "dtype", "gguf_file", "cache_dir"},
    "openai": {"base_url", "api_key_env", "concurrency", "timeout", "max_retries", "json_mode"},
}


def is_instruction_tuned(model: str | None) -> bool:
    """Guess from the name: Gemma's instruction-tuned checkpoints end in ``-it`` (``gemma-3-4b-it-Q4_K_M.gguf``
    counts too); others say ``instruct``. The embedded model is a base model."""
    if not model or model == EMBEDDED:
        return False
    name = Path(model).name.lower().removesuffix(".gguf")
    return bool(re.search(r"-it($|[-_.])", name)) or "instruct" in name


class LLMConfig(BaseModel):
    """Which model generates, and how. Options of a backend other than the chosen one are errors."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llamacpp", "transformers", "openai"] = Field(
        "llamacpp", description="llamacpp (in-process GGUF, the default), transformers, or openai (an HTTP server)")
    model: str = Field(EMBEDDED, description="'embedded' or null (Gemma 3 270M from PyPI), a GGUF path, a Hub id "
                                             "or local folder (transformers), or the server's model name (openai)")
    instruction_tuned: bool | None = Field(
        None, description="chat-template prompts; None guesses from the name (-it, instruct)")
    # llamacpp
    n_ctx: int = Field(4096, ge=128, description="llamacpp: context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="llamacpp and transformers on CPU: threads (None: "
                                                          "OMP_NUM_THREADS or the physical cores for llamacpp, "
                                                          "torch's default)")
    # transformers
    batch_size: int = Field(8, ge=1, description="transformers: prompts per generate call")
    device: str = Field("auto", description="transformers: auto, cpu, cuda, cuda:1, mps")
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = Field(
        "auto", description="transformers: auto is bfloat16 (float16 is refused for Gemma 3n)")
    gguf_file: str | None = Field(None, description="transformers: load this GGUF (dequantized and cached)")
    cache_dir: str | None = Field(None, description="transformers: dequantized-GGUF cache "
                                                    "(default ~/.cache/curate/models)")
    # openai
    base_url: str | None = Field(None, description="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the API key")
    concurrency: int = Field(8, ge=1, description="openai: requests in flight at most")
    timeout: float = Field(120.0, gt=0, description="openai: seconds per request")
    max_retries: int = Field(5, ge=0, description="openai: retries of a timed-out, rate-limited or 5xx request")
    json_mode: Literal["json_schema", "json_object", "off"] = Field(
        "json_schema", description="openai: response_format dialect for JSON-schema calls, or off")

    @field_validator("model", mode="before")
    @classmethod
    def _embedded_when_null(cls, value):
        return EMBEDDED if value is None else value

    @model_validator(mode="after")
    def _check(self) -> "LLMConfig":
        own = _BACKEND_OPTIONS[self.backend]
        foreign = sorted((self.model_fields_set & set().union(*_BACKEND_OPTIONS.values())) - own)
        if foreign:
            raise ValueError(f"{', '.join(foreign)} do not apply to backend {self.backend!r}; its options are "
                             f"{', '.join(sorted(own))}")
        if self.backend == "openai":
            if not self.base_url:
                raise ValueError("backend 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
            if self.model == EMBEDDED:
                raise ValueError("backend 'openai' needs model: the name the server serves (GET <base_url>/models "
                                 "lists them)")
        return self

    def is_instruction_tuned(self) -> bool:
        return self.instruction_tuned if self.instruction_tuned is not None else is_instruction_tuned(self.model)


def load_llm(config: LLMConfig | dict | None = None) -> LLM:
    """Build the configured backend, importing only its libraries."""
    config = config if isinstance(config, LLMConfig) else LLMConfig.model_validate(config or {})
    tuned = config.is_instruction_tuned()
    if config.backend == "llamacpp":
        from .llamacpp import LlamaCppLLM

        return LlamaCppLLM(config.model, instruction_tuned=tuned, n_ctx=config.n_ctx, n_threads=config.n_threads)
    if config.backend == "transformers":
        from .hf import TransformersLLM

        return TransformersLLM(config.model, instruction_tuned=tuned, gguf_file=config.gguf_file,
                               n_threads=config.n_threads, device=config.device, dtype=config.dtype,
                               batch_size=config.batch_size, cache_dir=config.cache_dir)
    from .openai import OpenAICompatibleLLM

    return OpenAICompatibleLLM(config.model, base_url=config.base_url, instruction_tuned=tuned,
                               api_key_env=config.api_key_env, concurrency=config.concurrency,
                               timeout=config.timeout, max_retries=config.max_retries, json_mode=config.json_mode)
