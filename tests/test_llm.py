"""LLM backends against real things: the embedded Gemma 3 270M through llama.cpp, the same GGUF through transformers,
llama-cpp-python's OpenAI-compatible server in a subprocess, and a scripted local HTTP server for the failure paths
(rate limits, server errors, timeouts, concurrency, API-key hygiene)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curate.llm import LLMConfig, Sampling, TransientError, is_instruction_tuned, load_llm
from curate.llm.chat import fold_system, gemma_prompt
from curate.llm.openai import OpenAICompatibleLLM, OpenAIConfigError, backoff_delay, parse_retry_after, strict_schema
from curate.quality.judge import SCHEMA as JUDGE_SCHEMA

FEW_SHOT = ("Q: Which organ pumps blood around the body?\nA: The heart.\n\n"
            "Q: Which organ filters the blood to make urine?\nA: The kidneys.\n\n"
            "Q: Which organs take in oxygen when we breathe?\nA:")
QUESTIONS_PROMPT = ("Write two short patient questions about the topic as JSON.\n\n"
                    "Topic: asthma\n"
                    '{"questions": ["What triggers an asthma attack?", "How do I use an inhaler?"]}\n\n'
                    "Topic: diabetes\n"
                    '{"questions": ["What is a normal blood sugar level?", "Can diabetes be cured?"]}\n\n'
                    "Topic: migraine\n")
SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "minItems": 2, "maxItems": 3,
                                 "items": {"type": "string", "minLength": 5, "maxLength": 120}}},
    "required": ["questions"],
    "additionalProperties": False,
}
KEY = "sk-curate-test-7f3a9c1e5b"


def check_questions(text: str) -> list[str]:
    """json.loads the text and check it against SCHEMA by hand."""
    data = json.loads(text)
    assert isinstance(data, dict) and set(data) == {"questions"}, data
    questions = data["questions"]
    assert isinstance(questions, list) and 2 <= len(questions) <= 3, questions
    assert all(isinstance(q, str) and 5 <= len(q) <= 120 for q in questions), questions
    return questions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- config and pure helpers --------------------------------------------------------------------------------------

def test_config_validates_keys_and_backend_options():
    assert LLMConfig().backend == "llamacpp" and LLMConfig().model == LLMConfig(model=None).model == "embedded"
    with pytest.raises(ValueError, match="extra"):
        LLMConfig(modle="x")
    with pytest.raises(ValueError, match="base_url do not apply to backend 'llamacpp'"):
        LLMConfig(base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="needs base_url"):
        LLMConfig(backend="openai", model="m")
    with pytest.raises(ValueError, match="needs model"):
        LLMConfig(backend="openai", base_url="http://127.0.0.1:1")
    LLMConfig(backend="transformers", batch_size=4, dtype="float32", device="cpu")


@pytest.mark.parametrize("name, tuned", [
    ("embedded", False), ("google/gemma-3-270m", False), ("google/gemma-3n-E2B-it", True),
    ("google/medgemma-4b-it", True), ("/models/gemma-3-1b-it-Q4_K_M.gguf", True),
    ("Qwen2.5-7B-Instruct", True), ("google/gemma-3-4b-pt", False), ("/m/italian-base.gguf", False),
])
def test_instruction_tuned_guess(name, tuned):
    assert is_instruction_tuned(name) is tuned
    assert LLMConfig(model=name).is_instruction_tuned() is tuned
    assert LLMConfig(model=name, instruction_tuned=not tuned).is_instruction_tuned() is (not tuned)


def test_gemma_prompt_folds_system_into_first_user_turn():
    messages = [{"role": "system", "content": "You are a nurse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Fever?"}]
    assert [m["role"] for m in fold_system(messages)] == ["user", "assistant", "user"]
    assert gemma_prompt(messages) == ("<start_of_turn>user\nYou are a nurse.\n\nHi<end_of_turn>\n"
                                      "<start_of_turn>model\nHello<end_of_turn>\n"
                                      "<start_of_turn>user\nFever?<end_of_turn>\n<start_of_turn>model\n")
    assert messages[1]["content"] == "Hi"  # the caller's messages are not modified
    with pytest.raises(ValueError, match="role 'tool'"):
        gemma_prompt([{"role": "tool", "content": "x"}])


def test_missing_llama_cpp_names_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ImportError, match=r"pip install 'curate\[embedded\]'"):
        load_llm()


def test_default_threads_take_an_executors_budget_then_the_physical_cores(monkeypatch):
    import os

    from curate.llm.llamacpp import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the process and Ray executors set this per worker
    assert default_threads() == 3
    for unset in ("", "0", "auto"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        cores = default_threads()
        assert 1 <= cores <= len(os.sched_getaffinity(0))
    siblings = {open(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list").read()
                for c in os.sched_getaffinity(0)}
    assert cores == len(siblings)  # one thread per core, not per hyper-thread; never half of a machine without them


def test_backoff_and_retry_after():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 9 < parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))) <= 10
    assert backoff_delay(0, 0.5, 30, retry_after=2.5) == 2.5
    for attempt in range(8):
        delay = backoff_delay(attempt, 0.5, 4.0)
        cap = min(4.0, 0.5 * 2 ** attempt)
        assert cap / 2 <= delay <= cap


# ---- the embedded Gemma through llama.cpp -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemma():
    llm = load_llm(LLMConfig())
    yield llm
    llm.close()


def test_embedded_few_shot(gemma):
    assert gemma.describe() == {"backend": "llamacpp", "model": "embedded", "instruction_tuned": False,
                                "gguf": "gemma-3-270m-q4_k_m.gguf"}
    out = gemma.generate(FEW_SHOT, Sampling(max_tokens=16, temperature=0, stop=("\n",)))
    assert out.text.strip() and "\n" not in out.text
    assert "lung" in out.text.lower(), out.text
    assert out.prompt_tokens > 40 and 0 < out.completion_tokens <= 16
    assert out.finish_reason == "stop" and out.error is None


def test_embedded_json_schema(gemma):
    out = gemma.generate(QUESTIONS_PROMPT, Sampling(max_tokens=160, temperature=0.7, seed=3), json_schema=SCHEMA)
    assert out.finish_reason == "stop", out
    check_questions(out.text)
    assert gemma.grammar(SCHEMA) is gemma.grammar(json.loads(json.dumps(SCHEMA)))  # compiled once per schema


def test_windowed_grammar_sampling_gives_the_library_tokens_and_keeps_the_schema(gemma):
    """The shipped path asks the grammar about the best few hundred tokens instead of all 262k: greedy and seeded
    sampled output equal llama-cpp-python's own grammar sampling token for token, and an answer the model would
    never write unprompted is still forced (through the whole-vocabulary fallback)."""
    from curate.llm.llamacpp import LlamaCppLLM

    assert gemma.grammar_checked
    library = LlamaCppLLM(check_grammar_after_sampling=False)
    try:
        for sampling in (Sampling(max_tokens=60, temperature=0), Sampling(max_tokens=60, temperature=0.8, seed=7)):
            ours, theirs = (m.generate(QUESTIONS_PROMPT, sampling, json_schema=SCHEMA) for m in (gemma, library))
            assert (ours.text, ours.completion_tokens) == (theirs.text, theirs.completion_tokens), sampling
            sampler = gemma._llm._sampler
            assert sampler.steps >= ours.completion_tokens > sampler.full_scans  # mostly windowed
    finally:
        library.close()
    forced = {"type": "object", "properties": {"code": {"enum": ["zebra-42"]}}, "required": ["code"],
              "additionalProperties": False}
    out = gemma.generate(FEW_SHOT, Sampling(max_tokens=40, temperature=1.0, seed=5), json_schema=forced)
    assert json.loads(out.text) == {"code": "zebra-42"} and out.finish_reason == "stop"
    assert gemma._llm._sampler.full_scans >= 1


def test_embedded_seed_reproducible(gemma):
    sampling = Sampling(max_tokens=24, temperature=1.0, seed=123)
    first = gemma.generate(FEW_SHOT, sampling).text
    gemma.generate("Unrelated text to move the KV cache: the liver", Sampling(max_tokens=4))
    assert gemma.generate(FEW_SHOT, sampling).text == first
    others = {gemma.generate(FEW_SHOT, Sampling(max_tokens=24, temperature=1.0, seed=s)).text for s in (7, 8, 9)}
    assert len(others | {first}) > 1  # the seed does steer sampling


def test_embedded_batch_and_chat(gemma):
    sampling = Sampling(max_tokens=12, temperature=0.8, seed=5)
    prompts = [FEW_SHOT, FEW_SHOT.replace("oxygen", "air"),
               [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is a fever?"}]]
    outs = gemma.generate_batch(prompts, sampling)
    assert len(outs) == 3 and all(o.completion_tokens > 0 and o.finish_reason in ("stop", "length") for o in outs)
    assert outs[0].text == gemma.generate(prompts[0], sampling).text  # batching does not change an item's output
    assert gemma.generate_batch([], sampling) == []


def test_embedded_prompt_too_long_is_an_item_error(gemma):
    out = gemma.generate("word " * 6000, Sampling(max_tokens=4))
    assert out.finish_reason == "error" and "context window" in out.error and out.text == ""


# ---- transformers on the same GGUF -----------------------------------------------------------------------------

@pytest.mark.slow
def test_transformers_gguf_dequantized_cache(tmp_path, request):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    config = {"backend": "transformers", "cache_dir": str(tmp_path), "device": "cpu", "batch_size": 2,
              "n_threads": 1}
    first = load_llm(config)  # dequantizes the GGUF (about a minute) and writes the cache
    assert first.describe()["dtype"] == "bfloat16"
    written = list(tmp_path.glob("*/bfloat16/model.safetensors"))
    assert len(written) == 1 and not list(tmp_path.glob("*/.*"))  # renamed into place, no temporary left
    out = first.generate(FEW_SHOT, Sampling(max_tokens=12, temperature=0, stop=("\n",)))
    assert out.text.strip() and "\n" not in out.text and out.finish_reason == "stop", out
    assert out.prompt_tokens > 40 and 0 < out.completion_tokens <= 12
    outs = first.generate_batch([FEW_SHOT, "The main symptoms of influenza are", "Anaemia is"],
                                Sampling(max_tokens=8, temperature=0.7, seed=1))
    assert len(outs) == 3 and all(o.text.strip() and o.completion_tokens > 0 for o in outs), outs

    start = time.monotonic()
    second = load_llm(config)
    assert time.monotonic() - start < 30
    assert torch.equal(first.next_token_logits(FEW_SHOT), second.next_token_logits(FEW_SHOT))
    first.close()
    second.close()


# ---- llama-cpp-python's OpenAI-compatible server ------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app", reason="pip install 'curate[server]'")
    import httpx

    from curate.llm.llamacpp import embedded_gguf

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--chat_format", "gemma",
           "--api_key", KEY, "--verbose", "False"]
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with open(log_path, "w") as log_file:  # a file, not a pipe: an unread pipe fills up and stalls the server
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"llama_cpp.server did not start: {log_path.read_text()[-2000:]}"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_openai_against_llama_cpp_server(llama_server, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    llm = load_llm({"backend": "openai", "model": "gemma-3-270m", "base_url": llama_server,
                    "api_key_env": "CURATE_TEST_KEY", "concurrency": 2, "json_mode": "json_object"})
    few_shot, chat = llm.generate_batch(
        [FEW_SHOT, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is asthma?"}]],
        Sampling(max_tokens=16, temperature=0, stop=("\n",)))
    assert "lung" in few_shot.text.lower() and few_shot.prompt_tokens > 40 and few_shot.completion_tokens > 0
    assert chat.completion_tokens > 0 and chat.finish_reason in ("stop", "length")
    # llama-cpp-python's server enforces a schema (as a grammar) on chat/completions only; its completions
    # endpoint ignores response_format, so the structured call is a chat call.
    structured = llm.generate([{"role": "user", "content": QUESTIONS_PROMPT}], Sampling(max_tokens=160, seed=3),
                              json_schema=SCHEMA)
    assert structured.finish_reason == "stop", structured
    check_questions(structured.text)


def test_openai_config_errors_from_llama_cpp_server(llama_server, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", "sk-wrong-key-000")
    wrong_key = load_llm({"backend": "openai", "model": "m", "base_url": llama_server,
                          "api_key_env": "CURATE_TEST_KEY", "max_retries": 0})
    with pytest.raises(OpenAIConfigError, match=r"HTTP 401.*API key from \$CURATE_TEST_KEY") as info:
        wrong_key.generate("Hello", Sampling(max_tokens=2))
    assert "sk-wrong-key-000" not in str(info.value)
    # This server only knows the json_object dialect: the OpenAI one is a request error, reported with the fix.
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    strict = load_llm({"backend": "openai", "model": "m", "base_url": llama_server, "api_key_env": "CURATE_TEST_KEY"})
    with pytest.raises(OpenAIConfigError, match="json_mode"):
        strict.generate([{"role": "user", "content": "Hi"}], Sampling(max_tokens=8), json_schema=SCHEMA)


# ---- a scripted server for the failure paths ----------------------------------------------------------------------

class Script:
    """What the scripted server answers, and what it saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.respond = lambda n, req: (200, {}, completion(req))


