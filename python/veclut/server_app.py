"""The python engine of `veclut serve`: llama-cpp-python's own OpenAI-compatible app
(llama_cpp.server), run by uvicorn, with one thin ASGI layer in front of it.

Run as `python -m veclut.server_app`; the settings come as JSON in VECLUT_SERVER_CONFIG (so an
API key never shows in the process list). The layer answers the requests llama_cpp.server
gets wrong: a body that is not JSON, or does not fit the request schema (its error handler turns
both into a 500), and an unknown model name (it silently serves the default model); they get an
OpenAI-style 400 or 404 instead. A JSON body sent without a JSON content type (curl -d) is
passed on as JSON, which FastAPI would otherwise refuse."""

import json
import os
import sys

CONFIG_ENV = "VECLUT_SERVER_CONFIG"
# the routes whose JSON body names a model (llama_cpp.server's OpenAI routes)
MODEL_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings")


def _error(status: int, message: str, code: str) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


def request_schemas() -> dict:
    """Route -> llama_cpp.server's pydantic request model (the one the route itself parses)."""
    from llama_cpp.server import types

    return {"/v1/completions": types.CreateCompletionRequest, "/v1/chat/completions": types.CreateChatCompletionRequest,
            "/v1/embeddings": types.CreateEmbeddingRequest}


def check_body(raw: bytes, names: set[str], schema=None) -> tuple[int, bytes] | None:
    """None if the request may go on, else (status, JSON error body)."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as err:
        return _error(400, f"the request body is not valid JSON ({err})", "invalid_json")
    if not isinstance(body, dict):
        return _error(400, "the request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if model is not None and model not in names:
        served = ", ".join(sorted(names))
        return _error(404, f"the model '{model}' does not exist; this server serves: {served}", "model_not_found")
    if schema is not None:
        from pydantic import ValidationError

        try:
            schema.model_validate(body)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"invalid request: {where}: {first['msg']}", "invalid_request")
    return None


class RequestGate:
    """Pure ASGI middleware: buffers the body of POSTs to MODEL_ROUTES, rejects bad ones, and
    replays the body to the app (later receive() calls go to the client, so the app still
    notices a disconnect mid-stream)."""

    def __init__(self, app, names: set[str], api_key: str | None, schemas: dict | None = None):
        self.app, self.names, self.api_key, self.schemas = app, names, api_key, schemas or {}

    def _authorized(self, scope) -> bool:
        if self.api_key is None:
            return True
        headers = dict(scope.get("headers") or [])
        return headers.get(b"authorization", b"").decode("latin-1") == f"Bearer {self.api_key}"

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in MODEL_ROUTES
                and self._authorized(scope)):  # a wrong key: the app answers 401 itself
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        rejected = check_body(raw, self.names, self.schemas.get(scope["path"]))
        if rejected:
            status, body = rejected
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
        scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
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
    names = {model.model_alias, model.model}
    uvicorn.run(RequestGate(app, names, server.api_key, request_schemas()), host=server.host, port=server.port,
                log_level=config.get("log_level", "info"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
