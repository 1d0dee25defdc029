"""`veclut generate MODEL.gguf -p TEXT`: print a completion, streamed as it is generated.

The model is loaded with the settings `veclut serve` gives llama-cpp-python, and the request is
built by llama_cpp.server's own request model, so the sampling defaults (temperature 0.8,
top-k 40, top-p 0.95, repeat penalty 1.1, ...) are the server's: a fixed seed or temperature 0
gives the text /v1/completions gives."""

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import VeclutError
from .gguf_check import validate
from .serve import model_settings, require_python_engine

# fields llama_cpp.server drops before calling the model (app.py, create_completion)
SERVER_ONLY_FIELDS = {"n", "best_of", "logit_bias_type", "user", "min_tokens"}


@contextlib.contextmanager
def _quiet_stderr(enabled: bool):
    """llama.cpp prints its loader log on fd 2 even when llama-cpp-python is not verbose."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load(model: Path, ctx: int | None = None, threads: int | None = None, verbose: bool = False):
    """The model as `veclut serve --engine python` loads it (a llama_cpp.Llama)."""
    require_python_engine()
    info = validate(model)
    from llama_cpp.server.model import LlamaProxy
    from llama_cpp.server.settings import ModelSettings

    settings = ModelSettings(**model_settings(info, ctx, threads, verbose=verbose))
    try:
        with _quiet_stderr(not verbose):
            return LlamaProxy.load_llama_from_model_settings(settings)
    except ValueError as err:
        raise VeclutError(f"llama.cpp could not load {model} ({err}); rerun with --verbose to see its log") from None


def stream(llm, prompt: str, max_tokens: int = 128, temperature: float | None = None,
           seed: int | None = None) -> Iterator[str]:
    """Text pieces of one completion, requested exactly as a /v1/completions body would."""
    from llama_cpp.server.types import CreateCompletionRequest

    fields = {"prompt": prompt, "max_tokens": max_tokens, "seed": seed, "stream": True}
    if temperature is not None:
        fields["temperature"] = temperature
    request = CreateCompletionRequest(**fields).model_dump(exclude=SERVER_ONLY_FIELDS)
    try:
        for chunk in llm(**request):
            yield chunk["choices"][0]["text"]
    except ValueError as err:  # e.g. the prompt does not fit the context
        raise VeclutError(f"{err}; shorten the prompt or raise --ctx") from None


def run(model: Path, prompt: str, max_tokens: int, temperature: float | None, seed: int | None,
        ctx: int | None, threads: int | None, verbose: bool = False) -> int:
    if max_tokens < 1:
        raise VeclutError(f"-n must be at least 1 (got {max_tokens})")
    llm = load(model, ctx, threads, verbose)
    for piece in stream(llm, prompt, max_tokens, temperature, seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
