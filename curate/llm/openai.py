"""The OpenAI-compatible backend: any server speaking ``/v1/chat/completions`` and ``/v1/completions`` (vLLM,
Ollama, llama.cpp's server, llama-cpp-python's server, a hosted API).

Message prompts go to ``chat/completions`` (the server applies the model's chat template; for Gemma models any
system message is folded into the first user turn first), string prompts to ``completions``. Requests run
concurrently on one ``httpx.AsyncClient``, at most ``concurrency`` in flight; the sync ``generate_batch`` runs the
async ``agenerate_batch`` with ``asyncio.run``.

The API key is read from the environment variable named by ``api_key_env`` and sent as a bearer token. It is never
logged, and it is scrubbed from every error message (some servers echo the header they rejected).

Failures fall in three kinds, because the synthesis stage treats them differently:

* **transient** (timeout, connection error, 408/409/425/429, any 5xx): retried up to ``max_retries`` times with
  exponential backoff and jitter, honouring ``Retry-After``. If an item still fails, ``generate_batch`` raises
  ``TransientError`` once every other request of the batch has finished; ``err.partial`` holds the batch's results
  in order, ``None`` where the item failed. The caller leaves those items undone, to be retried on resume.
* **permanent for the item** (400, 413 and other 4xx not listed here: context too long, a prompt the server refuses,
  a malformed success body): no retry; the item gets ``Generation(text="", finish_reason="error", error=...)``, a
  bad output the stage may drop for good.
* **configuration** (401, 403, 404, 405, 422: wrong key, model name, URL, or a request field the server does not
  accept; and any error whose body names ``response_format`` when one was sent, since some servers answer 500 to a
  request they cannot parse): ``OpenAIConfigError`` is raised at once, since every item would fail the same way and
  none should be marked done.

With a ``json_schema`` the request carries ``response_format``. ``json_mode`` picks its dialect: ``json_schema``
(OpenAI, vLLM, Ollama, llama.cpp's server: ``{"type": "json_schema", "json_schema": {"name", "schema",
"strict"}}``), ``json_object`` (llama-cpp-python's server: ``{"type": "json_object", "schema": ...}``, enforced on
chat/completions only) or ``off`` for servers that reject both. A strict ``json_schema`` gets
``additionalProperties: false`` on every object (``strict_schema``). A server may also ignore the field; either way
callers parse and validate the text, and retry, as for any unconstrained output.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import os
import random
import time
from typing import Literal

from .base import LLM, Generation, Prompt, Sampling, TransientError
from .chat import fold_system

log = logging.getLogger(__name__)

JsonMode = Literal["json_schema", "json_object", "off"]
RETRY_STATUS = frozenset({408, 409, 425, 429})
CONFIG_STATUS = frozenset({401, 403, 404, 405, 422})
MAX_RETRY_AFTER = 120.0


class OpenAIConfigError(RuntimeError):
    """The server rejected the request itself (key, model, URL, request fields): fix the config and rerun."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before retry number ``attempt + 1``: ``Retry-After`` when the server gave one (up to
    ``MAX_RETRY_AFTER``), else ``base * 2**attempt`` capped at ``cap``, with half of it jittered."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    delay = min(cap, base * (2 ** attempt))
    return delay / 2 + random.uniform(0, delay / 2)


