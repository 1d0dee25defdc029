"""`veclut serve MODEL.gguf`: an OpenAI-compatible server on the patched build.

Two engines, the same model file and the same API (/v1/models, /v1/completions,
/v1/chat/completions, streaming):
- python (default): llama-cpp-python's server (its `server` extra) through veclut.server_app;
  one request at a time, the library users embed.
- native: the patched llama-server with N slots and continuous batching; concurrent requests
  share each forward pass, so weights are streamed once for N tokens — the vector-LUT case.

The model is checked in Python first (veclut.gguf_check), the port is checked free, then this
process is replaced by the server (exec), so signals and exit codes are the server's own."""

import importlib.util
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from . import ui
from .cpus import usable_cpus
from .errors import VeclutError
from .gguf_check import ModelInfo, validate
from .paths import profile_build_dir

DEFAULT_CTX = 4096  # per request; capped at the model's training context
SERVER_EXTRA = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


@dataclass
class Options:
    model: Path
    engine: str = "python"
    host: str = "127.0.0.1"
    port: int = 8000
    ctx: int | None = None
    threads: int | None = None
    api_key: str | None = None
    chat_format: str | None = None
    alias: str | None = None
    parallel: int | None = None
    cache_ram: int | None = None
    verbose: bool = False


API_KEY_ENV = "VECLUT_API_KEY"


def api_key(given: str | None, key_file: Path | None) -> str | None:
    """The key clients must send: from --api-key-file, VECLUT_API_KEY or --api-key. The first two
    keep it out of the process list; the server itself gets it by environment, never by argv."""
    if given and key_file:
        raise VeclutError("give the API key once: --api-key-file or --api-key, not both")
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
            raise VeclutError(f"cannot read the API key file {key_file} ({why}); give a readable file holding the key") from None
        if not key or any(c.isspace() for c in key):
            raise VeclutError(f"the API key file {key_file} must hold one key: one line, no spaces")
        return key
    if given:
        ui.info(f"--api-key shows the key to everyone who can list this machine's processes; "
                f"pass it in {API_KEY_ENV} or --api-key-file instead")
        return given
    return os.environ.get(API_KEY_ENV) or None


def context_size(info: ModelInfo, ctx: int | None) -> int:
    if ctx is not None:
        if ctx < 1:
            raise VeclutError(f"--ctx must be at least 1 (got {ctx})")
        return ctx
    return min(DEFAULT_CTX, info.context_length or DEFAULT_CTX)


def thread_count(threads: int | None) -> int:
    if threads is not None and threads < 1:
        raise VeclutError(f"--threads must be at least 1 (got {threads})")
    return threads or usable_cpus()


def model_settings(info: ModelInfo, ctx: int | None, threads: int | None, chat_format: str | None = None,
                   alias: str | None = None, verbose: bool = False) -> dict:
    """llama_cpp.server ModelSettings fields; `veclut generate` loads the model with the same ones,
    so a request at temperature 0 and `veclut generate` give the same text."""
    n = thread_count(threads)
    return {"model": str(info.path), "model_alias": alias or info.path.stem, "n_ctx": context_size(info, ctx),
            "n_threads": n, "n_threads_batch": n, "chat_format": chat_format, "verbose": verbose}