def completion(req: dict, finish: str = "stop") -> dict:
    body = req["body"]
    text = f"echo {body.get('prompt') or body['messages'][-1]['content']}"
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    if "messages" in body:
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage}
    return {"choices": [{"text": text, "finish_reason": finish}], "usage": usage}


class ScriptedHandler(BaseHTTPRequestHandler):
    script: Script

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        script = self.script  # the script of the test that sent it, even if it answers after that test ended
        req = {"path": self.path, "body": body, "auth": self.headers.get("Authorization"), "t": time.monotonic()}
        with script.lock:
            script.requests.append(req)
            n = len(script.requests)
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            status, headers, payload = script.respond(n, req)
            time.sleep(float(headers.pop("x-delay", 0)))
        finally:  # done before its answer is written, so the client's next request never overlaps it in the count
            with script.lock:
                script.in_flight -= 1
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # a client that timed out closed the socket under a sleeping handler


@pytest.fixture(scope="module")
def scripted_server():
    handler = type("Handler", (ScriptedHandler,), {"script": Script()})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def scripted(scripted_server):
    server, handler = scripted_server
    handler.script = Script()
    return f"http://127.0.0.1:{server.server_address[1]}", handler.script


def client(url: str, **options) -> OpenAICompatibleLLM:
    options = {"backoff_base": 0.05, "backoff_max": 0.2, "max_retries": 3, **options}
    return OpenAICompatibleLLM(options.pop("model", "google/gemma-3-4b-it"), base_url=url, **options)


