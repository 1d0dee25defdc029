"""`veclut serve` and `veclut generate` as real processes on loopback: the OpenAI endpoints with
both engines, streaming, concurrent clients, bad requests, bad model files. Every server is
started on a free port, waited for with a bounded timeout and stopped by its fixture."""

import json
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import ROOT, run_veclut
from serving import HOST, Server, free_port, sse_events

pytestmark = pytest.mark.build

KEY = "test-key"
CTX = 256  # the fixture's training context
CLIENTS, REQUESTS_EACH, TOKENS = 8, 3, 12


@pytest.fixture(scope="module")
def python_server(models):
    server = Server(models["I2_V"], "--threads", "2", api_key=KEY)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def native_server(models):
    # a connection per request: llama-server now and then closes a kept-alive connection after a
    # streamed answer without saying so, and the next request on it fails before reaching the
    # server (OpenAI clients retry that; see README)
    server = Server(models["I2_V"], "--engine", "native", "--parallel", "4", "--threads", "2", api_key=KEY,
                    keepalive=False)
    yield server
    server.stop()


def _complete(client, **body):
    response = client.post("/v1/completions", json={"max_tokens": TOKENS, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _chat(client, **body):
    response = client.post("/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": "Who is there?"}], "max_tokens": TOKENS, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _stream(client, path: str, body: dict) -> list[dict]:
    with client.stream("POST", path, json={"max_tokens": TOKENS, "stream": True, **body}) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]