def strict_schema(schema: dict) -> dict:
    """A copy of ``schema`` with ``additionalProperties: false`` on every object, as strict ``json_schema`` output
    requires (the hosted OpenAI API rejects a strict schema without it)."""
    out = dict(schema)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: strict_schema(sub) for name, sub in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = strict_schema(out["items"])
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(sub) for sub in out[key]]
    return out


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class OpenAICompatibleLLM(LLM):
    """A model behind an OpenAI-compatible HTTP API. ``base_url`` may end in ``/v1`` or not."""

    backend = "openai"

    def __init__(self, model: str, *, base_url: str, instruction_tuned: bool = True,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 5, json_mode: JsonMode = "json_schema", backoff_base: float = 0.5,
                 backoff_max: float = 30.0):
        try:
            import httpx
        except ImportError as exc:
            raise ImportError("the openai backend needs httpx: pip install httpx") from exc
        if json_mode not in ("json_schema", "json_object", "off"):
            raise ValueError(f"json_mode {json_mode!r} is not one of json_schema, json_object, off")
        super().__init__(model, instruction_tuned)
        self._httpx = httpx
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else f"{root}/v1"
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.json_mode = json_mode
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self._fold_system = "gemma" in model.lower()
        if not self._api_key:
            log.debug("$%s is not set: requests to %s carry no API key", api_key_env, self.base_url)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    # ---- requests -------------------------------------------------------------------------------------------

    def _request(self, prompt: Prompt, sampling: Sampling, json_schema: dict | None) -> tuple[str, dict]:
        body: dict = {"model": self.model, "max_tokens": sampling.max_tokens,
                      "temperature": sampling.temperature, "top_p": sampling.top_p}
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if json_schema is not None and self.json_mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": strict_schema(json_schema),
                                                       "strict": True}}
        elif json_schema is not None and self.json_mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": json_schema}
        if isinstance(prompt, str):
            return f"{self.base_url}/completions", {**body, "prompt": prompt}
        messages = fold_system(prompt) if self._fold_system else [dict(m) for m in prompt]
        return f"{self.base_url}/chat/completions", {**body, "messages": messages}

    def _parse(self, response, chat: bool) -> Generation:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if chat else choice["text"]
            usage = data.get("usage") or {}
            return Generation(text=text or "", prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=int(usage.get("completion_tokens") or 0),
                              finish_reason=_finish_reason(choice.get("finish_reason")), raw=data)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Generation(text="", finish_reason="error",
                              error=self._redact(f"malformed response from {response.url}: {exc!r}: "
                                                 f"{response.text[:200]}"))

    def _error_text(self, response) -> str:
        return self._redact(f"HTTP {response.status_code} from {response.url}: {response.text[:300]}")

    async def _attempt(self, client, url: str, body: dict) -> Generation:
        httpx = self._httpx
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out after {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(self._redact(f"connection error ({type(exc).__name__}: {exc})")) from None
        status = response.status_code
        if status == 200:
            return self._parse(response, chat="messages" in body)
        if "response_format" in body and "response_format" in response.text:
            # Some servers answer 500 to a request they cannot parse; retrying it would never help.
            raise OpenAIConfigError(f"{self._error_text(response)} (the server rejects this response_format: "
                                    f"set json_mode to {'json_object or ' * (self.json_mode != 'json_object')}off)")
        if status in RETRY_STATUS or status >= 500:
            raise _Retryable(self._error_text(response), parse_retry_after(response.headers.get("retry-after")))
        if status in CONFIG_STATUS:
            hint = ""
            if status in (401, 403):
                hint = f" (API key from ${self.api_key_env}{'' if self._api_key else ', which is not set'})"
            raise OpenAIConfigError(self._error_text(response) + hint)
        return Generation(text="", finish_reason="error", error=self._error_text(response))

    async def _generate_one(self, client, semaphore: asyncio.Semaphore, prompt: Prompt, sampling: Sampling,
                            json_schema: dict | None) -> Generation:
        url, body = self._request(prompt, sampling, json_schema)
        for attempt in range(self.max_retries + 1):
            try:
                async with semaphore:
                    log.debug("POST %s (attempt %d)", url, attempt + 1)
                    return await self._attempt(client, url, body)
            except _Retryable as failure:
                if attempt == self.max_retries:
                    raise TransientError(f"{failure.reason}; gave up after {attempt + 1} attempts") from None
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, failure.retry_after)
                log.debug("retrying in %.2fs: %s", delay, failure.reason)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def agenerate_batch(self, prompts: list[Prompt], sampling: Sampling = Sampling(),
                              json_schema: dict | None = None) -> list[Generation]:
        """All prompts concurrently (``concurrency`` at most in flight); results in prompt order."""
        if not prompts:
            return []
        httpx = self._httpx
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        semaphore = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout), limits=limits) as client:
            results = await asyncio.gather(
                *(self._generate_one(client, semaphore, p, sampling, json_schema) for p in prompts),
                return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, TransientError):
                raise result
        failed = [r for r in results if isinstance(r, TransientError)]
        if failed:
            error = TransientError(f"{len(failed)} of {len(prompts)} requests to {self.base_url} failed: {failed[0]}")
            error.partial = [r if isinstance(r, Generation) else None for r in results]
            raise error
        return results  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[Prompt], sampling: Sampling,
                        json_schema: dict | None) -> list[Generation]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate_batch(prompts, sampling, json_schema))
        # Called from inside an event loop (a notebook, an async app): run the batch on a loop of its own thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.agenerate_batch(prompts, sampling, json_schema)).result()

    def describe(self) -> dict:
        return {**super().describe(), "base_url": self.base_url}
