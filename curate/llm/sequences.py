"""Many sequences per forward pass on llama.cpp: batched sampling and batched continuation scoring.

llama-cpp-python decodes one sequence at a time; on a CPU a small model's step then costs about as much for one
sequence as for dozens (the weights are read once per step either way). ``Sequences`` keeps a context of its own
beside a loaded ``llama_cpp.Llama`` (same weights, same LoRA adapter) with up to ``n_seq`` sequences in one unified
KV cache:

- ``sample(prompts, draws, max_tokens, stop)``: each prompt is evaluated once; each draw ``(prompt index,
  temperature, top_p, seed)`` then extends a copy of its prompt's cache, one token per draw per decode call. Greedy
  when the temperature is 0; otherwise a seeded draw from the tempered distribution restricted to the nucleus
  (``top_p``) of the ``TOP_K`` most likely tokens. A draw ends after a token whose text holds ``stop``, or at
  ``max_tokens``. Returns per draw its text (up to ``stop``), token ids, whether it stopped, and the mean
  log-probability of its tokens under the untempered model.
- ``score(prompts, items)``: each item ``(prompt index, text or token ids)`` is a continuation; returns the
  log-probability of each of its tokens after the prompt (text split from the prompt by ``base.split_tokens``, as
  ``curate.evaluate.loglik`` does). Items of one prompt share its evaluated cache.
- ``score_pairs(pairs)``: each ``(prompt, continuation)`` pair its own sequence, many pairs per decode call (for
  pairs that share no prompt, such as a dataset's questions and answers); same split and output as ``score``.

Results depend only on the call's inputs: every call starts from an empty cache and decodes its batches in the same
order, so the same call reproduces the same output (a resumed run writes the same rows).
"""

from __future__ import annotations

import ctypes

import numpy as np

from .base import split_tokens

TOP_K = 64


