"""The python engine of `veclut serve`: llama-cpp-python's own OpenAI-compatible app
(llama_cpp.server), run by uvicorn, with one thin ASGI layer in front of it.

Run as `python -m veclut.server_app`; the settings come as JSON in VECLUT_SERVER_CONFIG (so an
API key never shows in the process list). The layer answers the requests llama_cpp.server
gets wrong: a body that is not JSON, or does not fit the request schema (its error handler turns
both into a 500), and an unknown model name (it silently serves the default model); they get an
OpenAI-style 400 or 404 instead. A JSON body sent without a JSON content type (curl -d) is
passed on as JSON, which FastAPI would otherwise refuse.

It also bounds what one request can cost before llama.cpp sees it: a body larger than
Limits.body is a 413 (read no further), a prompt of more bytes than Limits.prompt_bytes or more
tokens than the context a 400; the API key is compared in constant time, on every route. A stop
signal (SIGTERM, Ctrl-C) ends the server within seconds even while a request runs: uvicorn gets
STOP_GRACE seconds to finish, then the process exits whatever a worker thread is doing."""

import asyncio
import hmac
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass

CONFIG_ENV = "VECLUT_SERVER_CONFIG"
# the routes whose JSON body names a model (llama_cpp.server's OpenAI routes)
MODEL_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings")
# the keys of a JSON body that hold text llama.cpp tokenizes (completions, chat, embeddings, tokenize)
PROMPT_KEYS = ("prompt", "messages", "input")
BYTES_PER_TOKEN = 64   # a prompt of more bytes than this per context token cannot fit (tokens are shorter)
JSON_EXPANSION = 6     # a character escaped as \uXXXX takes 6 bytes of JSON
BODY_SLACK = 1 << 20   # the rest of a request: sampling settings, chat roles, tool definitions
STOP_GRACE = 3         # seconds uvicorn gets to finish running requests after a stop signal


@dataclass(frozen=True)
class Limits:
    body: int           # bytes of a request body
    prompt_bytes: int   # bytes of UTF-8 text in a request's prompt, messages or input
    prompt_tokens: int  # tokens of a prompt given as token ids: the context

    @classmethod
    def for_context(cls, n_ctx: int) -> "Limits":
        prompt = n_ctx * BYTES_PER_TOKEN
        return cls(body=prompt * JSON_EXPANSION + BODY_SLACK, prompt_bytes=prompt, prompt_tokens=n_ctx)


def _error(status: int, message: str, code: str) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


def request_schemas() -> dict:
    """Route -> llama_cpp.server's pydantic request model (the one the route itself parses)."""
    from llama_cpp.server import types

    return {"/v1/completions": types.CreateCompletionRequest, "/v1/chat/completions": types.CreateChatCompletionRequest,
            "/v1/embeddings": types.CreateEmbeddingRequest}