def require_python_engine() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise VeclutError("llama-cpp-python is not installed in this environment; run `veclut build` to install it bound to the patched build")
    missing = [m for m in SERVER_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise VeclutError(f"the python engine needs llama-cpp-python's server extra ({missing[0]} is missing); "
                          "install it with `pip install -e '.[serve]'` in the veclut checkout")


def check_chat_format(name: str) -> None:
    """llama-cpp-python accepts any name at start and fails every chat request later; fail now."""
    if name.startswith("chat_template."):  # a named template inside the GGUF
        return
    from llama_cpp import llama_chat_format as formats

    try:
        formats.get_chat_completion_handler(name)
    except formats.LlamaChatCompletionHandlerNotFoundException as err:
        known = str(err).split("valid formats: ", 1)[-1].strip("[])").replace("'", "")
        raise VeclutError(f"unknown chat format {name} for the python engine; choose one of {known}") from None


def python_command(opts: Options, info: ModelInfo) -> tuple[list[str], dict[str, str]]:
    require_python_engine()
    if opts.chat_format:
        check_chat_format(opts.chat_format)
    config = {
        "server": {"host": opts.host, "port": opts.port, "api_key": opts.api_key,
                   # serve queued requests in turn instead of cutting a running stream short
                   "interrupt_requests": False},
        "model": model_settings(info, opts.ctx, opts.threads, opts.chat_format, opts.alias, opts.verbose),
        "log_level": "info",
    }
    from .server_app import CONFIG_ENV

    return [sys.executable, "-m", "veclut.server_app"], {CONFIG_ENV: json.dumps(config)}


def native_command(opts: Options, info: ModelInfo) -> tuple[list[str], dict[str, str]]:
    program = profile_build_dir("native") / "bin" / "llama-server"
    if not program.exists():
        raise VeclutError(f"{program} is missing; run `veclut build` first")
    slots = opts.parallel or 4
    threads = thread_count(opts.threads)
    ctx = context_size(info, opts.ctx)
    argv = [str(program), "-m", str(info.path), "--host", opts.host, "--port", str(opts.port),
            "-c", str(ctx * slots),  # llama-server splits -c among its slots: each request gets ctx
            "-np", str(slots), "-cb", "-t", str(threads), "-tb", str(threads),
            # llama-server keeps up to 8 GiB of past prompts' state in RAM by default: a server's
            # memory then grows for hours; veclut keeps none unless asked, as the python engine
            "--cache-ram", str(opts.cache_ram or 0),
            "--alias", opts.alias or info.path.stem]
    if opts.chat_format:
        argv += ["--chat-template", opts.chat_format]
    env = {"LLAMA_API_KEY": opts.api_key} if opts.api_key else {}
    # glibc gives each of llama-server's HTTP threads a malloc arena of its own, and arenas keep what
    # large request bodies left behind: under load RSS grew without bound (docs/soak.md). Two arenas
    # hold it; a value the user set wins.
    env.setdefault("MALLOC_ARENA_MAX", os.environ.get("MALLOC_ARENA_MAX", "2"))
    return argv, env


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise VeclutError(f"--port must be between 1 and 65535 (got {port})")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise VeclutError(f"cannot resolve the host {host} ({err.strerror}); give an address such as 127.0.0.1") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(address)
        except OSError as err:
            raise VeclutError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port or --host") from None


def command(opts: Options) -> tuple[list[str], dict[str, str], ModelInfo]:
    """Validate everything and return the server's argv, its extra environment and the model."""
    if opts.engine not in ("python", "native"):
        raise VeclutError(f"unknown engine {opts.engine}; choose python or native")
    if opts.parallel is not None and opts.engine != "native":
        raise VeclutError("--parallel needs --engine native (the python engine answers one request at a time)")
    if opts.parallel is not None and opts.parallel < 1:
        raise VeclutError(f"--parallel must be at least 1 (got {opts.parallel})")
    if opts.cache_ram is not None and opts.engine != "native":
        raise VeclutError("--cache-ram needs --engine native (the python engine keeps no prompt cache)")
    if opts.cache_ram is not None and opts.cache_ram < 0:
        raise VeclutError(f"--cache-ram must be 0 or more MiB (got {opts.cache_ram})")
    info = validate(opts.model)
    argv, env = (native_command if opts.engine == "native" else python_command)(opts, info)
    check_port(opts.host, opts.port)
    return argv, env, info


def run(opts: Options) -> int:
    argv, env, info = command(opts)
    alias = opts.alias or info.path.stem
    how = (f"{opts.parallel or 4} slots with continuous batching" if opts.engine == "native"
           else "llama-cpp-python, one request at a time")
    ui.info(f"serving {info.path.name} ({info.architecture}; {info.types_text()}) as model '{alias}', "
            f"context {context_size(info, opts.ctx)} per request, {thread_count(opts.threads)} threads, "
            f"{opts.engine} engine ({how})")
    if opts.engine == "python" and not info.chat_template and not opts.chat_format:
        ui.info("the model has no chat template; /v1/chat/completions uses llama-cpp-python's default "
                "(llama-2); choose another with --chat-format")
    if opts.host not in ("127.0.0.1", "localhost", "::1") and not opts.api_key:
        ui.info(f"listening on {opts.host} without --api-key: anyone who can reach this machine can use the server")
    host = f"[{opts.host}]" if ":" in opts.host else opts.host  # an IPv6 address in a URL
    ui.info(f"OpenAI base URL: http://{host}:{opts.port}/v1 (Ctrl-C stops the server)")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, {**os.environ, **env})
    except OSError as err:
        raise VeclutError(f"cannot start {argv[0]} ({err.strerror}); run `veclut build` again") from None
    return 0  # not reached: exec replaced this process