def test_request_shapes(scripted):
    url, script = scripted
    llm = client(url + "/v1")
    out = llm.generate("Q: fever?\nA:", Sampling(max_tokens=9, temperature=0.3, seed=11, stop=("\n",)),
                       json_schema=SCHEMA)
    chat = llm.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.finish_reason) == ("echo Q: fever?\nA:", 7, 3,
                                                                                       "stop")
    first, second = script.requests
    assert first["path"] == "/v1/completions" and second["path"] == "/v1/chat/completions"
    assert {k: first["body"][k] for k in ("model", "max_tokens", "temperature", "seed", "stop")} == {
        "model": "google/gemma-3-4b-it", "max_tokens": 9, "temperature": 0.3, "seed": 11, "stop": ["\n"]}
    assert first["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    assert second["body"]["messages"] == [{"role": "user", "content": "Be brief.\n\nHi"}]  # Gemma: folded
    assert "response_format" not in second["body"] and chat.text == "echo Be brief.\n\nHi"

    off = client(url, json_mode="off")  # base_url without /v1 gets it appended
    script.respond = lambda n, req: (200, {}, completion(req, finish="length"))
    capped = off.generate("x", json_schema=SCHEMA)
    assert script.requests[-1]["path"] == "/v1/completions" and "response_format" not in script.requests[-1]["body"]
    assert capped.finish_reason == "length"


def test_strict_json_schema_closes_every_object(scripted):
    url, script = scripted
    client(url).generate("Grade it.", json_schema=JUDGE_SCHEMA)
    sent = script.requests[-1]["body"]["response_format"]["json_schema"]
    assert sent["strict"] and sent["schema"] == {**JUDGE_SCHEMA, "additionalProperties": False}
    assert "additionalProperties" not in JUDGE_SCHEMA  # the caller's schema is not changed
    nested = {"type": "object", "$defs": {"cite": {"type": "object", "properties": {"page": {"type": "integer"}}}},
              "properties": {"properties": {"type": "string"},  # a field named like the keyword
                             "answers": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/cite"},
                                                                             {"type": "object", "properties": {}}]}}}}
    closed = strict_schema(nested)
    assert closed["additionalProperties"] is False and closed["$defs"]["cite"]["additionalProperties"] is False
    assert closed["properties"]["properties"] == {"type": "string"}
    assert [s.get("additionalProperties") for s in closed["properties"]["answers"]["items"]["anyOf"]] == [None, False]