def prompt_size(value) -> tuple[int, int]:
    """(UTF-8 bytes of its text, token ids) in a prompt, a list of chat messages or an input."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")), 0
    if isinstance(value, bool):
        return 0, 0
    if isinstance(value, int):
        return 0, 1
    parts = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    text = tokens = 0
    for part in parts:
        more_text, more_tokens = prompt_size(part)
        text, tokens = text + more_text, tokens + more_tokens
    return text, tokens


def check_prompt(body: dict, limits: Limits) -> tuple[int, bytes] | None:
    """A prompt too long for the context, refused before llama.cpp tokenizes it."""
    text = tokens = 0
    for key in PROMPT_KEYS:
        more_text, more_tokens = prompt_size(body.get(key))
        text, tokens = text + more_text, tokens + more_tokens
    if text > limits.prompt_bytes:
        return _error(400, f"the prompt is {text} bytes, more than the {limits.prompt_bytes} this server takes "
                           f"({BYTES_PER_TOKEN} per token of its {limits.prompt_tokens}-token context); shorten it",
                      "context_length_exceeded")
    if tokens > limits.prompt_tokens:
        return _error(400, f"the prompt is {tokens} tokens, more than the {limits.prompt_tokens}-token context; shorten it",
                      "context_length_exceeded")
    return None


def check_body(raw: bytes, alias: str, names: set[str], schema=None, limits: Limits | None = None) -> tuple[int, bytes] | None:
    """None if the request may go on, else (status, JSON error body). `names` are the model names
    accepted; the error for another one shows only `alias` (never the model file's path)."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as err:
        return _error(400, f"the request body is not valid JSON ({err})", "invalid_json")
    if not isinstance(body, dict):
        return _error(400, "the request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if model is not None and model not in names:
        return _error(404, f"the model '{model}' does not exist; this server serves '{alias}'", "model_not_found")
    if limits is not None and (too_long := check_prompt(body, limits)):
        return too_long
    if schema is not None:
        from pydantic import ValidationError

        try:
            schema.model_validate(body)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"invalid request: {where}: {first['msg']}", "invalid_request")
    return None


def _check_other_body(raw: bytes, limits: Limits) -> tuple[int, bytes] | None:
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return None  # the app answers that itself
    return check_prompt(body, limits) if isinstance(body, dict) else None


class RequestGate:
    """Pure ASGI middleware. Checks the API key of every HTTP request (in constant time); buffers
    the body of every request that has one, up to Limits.body; checks the bodies of MODEL_ROUTES
    (check_body) and the prompt size of any other JSON body; replays the body to the app (later
    receive() calls go to the client, so the app still notices a disconnect mid-stream)."""

    def __init__(self, app, alias: str, names: set[str], api_key: str | None, limits: Limits,
                 schemas: dict | None = None):
        self.app, self.alias, self.names, self.limits, self.schemas = app, alias, names, limits, schemas or {}
        self.api_key = api_key.encode() if api_key is not None else None

    def _authorized(self, scope) -> bool:
        if self.api_key is None:
            return True
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        # compare_digest takes as long whatever the key's first wrong byte (its length may show)
        return hmac.compare_digest(token.strip(), self.api_key) and scheme.lower() == b"bearer"

    async def _respond(self, send, status: int, body: bytes, extra: list | None = None) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *(extra or [])]})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive) -> tuple[bytes | None, bool]:
        """(the whole body or None, whether the client left); None without leaving: the body is
        larger than Limits.body, and no more of it was read."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.body:
                return None, False
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._handle(scope, receive, tracked_send)
        except asyncio.CancelledError:  # uvicorn gave up on the request at a stop signal (serve)
            if not started:  # a client still waiting gets a reason, and the log no trace
                await self._respond(send, *_error(503, "the server is stopping; send the request again once it is back",
                                                  "server_stopping"))

    async def _handle(self, scope, receive, send):
        if not self._authorized(scope):
            status, body = _error(401, "invalid API key; send it as `Authorization: Bearer KEY`", "invalid_api_key")
            return await self._respond(send, status, body, [(b"www-authenticate", b"Bearer")])
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_large = _error(413, f"the request body is larger than the {self.limits.body} bytes this server takes "
                                "(its context bounds a prompt); shorten the prompt", "request_too_large")
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limits.body:
            return await self._respond(send, *too_large)  # nothing of the body read
        raw, left = await self._read_body(receive)
        if left:
            return None
        if raw is None:
            return await self._respond(send, *too_large)
        if scope["path"] in MODEL_ROUTES:
            rejected = check_body(raw, self.alias, self.names, self.schemas.get(scope["path"]), self.limits)
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
            scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        else:  # the library's other JSON routes (/extras/tokenize): the prompt size only
            rejected = _check_other_body(raw, self.limits)
        if rejected:
            return await self._respond(send, *rejected)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def main() -> int:
    try:
        config = json.loads(os.environ[CONFIG_ENV])
    except (KeyError, ValueError):
        print(f"veclut: error: {CONFIG_ENV} must hold the server settings as JSON; start the server with `veclut serve`",
              file=sys.stderr)
        return 2
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    server = ServerSettings(**config["server"])
    model = ModelSettings(**config["model"])
    try:
        app = create_app(server_settings=server, model_settings=[model])
    except Exception as err:  # the library could not load the model: one sentence, not a trace
        print(f"veclut: error: llama.cpp could not load {model.model} ({err}); "
              "rerun with --verbose to see its log", file=sys.stderr)
        return 1
    gate = RequestGate(app, model.model_alias, {model.model_alias, model.model}, server.api_key,
                       Limits.for_context(model.n_ctx), request_schemas())
    return serve(gate, server.host, server.port, config.get("log_level", "info"))


def serve(app, host: str, port: int, log_level: str) -> int:
    """uvicorn with a deadline: after the first stop signal it has STOP_GRACE seconds to finish the
    running requests (then it cancels them), and the process exits two seconds later whatever is
    left (a worker thread inside llama.cpp cannot be cancelled)."""
    import uvicorn

    class Server(uvicorn.Server):
        stop_signal = 0

        def handle_exit(self, sig, frame):
            if not self.should_exit:
                self.stop_signal = sig
                deadline = threading.Timer(STOP_GRACE + 2, _exit_now, (sig,))
                deadline.daemon = True
                deadline.start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=STOP_GRACE)
    server = Server(config)
    try:
        server.run()  # after a SIGTERM, uvicorn ends by raising it again: the process ends by the signal
    except KeyboardInterrupt:  # the Ctrl-C uvicorn handled, raised again
        return 128 + signal.SIGINT
    # uvicorn's re-raised Ctrl-C does not always reach here as KeyboardInterrupt (it can be
    # swallowed while the event loop closes): a stopped server still says which signal stopped it
    return 128 + server.stop_signal if server.stop_signal else 0


def _exit_now(sig: int) -> None:
    print("veclut: a request was still running when the stop grace ran out; it got no answer", file=sys.stderr, flush=True)
    os._exit(128 + sig)


if __name__ == "__main__":
    sys.exit(main())