class Sequences:
    """Batched decoding beside a loaded ``llama_cpp.Llama`` (see the module docstring)."""

    def __init__(self, llama, n_seq: int = 64, n_ctx: int = 16384, n_batch: int = 1024):
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._utils import suppress_stdout_stderr

        self._lib = llama_cpp
        self.llama = llama
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_seq_max = min(n_seq, llama_cpp.llama_max_parallel_sequences())
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = llama.n_threads
        self.n_seq, self.n_batch, self.n_ctx = params.n_seq_max, n_batch, n_ctx
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs every adapted tensor to stderr
            self.ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
            adapter = getattr(llama, "_lora_adapter", None)
            failed = adapter is not None and llama_cpp.llama_set_adapters_lora(
                self.ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1,
                (ctypes.c_float * 1)(llama.lora_scale))
        if failed:
            raise RuntimeError("llama.cpp could not apply the LoRA adapter to the batched context")
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.n_vocab = llama._model.n_vocab()
        self._pieces: dict[int, str] = {}

    def close(self) -> None:
        if self.batch is not None:
            self._lib.llama_batch_free(self.batch)
            self.batch = None
        self.ctx.close()

    def tokenize(self, text: str, bos: bool) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self.llama.detokenize([token]).decode("utf-8", errors="replace")
        return self._pieces[token]

    def _decode(self, entries: list[tuple[int, int, int, bool]], pick: dict[int, int] | None = None) -> dict:
        """Decode (token, position, sequence, wants logits) entries in batches of ``n_batch``; returns entry index ->
        its log-softmax row (float32) for the entries that want one, or with ``pick`` ({entry index: token}) only
        that token's log-probability (a vocabulary row per scored token would not fit in memory for long texts)."""
        out: dict[int, np.ndarray | float] = {}
        for start in range(0, len(entries), self.n_batch):
            part = entries[start:start + self.n_batch]
            b = self.batch
            b.n_tokens = len(part)
            for i, (token, pos, seq, logits) in enumerate(part):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
                b.seq_id[i][0] = seq
            rc = self._lib.llama_decode(self.ctx.ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama.cpp could not decode a batch of {len(part)} tokens (code {rc})")
            for i, (_, _, _, logits) in enumerate(part):
                if logits:
                    row = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self.ctx.ctx, i),
                                                shape=(self.n_vocab,))
                    out[start + i] = _log_softmax(row) if pick is None else _logprob(row, pick[start + i])
        return out

    def _prompts(self, prompts: list[list[int]], first_seq: int) -> dict[int, np.ndarray]:
        """Evaluate prompts into sequences ``first_seq``, ``first_seq + 1``, ...; prompt index -> the log-softmax after
        its last token."""
        entries = [(t, pos, first_seq + p, pos == len(toks) - 1) for p, toks in enumerate(prompts)
                   for pos, t in enumerate(toks)]
        rows = self._decode(entries)
        ends = [k for k, e in enumerate(entries) if e[3]]
        return {p: rows[k] for p, k in enumerate(ends)}

    def _clear(self) -> None:
        self._lib.llama_memory_clear(self.ctx.memory, True)

    def sample(self, prompts: list[str], draws: list[tuple[int, float, float, int]], max_tokens: int,
               stop: str = "\n") -> list[dict]:
        """See the module docstring."""
        tokens = [self.tokenize(p, True) for p in prompts]
        results: list[dict] = [{}] * len(draws)
        for part in self._waves(draws):
            used = sorted({draws[d][0] for d in part})
            slots = {p: k for k, p in enumerate(used)}  # prompt sequences first, then one per draw
            self._clear()
            last = self._prompts([tokens[p] for p in used], 0)
            state = {}
            for k, d in enumerate(part):
                p, temperature, top_p, seed = draws[d]
                seq = len(used) + k
                self._lib.llama_memory_seq_cp(self.ctx.memory, slots[p], seq, -1, -1)
                state[d] = {"seq": seq, "pos": len(tokens[p]), "row": last[slots[p]], "rng": np.random.default_rng(seed),
                            "t": temperature, "top_p": top_p, "tokens": [], "logprobs": [], "stopped": False}
            active = list(part)
            while active:
                entries, order = [], []
                for d in active:
                    s = state[d]
                    token = _pick(s["row"], s["t"], s["top_p"], s["rng"])
                    s["tokens"].append(token)
                    s["logprobs"].append(float(s["row"][token]))
                    if stop in self.piece(token) or token == self.llama.token_eos():
                        s["stopped"] = True
                    elif len(s["tokens"]) < max_tokens:
                        entries.append((token, s["pos"], s["seq"], True))
                        order.append(d)
                        s["pos"] += 1
                rows = self._decode(entries)
                for k, d in enumerate(order):
                    state[d]["row"] = rows[k]
                active = order
            for d in part:
                s = state[d]
                text = "".join(self.piece(t) for t in s["tokens"])
                results[d] = {"text": text.split(stop)[0] if s["stopped"] else text, "ids": s["tokens"],
                              "stopped": s["stopped"], "mean_logprob": float(np.mean(s["logprobs"]))}
        self._clear()
        return results

    def _waves(self, draws: list[tuple]) -> list[list[int]]:
        """Draws in order, cut into waves whose prompts and draws fit the ``n_seq`` sequences together."""
        waves: list[list[int]] = [[]]
        prompts: set[int] = set()
        for d, draw in enumerate(draws):
            if len(waves[-1]) + 1 + len(prompts | {draw[0]}) > self.n_seq:
                waves.append([])
                prompts = set()
            waves[-1].append(d)
            prompts.add(draw[0])
        return [w for w in waves if w]

    def score(self, prompts: list[str], items: list[tuple[int, str | list[int]]]) -> list[list[float]]:
        """See the module docstring; an item's continuation may also be given as token ids."""
        heads = [self.tokenize(p, True) for p in prompts]
        tails = [split_tokens(self.tokenize, prompts[p], text)[1] if isinstance(text, str) else list(text)
                 for p, text in items]
        by_prompt: dict[int, list[int]] = {}
        for i, (p, _) in enumerate(items):
            by_prompt.setdefault(p, []).append(i)
        out: list[list[float]] = [[] for _ in items]
        for p, mine in sorted(by_prompt.items()):  # one prompt at a time: its cache is copied to its items' sequences
            width = self.n_seq - 1
            for wave in range(0, len(mine), width):
                part = mine[wave:wave + width]
                self._clear()
                last = self._prompts([heads[p]], 0)[0]
                entries, where = [], []
                for k, i in enumerate(part):
                    self._lib.llama_memory_seq_cp(self.ctx.memory, 0, k + 1, -1, -1)
                    for j, t in enumerate(tails[i][:-1]):
                        where.append((i, j + 1))
                        entries.append((t, len(heads[p]) + j, k + 1, True))
                    out[i] = [float(last[tails[i][0]])]
                rows = self._decode(entries)
                for k, (i, j) in enumerate(where):
                    out[i].append(float(rows[k][tails[i][j]]))
        self._clear()
        return out

    def score_pairs(self, pairs: list[tuple[str, str]]) -> list[list[float]]:
        """See the module docstring."""
        split = [split_tokens(self.tokenize, prompt, text) for prompt, text in pairs]
        out: list[list[float]] = [[] for _ in pairs]
        for wave in self._pair_waves([len(head) + len(tail) for head, tail in split]):
            self._clear()
            entries, targets = [], {}
            for seq, k in enumerate(wave):
                head, tail = split[k]
                tokens = head + tail
                for pos, token in enumerate(tokens[:-1]):
                    wanted = pos >= len(head) - 1
                    if wanted:
                        targets[len(entries)] = (k, tokens[pos + 1])
                    entries.append((token, pos, seq, wanted))
            picked = self._decode(entries, {e: token for e, (_, token) in targets.items()})
            for e, (k, _) in targets.items():
                out[k].append(picked[e])
        self._clear()
        return out

    def _pair_waves(self, lengths: list[int]) -> list[list[int]]:
        """Pair indices in order, cut into waves of at most ``n_seq`` sequences and ``n_ctx`` tokens."""
        waves: list[list[int]] = [[]]
        used = 0
        for k, n in enumerate(lengths):
            if waves[-1] and (len(waves[-1]) == self.n_seq or used + n > self.n_ctx):
                waves.append([])
                used = 0
            waves[-1].append(k)
            used += n
        return [w for w in waves if w]


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float32, copy=True)
    row -= row.max()
    row -= np.log(np.exp(row).sum())
    return row


def _logprob(row: np.ndarray, token: int) -> float:
    """``_log_softmax(row)[token]`` without building the whole row."""
    top = row.max()
    return float(row[token] - top - np.log(np.exp(row - top, dtype=np.float32).sum()))


def _pick(logprobs: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """The greedy token (temperature 0), or a seeded draw from the tempered nucleus of the ``TOP_K`` best."""
    if temperature <= 0:
        return int(np.argmax(logprobs))
    top = np.argpartition(logprobs, -TOP_K)[-TOP_K:]
    top = top[np.argsort(-logprobs[top], kind="stable")]
    weights = np.exp((logprobs[top] - logprobs[top[0]]) / temperature)
    weights /= weights.sum()
    keep = int(np.searchsorted(np.cumsum(weights), top_p) + 1)
    weights = weights[:keep] / weights[:keep].sum()
    return int(top[rng.choice(keep, p=weights)])
