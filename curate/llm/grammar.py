"""Grammar-constrained sampling for llama-cpp-python without testing the whole vocabulary at every step.

llama-cpp-python puts a grammar at the head of its sampler chain, so at every step the grammar tests all 262,144
Gemma 3 tokens before one is picked: on a 2-core CPU that costs more than decoding the token. The chain that follows
(for our sampling: greedy, or top-k 40 -> top-p -> min-p -> temperature -> a seeded draw, with neutral penalties) only
ever looks at the best few allowed tokens. ``WindowedGrammar`` therefore asks the grammar about the ``window``
highest-logit tokens only; when at least ``need`` of them are allowed (1 for greedy, ``top_k`` otherwise), the best
``need`` allowed tokens are exactly the candidates the library's top-k would have kept, and the same chain object
picks among them, so the token and the random draws are the library's own. When fewer are allowed (the grammar
permits only rare tokens at that point), it filters the whole vocabulary as the library does. Sampling setups the
shortcut cannot reproduce exactly (penalties, mirostat, logits processors, unbounded top-k) use the library's path.

``checked_llama(llama_cpp)`` returns a ``llama_cpp.Llama`` subclass that samples this way. It relies on
llama-cpp-python internals (``Llama._init_sampler``, ``LlamaSampler.sampler``, ``LlamaGrammar._grammar``) stable
across 0.3.x: ``supported(llama_cpp)`` checks the module-level ones, and a grammar object lacking its own falls
back to the library's chain.
"""

from __future__ import annotations

import ctypes

import numpy as np

WINDOW = 256
_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


def supported(llama_cpp) -> bool:
    from llama_cpp import _internals

    return (hasattr(_internals, "LlamaTokenDataArray") and hasattr(llama_cpp, "llama_sampler_init_grammar")
            and hasattr(llama_cpp.Llama, "_init_sampler"))


class _Candidates:
    """A reusable ``llama_token_data_array`` over a numpy record array of up to ``size`` tokens."""

    def __init__(self, llama_cpp, size: int):
        self.data = np.zeros(size, dtype=_TOKEN_DATA)
        self.array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(llama_cpp.llama_token_data_p), size=size, selected=-1, sorted=False)

    def fill(self, ids: np.ndarray, logits: np.ndarray) -> None:
        n = len(ids)
        self.data["id"][:n], self.data["logit"][:n], self.data["p"][:n] = ids, logits, 0.0
        self.array.size, self.array.selected, self.array.sorted = n, -1, False


class WindowedGrammar:
    """The sampler described in the module docstring; counts ``steps`` and ``full_scans`` (whole-vocabulary
    fallbacks)."""

    def __init__(self, llama, chain, grammar, need: int | None, window: int = WINDOW):
        import llama_cpp
        from llama_cpp._internals import LlamaTokenDataArray

        self._l, self.chain, self.need = llama_cpp, chain, need
        self._grammar = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar._grammar.encode(),
                                                             grammar._root.encode())
        self._n_vocab = llama.n_vocab()
        self._window = min(max(window, 4 * (need or 1)), self._n_vocab)
        self._all = LlamaTokenDataArray(n_vocab=self._n_vocab)
        self._some = _Candidates(llama_cpp, self._window)
        self.steps = self.full_scans = 0

    def _apply(self, sampler, array) -> None:
        self._l.llama_sampler_apply(sampler, ctypes.byref(array))

    def _windowed(self, logits: np.ndarray) -> int | None:
        top = np.argpartition(logits, -self._window)[-self._window:]
        top = top[np.argsort(-logits[top], kind="stable")]
        self._some.fill(top, logits[top])
        self._apply(self._grammar, self._some.array)
        allowed = top[np.isfinite(self._some.data["logit"][:len(top)])]
        if len(allowed) < self.need:
            return None
        keep = allowed[:self.need]
        self._some.fill(keep, logits[keep])
        self._apply(self.chain.sampler, self._some.array)
        return int(self._some.data["id"][self._some.array.selected])

    def _full(self, logits: np.ndarray) -> int:
        self.full_scans += 1
        self._all.copy_logits(logits)
        candidates = self._all.candidates
        candidates.selected = -1
        self._apply(self._grammar, candidates)
        self._apply(self.chain.sampler, candidates)
        return int(self._all.candidates_data.id[candidates.selected])

    def sample(self, ctx, idx: int = -1) -> int:
        logits = np.ctypeslib.as_array(self._l.llama_get_logits_ith(ctx.ctx, idx), shape=(self._n_vocab,))
        self.steps += 1
        token = self._windowed(logits) if self.need else None
        if token is None:
            token = self._full(logits)
        self._l.llama_sampler_accept(self._grammar, token)
        self._l.llama_sampler_accept(self.chain.sampler, token)
        return token

    def close(self) -> None:
        if self._grammar is not None:
            self._l.llama_sampler_free(self._grammar)
            self._grammar = None
        self.chain.close()

    def __del__(self) -> None:
        self.close()


def candidates_needed(temp: float = 0.8, top_k: int = 40, repeat_penalty: float = 1.0,
                      frequency_penalty: float = 0.0, presence_penalty: float = 0.0, mirostat_mode: int = 0,
                      logits_processor=None, **_) -> int | None:
    """How many best allowed tokens the library's chain can pick from (None: the shortcut would not be exact)."""
    if logits_processor is not None or mirostat_mode or (repeat_penalty, frequency_penalty,
                                                          presence_penalty) != (1.0, 0.0, 0.0):
        return None
    if temp == 0.0:
        return 1
    return top_k if temp > 0.0 and top_k > 0 else None


def checked_llama(llama_cpp) -> type:
    """A ``llama_cpp.Llama`` subclass that samples under a grammar with ``WindowedGrammar``."""

    class CheckedLlama(llama_cpp.Llama):
        def _init_sampler(self, *args, grammar=None, **kwargs):
            if args or grammar is None or not hasattr(grammar, "_grammar"):
                return super()._init_sampler(*args, grammar=grammar, **kwargs)
            chain = super()._init_sampler(grammar=None, **kwargs)
            return WindowedGrammar(self, chain, grammar, candidates_needed(**kwargs))

    return CheckedLlama