def _check_endpoints(server: Server, name: str = "fixture-i2_v") -> None:
    with server.client() as client:
        listed = client.get("/v1/models").json()
        assert [m["id"] for m in listed["data"]] == [name]

        done = _complete(client, prompt="ROMEO.\n", temperature=0)
        choice = done["choices"][0]
        assert choice["text"] and choice["finish_reason"] == "length"
        assert done["usage"]["completion_tokens"] >= TOKENS  # llama-cpp-python may finish a split UTF-8 character

        # the fixture's GGUF has no chat template: each engine's default format applies
        chat = _chat(client, temperature=0)["choices"][0]
        assert chat["message"]["role"] == "assistant" and chat["message"]["content"]
        assert chat["finish_reason"] == "length"

        chunks = _stream(client, "/v1/completions", {"prompt": "ROMEO.\n", "temperature": 0})
        assert len(chunks) >= 2
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert "".join(c["choices"][0]["text"] for c in chunks)

        chunks = _stream(client, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Who is there?"}]})
        assert len(chunks) >= 2
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def _concurrent(server: Server) -> None:
    """CLIENTS threads, each with its own connection, REQUESTS_EACH mixed requests."""

    def client_work(i: int) -> int:
        answered = 0
        with server.client(timeout=300) as client:
            for j in range(REQUESTS_EACH):
                kind = (i + j) % 3
                if kind == 0:
                    done = _complete(client, prompt=f"KING {i}.\n", seed=i)
                    assert done["usage"]["completion_tokens"] >= TOKENS  # llama-cpp-python may finish a split UTF-8 character
                    assert done["choices"][0]["finish_reason"] == "length"
                elif kind == 1:
                    assert _chat(client, seed=i)["choices"][0]["finish_reason"] == "length"
                else:
                    chunks = _stream(client, "/v1/completions", {"prompt": f"QUEEN {i}.\n", "seed": i})
                    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
                answered += 1
        return answered

    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = list(pool.map(client_work, range(CLIENTS)))
    assert answered == [REQUESTS_EACH] * CLIENTS
    assert server.alive()


# -- python engine (llama-cpp-python's server) --------------------------------------------------

def test_generate_equals_server_at_temperature_0(python_server, models):
    """First request on a fresh server (no cached prompt): the same settings and sampling
    defaults as `veclut generate`, so the same text."""
    with python_server.client() as client:
        served = _complete(client, prompt="JULIET.\n", max_tokens=48, temperature=0, seed=7)["choices"][0]["text"]
    result = run_veclut("generate", str(models["I2_V"]), "-p", "JULIET.\n", "-n", "48", "--temp", "0", "--seed", "7",
                        "--threads", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == served + "\n"
    assert len(served) > 10


def test_python_engine_endpoints(python_server):
    _check_endpoints(python_server)


def test_python_engine_concurrent_clients(python_server):
    _concurrent(python_server)


@pytest.mark.parametrize("case", ["malformed JSON", "not an object", "bad field", "unknown model", "too long",
                                  "wrong key", "no key", "huge body", "huge prompt"])
def test_python_engine_refuses_bad_requests_and_keeps_serving(python_server, case):
    body = {"prompt": "ROMEO.\n", "max_tokens": 4}
    headers = dict(python_server.headers, **{"Content-Type": "application/json"})
    raw, expected = None, 400
    if case == "malformed JSON":
        raw = b'{"prompt": "ROMEO.'
    elif case == "not an object":
        raw = b"[1, 2]"
    elif case == "bad field":
        body["max_tokens"] = -5
    elif case == "unknown model":
        body["model"], expected = "gpt-4", 404
    elif case == "huge body":  # announced, never sent: the gate answers from the header
        raw, expected = b"{}", 413
        headers["Content-Length"] = str(64 << 20)
    elif case == "too long":
        body["prompt"] = "O Romeo, Romeo! " * 40  # ~900 tokens > 256
    elif case == "huge prompt":  # 16 MiB: refused before it is tokenized
        body["prompt"] = "O Romeo, Romeo! " * (1 << 20)
        expected = 413
    elif case == "wrong key":
        headers["Authorization"], expected = "Bearer nope", 401
    else:
        del headers["Authorization"]
        expected = 401
    content = raw if raw is not None else json.dumps(body).encode()
    if case == "huge body":
        response = _raw_post(python_server, "/v1/completions", headers, content)
    else:
        response = httpx.post(f"{python_server.base}/v1/completions", content=content, headers=headers, timeout=60)
    assert response.status_code == expected, response.text
    if expected != 401:  # OpenAI's error shape
        assert response.json()["error"]["message"]
    if case == "unknown model":  # the alias, never where the model file lies
        message = response.json()["error"]["message"]
        assert "'fixture-i2_v'" in message and ".gguf" not in message and str(ROOT) not in message
    assert python_server.alive()
    with python_server.client() as client:
        assert _complete(client, prompt="ROMEO.\n")["choices"][0]["finish_reason"] == "length"


def _raw_post(server: Server, path: str, headers: dict, content: bytes) -> httpx.Response:
    """A POST whose Content-Length may differ from what is sent (httpx would correct it)."""
    with socket.create_connection((HOST, server.port), timeout=60) as conn:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": HOST, "Connection": "close", **headers}.items())
        conn.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + content)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return httpx.Response(int(status_line.split()[1]), content=body)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_server_even_mid_request(models, sig):
    """A client that sends half a request and waits holds uvicorn's graceful shutdown forever (as a
    request stuck in llama.cpp did); the server must end anyway, that request with a closed
    connection. The 60 s wait only bounds the test: the server gives up on requests after
    server_app.STOP_GRACE seconds."""
    server = Server(models["I2_V"], "--threads", "2")
    try:
        with socket.create_connection((HOST, server.port), timeout=60) as stalled:
            stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1000\r\n\r\n{\"prompt\": ")
            with server.client() as client:  # answered after the server took in the stalled request
                assert client.get("/v1/models").status_code == 200
            server.proc.send_signal(sig)
            try:
                code = server.proc.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server was still running 60 s after {sig.name} with a request in flight")
            assert stalled.recv(4096).startswith(b"HTTP/1.1 503 "), "the stalled request is told the server stops"
        assert code in (-sig, 128 + sig), server.output()[-2000:]
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def _disconnect_mid_stream(server: Server) -> None:
    with server.client() as client:
        with client.stream("POST", "/v1/completions",
                           json={"prompt": "ROMEO.\n", "max_tokens": 200, "stream": True}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            got = [line for line, _ in zip(lines, range(6)) if line.startswith("data:")]
            assert got  # some chunks arrived; leaving the block closes the connection mid-stream
    assert server.alive()
    with server.client() as client:
        assert _complete(client, prompt="ROMEO.\n")["choices"][0]["finish_reason"] == "length"
        assert _stream(client, "/v1/completions", {"prompt": "ROMEO.\n"})[-1]["choices"][0]["finish_reason"] == "length"


def test_python_engine_survives_a_client_leaving_mid_stream(python_server):
    _disconnect_mid_stream(python_server)


@pytest.mark.parametrize("type_name", ["I1_V", "TQ2_0", "TQ1_0"])
def test_other_types_serve(models, type_name):
    """I2_V is served above; the other ternary types (new and upstream) answer the same way."""
    server = Server(models[type_name], "--threads", "2", "--alias", f"shakespeare-{type_name}")
    try:
        _check_endpoints(server, f"shakespeare-{type_name}")
    finally:
        server.stop()


# -- native engine (patched llama-server, continuous batching) ----------------------------------

def test_native_engine_endpoints(native_server):
    _check_endpoints(native_server)


def test_native_engine_concurrent_clients(native_server):
    _concurrent(native_server)


def test_native_engine_survives_a_client_leaving_mid_stream(native_server):
    _disconnect_mid_stream(native_server)


@pytest.mark.parametrize("case", ["too long", "wrong key", "malformed JSON", "not an object", "huge prompt",
                                  "huge chat message", "huge tokenize", "huge tokenize parts",
                                  "malformed tokenize", "detokenize wrong type"])
def test_native_engine_refuses_bad_requests_and_keeps_serving(native_server, case):
    headers = dict(native_server.headers, **{"Content-Type": "application/json"})
    path, body = "/v1/completions", {"prompt": "O Romeo, Romeo! " * 40, "max_tokens": 4}
    content = json.dumps(body).encode()
    if case == "wrong key":
        headers["Authorization"] = "Bearer nope"
    elif case == "malformed JSON":
        content = b'{"prompt": "ROMEO.'
    elif case == "huge prompt":  # 4 MiB: without patch 0011 tokenized for an hour before its 400
        content = json.dumps(dict(body, prompt="O Romeo, Romeo! " * (1 << 18))).encode()
    elif case == "not an object":  # JSON of the wrong shape (the completions handler's own catch: 400)
        content = b'["ROMEO."]'
    elif case == "huge chat message":
        path = "/v1/chat/completions"
        content = json.dumps({"messages": [{"role": "user", "content": "O Romeo, Romeo! " * (1 << 18)}],
                              "max_tokens": 4}).encode()
    elif case == "huge tokenize":  # /tokenize had no bound: 4 MiB held a core for an hour
        path, content = "/tokenize", json.dumps({"content": "O Romeo, Romeo! " * (1 << 18)}).encode()
    elif case == "huge tokenize parts":  # token ids and strings mixed, as tokenize_mixed takes them
        path, content = "/tokenize", json.dumps({"content": [1, "O Romeo, Romeo! " * (1 << 18)]}).encode()
    elif case == "malformed tokenize":
        path, content = "/tokenize", b'{"content": "ROMEO.'
    elif case == "detokenize wrong type":  # a value of the wrong type where a key is read with .at()
        path, content = "/detokenize", json.dumps({"tokens": "ROMEO."}).encode()
    response = httpx.post(f"{native_server.base}{path}", content=content, headers=headers, timeout=60)
    # patch 0013: upstream answers a body that is not JSON, or JSON of the wrong shape, with a 500
    assert response.status_code == (401 if case == "wrong key" else 400), response.text
    if case not in ("wrong key", "too long"):
        assert response.json()["error"]["type"] == "invalid_request_error"
    if case in ("malformed JSON", "malformed tokenize", "detokenize wrong type"):
        assert "the request body is not a valid JSON request" in response.json()["error"]["message"]
    if case.startswith("huge"):  # refused by its size, before it was tokenized
        assert "bytes, more than the 16384 this server takes" in response.json()["error"]["message"]
    assert native_server.alive()
    with native_server.client() as client:
        assert _complete(client, prompt="ROMEO.\n")["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_native_engine_under_load(models, sig):
    """llama-server (exec'd by `veclut serve`) must end within seconds of a stop signal while
    clients keep streaming answers into all its slots. Without patch 0014 it waited for every
    client to give up (still running after 30 s); with it, about a second (requests still waiting
    get a 503, seen with curl: not asserted here, whether one is waiting at the signal is timing)."""
    server = Server(models["I2_V"], "--engine", "native", "--parallel", "4", "--threads", "2", keepalive=False)
    stop, streamed = threading.Event(), []

    def client_work(i: int) -> None:
        with server.client(timeout=30) as client:
            while not stop.is_set():
                try:
                    with client.stream("POST", "/v1/completions", json={"prompt": f"KING {i}.\n", "max_tokens": 200,
                                                                        "stream": True, "seed": i}) as response:
                        for line in response.iter_lines():
                            streamed.append(line)
                except httpx.HTTPError:
                    return  # the server went away mid-request: expected once it stops

    pool = ThreadPoolExecutor(6)
    try:
        for i in range(6):
            pool.submit(client_work, i)
        deadline = time.monotonic() + 60
        while len(streamed) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(streamed) >= 100, f"the clients were streaming before the signal:\n{server.output()[-2000:]}"
        server.proc.send_signal(sig)
        try:
            code = server.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"llama-server was still running 30 s after {sig.name} with 6 clients streaming")
        assert code in (0, -sig, 128 + sig), server.output()[-2000:]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base}/health", timeout=5)
    finally:
        stop.set()
        server.stop()
        pool.shutdown()


# -- bad model files: one sentence, non-zero exit, nothing started ------------------------------

@pytest.fixture(scope="module")
def bad_models(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("bad-models")
    whole = models["I2_V"].read_bytes()
    files = {"missing": work / "missing.gguf", "truncated": work / "truncated.gguf", "not GGUF": work / "notes.gguf",
             "empty": work / "empty.gguf", "header only": work / "header.gguf"}
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    files["header only"].write_bytes(whole[:4096])
    files["not GGUF"].write_text("not a model\n")
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize("command", ["serve", "serve-native", "generate"])
@pytest.mark.parametrize("kind", ["missing", "truncated", "not GGUF", "empty", "header only"])
def test_bad_model_file_is_one_sentence(bad_models, command, kind):
    path = str(bad_models[kind])
    args = {"serve": ("serve", path, "--port", str(free_port())),
            "serve-native": ("serve", path, "--engine", "native", "--port", str(free_port())),
            "generate": ("generate", path, "-p", "x")}[command]
    result = run_veclut(*args, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("veclut: error:"), result.stderr
    word = {"missing": "does not exist", "truncated": "truncated", "not GGUF": "not a GGUF",
            "empty": "not a GGUF", "header only": "truncated"}[kind]
    assert word in lines[0] and path in lines[0]


def test_port_in_use_is_one_sentence(models, python_server):
    result = run_veclut("serve", str(models["I2_V"]), "--port", str(python_server.port), timeout=60)
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1" in result.stderr and "choose another --port" in result.stderr


def test_parallel_needs_the_native_engine(models):
    result = run_veclut("serve", str(models["I2_V"]), "--parallel", "4", timeout=60)
    assert result.returncode == 1 and "--parallel needs --engine native" in result.stderr


def test_generate_prompt_longer_than_context(models):
    result = run_veclut("generate", str(models["I2_V"]), "-p", "O Romeo! " * 60, timeout=120)
    assert result.returncode == 1
    assert "exceed context window" in result.stderr and "--ctx" in result.stderr


def test_serve_help_names_both_engines():
    result = run_veclut("serve", "--help", timeout=60)
    assert result.returncode == 0 and "--engine {python,native}" in result.stdout


def test_unknown_chat_format_is_refused_before_start(models):
    result = run_veclut("serve", str(models["I2_V"]), "--chat-format", "nonsense", "--port", str(free_port()), timeout=60)
    assert result.returncode == 1
    assert "unknown chat format nonsense" in result.stderr and "chatml" in result.stderr
