"""The python engine's layer around llama-cpp-python's app (veclut.server_app). The request gate
as plain ASGI: what it lets through to the app and what it answers itself, and how much of a
body it reads; the app behind it is a stub that records what reached it. And the server's stop:
a stub app whose request blocks a worker thread, on loopback. No model is loaded."""

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from serving import HOST, free_port
from veclut import server_app
from veclut.server_app import Limits, RequestGate

CTX = 256
LIMITS = Limits.for_context(CTX)
ALIAS = "fixture-i2_v"
MODEL_PATH = "/home/someone/models/secret-project/fixture-i2_v.gguf"
KEY = "k3y"


class Exchange:
    """One request through the gate: the messages the client got, what reached the app, and how
    many receive() calls the gate made."""

    def __init__(self, gate, method, path, chunks, headers):
        self.sent, self.app_got, self.receives = [], [], 0
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            self.receives += 1
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            self.sent.append(message)

        scope = {"type": "http", "method": method, "path": path,
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        asyncio.run(gate(scope, receive, send))

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def error(self) -> dict:
        return json.loads(self.sent[1]["body"])["error"]


def _gate(api_key=KEY):
    async def app(scope, receive, send):
        got = await receive() if scope["method"] == "POST" else None
        app.calls.append((scope["path"], got))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app.calls = []
    gate = RequestGate(app, ALIAS, {ALIAS, MODEL_PATH}, api_key, LIMITS)
    return gate, app.calls


def _post(gate, path, body=None, chunks=None, headers=None, key=KEY):
    chunks = chunks if chunks is not None else [json.dumps(body).encode()]
    all_headers = {"authorization": f"Bearer {key}", "content-type": "application/json", **(headers or {})}
    return Exchange(gate, "POST", path, chunks, all_headers)


def test_a_request_within_the_limits_reaches_the_app_with_its_body():
    gate, calls = _gate()
    body = {"prompt": "ROMEO.\n", "max_tokens": 4, "model": ALIAS}
    done = _post(gate, "/v1/completions", body)
    assert done.status == 200 and calls == [("/v1/completions", {"type": "http.request", "body": json.dumps(body).encode(),
                                                                  "more_body": False})]


def test_a_declared_body_over_the_limit_is_413_before_any_of_it_is_read():
    gate, calls = _gate()
    done = _post(gate, "/v1/completions", chunks=[b"x"], headers={"content-length": str(64 << 20)})
    assert done.status == 413 and done.error["code"] == "request_too_large"
    assert done.receives == 0 and calls == []


def test_a_body_without_length_is_read_only_up_to_the_limit():
    gate, calls = _gate()
    chunk = b" " * (64 << 10)
    chunks = [chunk] * (4 * LIMITS.body // len(chunk))  # four times the limit, streamed
    done = _post(gate, "/v1/completions", chunks=chunks)
    assert done.status == 413 and calls == []
    assert done.receives <= LIMITS.body // len(chunk) + 1, "nothing beyond the limit is read"


@pytest.mark.parametrize("path, body", [
    ("/v1/completions", {"prompt": "O Romeo! " * (LIMITS.prompt_bytes // 9 + 1)}),
    ("/v1/completions", {"prompt": ["O Romeo! " * (LIMITS.prompt_bytes // 18 + 1)] * 2}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "é" * LIMITS.prompt_bytes}]}]}),
    ("/v1/embeddings", {"input": "x" * (LIMITS.prompt_bytes + 1)}),
    ("/extras/tokenize", {"input": "x" * (LIMITS.prompt_bytes + 1)}),
])
def test_a_prompt_of_more_bytes_than_the_context_can_hold_is_refused_before_tokenizing(path, body):
    gate, calls = _gate()
    done = _post(gate, path, body)
    assert done.status == 400 and done.error["code"] == "context_length_exceeded", done.sent
    assert f"more than the {LIMITS.prompt_bytes} this server takes" in done.error["message"]
    assert calls == [], "llama.cpp never saw it"


def test_a_prompt_of_more_token_ids_than_the_context_is_refused():
    gate, calls = _gate()
    done = _post(gate, "/v1/completions", {"prompt": [1] * (CTX + 1)})
    assert done.status == 400 and f"{CTX + 1} tokens, more than the {CTX}-token context" in done.error["message"]
    assert calls == []
    assert _post(gate, "/v1/completions", {"prompt": [1] * CTX}).status == 200


def test_an_unknown_model_names_the_alias_and_never_the_file():
    gate, calls = _gate()
    done = _post(gate, "/v1/completions", {"prompt": "hi", "model": "gpt-4"})
    assert done.status == 404 and done.error["code"] == "model_not_found"
    assert f"'{ALIAS}'" in done.error["message"]
    assert "secret-project" not in done.error["message"] and ".gguf" not in done.error["message"]


@pytest.mark.parametrize("method, path", [("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/extras/tokenize"),
                                          ("GET", "/docs")])
@pytest.mark.parametrize("authorization", ["Bearer nope", "Bearer k3", "Bearer k3y4", "k3y", "Basic k3y", ""])
def test_a_wrong_key_is_401_on_every_route(method, path, authorization):
    gate, calls = _gate()
    headers = {"authorization": authorization} if authorization else {}
    done = Exchange(gate, method, path, [b'{"prompt": "hi"}'], headers)
    assert done.status == 401 and done.error["code"] == "invalid_api_key"
    assert (b"www-authenticate", b"Bearer") in done.sent[0]["headers"]
    assert calls == []


def test_the_key_is_compared_in_constant_time(monkeypatch):
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(server_app.hmac, "compare_digest", compare_digest)
    gate, calls = _gate()
    assert Exchange(gate, "GET", "/v1/models", [b""], {"authorization": f"bearer {KEY}"}).status == 200
    assert Exchange(gate, "GET", "/v1/models", [b""], {"authorization": "Bearer other"}).status == 401
    assert compared == [(KEY.encode(), KEY.encode()), (b"other", KEY.encode())]


def test_without_a_key_every_request_is_let_through():
    gate, calls = _gate(api_key=None)
    assert Exchange(gate, "GET", "/v1/models", [b""], {}).status == 200
    assert calls == [("/v1/models", None)]


STUCK_APP = textwrap.dedent("""
    import asyncio, sys, time
    import anyio
    from veclut.server_app import Limits, RequestGate, serve

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/stuck":  # as a request inside llama.cpp: a thread nothing can stop
            print("stuck", flush=True)
            if sys.argv[2] == "anyio":  # as llama-cpp-python's routes (starlette's run_in_threadpool)
                await anyio.to_thread.run_sync(time.sleep, 3600)
            else:  # a thread asyncio's own shutdown waits for
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, 3600)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gate = RequestGate(app, "stub", {"stub"}, None, Limits.for_context(256))
    sys.exit(serve(gate, "127.0.0.1", int(sys.argv[1]), "warning"))
""")


@pytest.mark.parametrize("worker", ["anyio", "executor"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_server_while_a_worker_thread_is_stuck(sig, worker):
    """uvicorn alone waits for a running request for ever; the server must cancel it after a grace
    period (it answers 503) and, if a thread still holds the exit (after Ctrl-C, the interpreter
    joins the worker thread; asyncio waits for its executor's), exit anyway. The 60 s wait only
    bounds the test: the server exits by server_app.STOP_GRACE + 2 s."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", STUCK_APP, str(port), worker], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # up to 60 s for the server to listen
            try:
                httpx.get(f"http://{HOST}:{port}/ready", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        answers = []
        with httpx.Client(timeout=120) as client:
            waiting = threading.Thread(target=lambda: answers.append(_status_or_error(client, f"http://{HOST}:{port}/stuck")))
            waiting.start()
            assert proc.stdout.readline().strip() == "stuck"  # the request is in its worker thread
            proc.send_signal(sig)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server was still running 60 s after {sig.name} with a stuck request")
            waiting.join(120)
        assert code in (-sig, 128 + sig)
        assert answers == [503], "the stuck request is told the server stops"
        err = proc.stderr.read()
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _status_or_error(client, url):
    try:
        return client.get(url).status_code
    except httpx.TransportError as err:
        return type(err).__name__