def test_retries_honour_retry_after_then_succeed(scripted):
    url, script = scripted
    answers = {1: (429, {"Retry-After": "1"}, {"error": "rate limited"}), 2: (500, {}, {"error": "boom"})}
    script.respond = lambda n, req: answers.get(n, (200, {}, completion(req)))
    out = client(url).generate("hello")
    assert out.text == "echo hello" and out.finish_reason == "stop"
    times = [r["t"] for r in script.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95  # waited the server's Retry-After
    assert times[2] - times[1] < 0.9  # a 500 without Retry-After backs off briefly


def test_exhausted_retries_raise_transient_with_partial_results(scripted):
    url, script = scripted
    script.respond = lambda n, req: ((503, {}, {"error": "overloaded"}) if "fail" in req["body"]["prompt"]
                                     else (200, {}, completion(req)))
    with pytest.raises(TransientError, match="1 of 3 requests") as info:
        client(url, max_retries=2).generate_batch(["ok 1", "fail", "ok 2"])
    assert "HTTP 503" in str(info.value) and "3 attempts" in str(info.value)
    assert [g.text if g else None for g in info.value.partial] == ["echo ok 1", None, "echo ok 2"]
    assert sum("fail" in r["body"]["prompt"] for r in script.requests) == 3  # 1 try + 2 retries, then gave up


def test_permanent_item_error_is_not_retried(scripted):
    url, script = scripted
    script.respond = lambda n, req: ((400, {}, {"error": "prompt is longer than the context"})
                                     if "long" in req["body"]["prompt"] else (200, {}, completion(req)))
    bad, good = client(url).generate_batch(["long prompt", "short prompt"])
    assert bad.finish_reason == "error" and "HTTP 400" in bad.error and "context" in bad.error and bad.text == ""
    assert good.text == "echo short prompt" and good.error is None
    assert len(script.requests) == 2


def test_concurrency_is_bounded_and_order_kept(scripted):
    url, script = scripted
    three_open = threading.Event()

    def respond(n, req):  # hold every answer until three requests were open at once, however slow the machine
        with script.lock:
            if script.in_flight >= 3:
                three_open.set()
        three_open.wait(timeout=5)
        return 200, {"x-delay": 0.05}, completion(req)

    script.respond = respond
    prompts = [f"p{i}" for i in range(10)]
    outs = client(url, concurrency=3).generate_batch(prompts)
    assert [o.text for o in outs] == [f"echo {p}" for p in prompts]
    assert script.max_in_flight == 3


def test_timeout_is_transient(scripted):
    url, script = scripted
    script.respond = lambda n, req: (200, {"x-delay": 6}, completion(req))
    start = time.monotonic()
    with pytest.raises(TransientError, match="timed out after 0.3s"):
        client(url, timeout=0.3, max_retries=1).generate("slow")
    assert time.monotonic() - start < 4 and len(script.requests) == 2  # two tries, neither waited for the answer


def test_connection_refused_is_transient():
    with pytest.raises(TransientError, match="connection error"):
        client(f"http://127.0.0.1:{free_port()}", max_retries=1).generate("anyone?")


def test_api_key_never_logged_or_raised(scripted, monkeypatch, caplog):
    url, script = scripted
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    llm = load_llm({"backend": "openai", "model": "m", "base_url": url, "api_key_env": "CURATE_TEST_KEY",
                    "max_retries": 1})
    llm.backoff_base = 0.05
    assert llm.generate("hi").text == "echo hi"
    assert script.requests[0]["auth"] == f"Bearer {KEY}"  # it is sent ...

    echo_auth = lambda status: lambda n, req: (status, {}, {"error": f"bad credentials {req['auth']}"})
    script.respond = echo_auth(401)
    with pytest.raises(OpenAIConfigError) as config_error:
        llm.generate("hi")
    script.respond = echo_auth(503)
    with pytest.raises(TransientError) as transient:
        llm.generate("hi")
    assert "bad credentials Bearer ***" in str(config_error.value) and "HTTP 503" in str(transient.value)
    assert "POST" in caplog.text and "retrying" in caplog.text  # the DEBUG records were captured ...
    for text in (caplog.text, str(config_error.value), str(transient.value), repr(llm), str(llm.describe())):
        assert KEY not in text  # ... and the key is in none of them


def test_sync_call_inside_a_running_event_loop(scripted):
    url, _ = scripted
    llm = client(url)

    async def inside():
        return llm.generate_batch(["a", "b"])

    assert [o.text for o in asyncio.run(inside())] == ["echo a", "echo b"]
    assert [o.text for o in asyncio.run(llm.agenerate_batch(["c"]))] == ["echo c"]


def test_synth_qa_keeps_a_failed_batchs_finished_generations(scripted):
    """A batch whose one request exhausts the backend's retries: synth_qa keeps the other answers (each requested
    once) and asks again only for the failed prompt, with the same seed; a prompt that never succeeds still raises."""
    from curate.rag.synth import SamplingConfig, SynthQA

    url, script = scripted
    failures = {"flaky": 3}  # 1 try + 2 retries: the backend gives up once, then the server recovers

    def respond(n, req):
        prompt = req["body"]["prompt"]
        if failures.get(prompt, 0) > 0:
            failures[prompt] -= 1
            return 503, {}, {"error": "overloaded"}
        return 200, {}, completion(req)

    script.respond = respond
    stage = SynthQA({"max_retries": 0})
    stage.llm = client(url, max_retries=2)
    out = stage._generate(["ok 1", "flaky", "ok 2"], "chunk-1", SamplingConfig(), {}, lambda text: text)
    assert [parsed for parsed, _ in out] == ["echo ok 1", "echo flaky", "echo ok 2"]
    sent = [r["body"]["prompt"] for r in script.requests]
    assert sent.count("ok 1") == sent.count("ok 2") == 1 and sent.count("flaky") == 4
    assert len({r["body"]["seed"] for r in script.requests}) == 1
    assert stage.counters["tokens_generated"] == 9

    failures["down"] = 99
    with pytest.raises(TransientError, match="1 of 1 requests"):
        stage._generate(["down"], "chunk-2", SamplingConfig(), {}, lambda text: text)
