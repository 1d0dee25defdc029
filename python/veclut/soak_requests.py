"""What the clients of `veclut soak` send, how often, and which answers each kind must get.

Valid kinds must get a 200 and a whole answer (a stream ends in `[DONE]`); a client that leaves
mid-stream must get some events first. Malformed kinds must get the status the README promises
for the engine; the native engine is llama-server, whose answers are upstream's where no patch
changes them (any model name accepted, no body cap)."""

import json
import random
from dataclasses import dataclass, field

from .server_app import Limits

SHORT_PROMPT = "ROMEO.\n"
VERSE = "O Romeo, Romeo! wherefore art thou Romeo? Deny thy father and refuse thy name. "
OK = {"python": {200}, "native": {200}}


@dataclass(frozen=True)
class Request:
    path: str
    content: bytes
    stream: bool = False
    leave_after: int | None = None  # events to read before closing the connection mid-stream
    wrong_key: bool = False


def _json(**body) -> bytes:
    return json.dumps(body).encode()


def _long_prompt(ctx: int) -> str:
    """A quarter of the context in bytes: at most a quarter in tokens, whatever the tokenizer."""
    return (VERSE * (ctx // len(VERSE) + 1))[: max(len(SHORT_PROMPT), ctx // 4)]


def _completion(prompt, tokens: int, **more) -> Request:
    return Request("/v1/completions", _json(prompt=prompt, max_tokens=tokens, **more), stream=more.get("stream", False))


def _chat(tokens: int, **more) -> Request:
    messages = [{"role": "user", "content": "Who is there?"}]
    return Request("/v1/chat/completions", _json(messages=messages, max_tokens=tokens, **more),
                   stream=more.get("stream", False))


@dataclass(frozen=True)
class Kind:
    weight: int                                  # relative share of all requests
    make: callable                               # (context tokens, random.Random) -> Request
    valid: bool = True
    expected: dict = field(default_factory=lambda: OK)  # engine -> statuses this kind must get


# name -> kind; the weights sum to 100, so each is a percentage of the requests
KINDS = {
    "short completion": Kind(20, lambda ctx, r: _completion(SHORT_PROMPT, 8, seed=r.randrange(1 << 30))),
    "long completion": Kind(10, lambda ctx, r: _completion(_long_prompt(ctx), 32, seed=r.randrange(1 << 30))),
    "short stream": Kind(15, lambda ctx, r: _completion(SHORT_PROMPT, 16, stream=True)),
    "long stream": Kind(10, lambda ctx, r: _completion(_long_prompt(ctx), 32, stream=True)),
    "chat": Kind(8, lambda ctx, r: _chat(8)),
    "chat stream": Kind(7, lambda ctx, r: _chat(16, stream=True)),
    "leaves mid-stream": Kind(15, lambda ctx, r: Request(
        "/v1/completions", _json(prompt=SHORT_PROMPT, max_tokens=200, stream=True), stream=True,
        leave_after=r.randint(1, 4))),
    "bad JSON": Kind(3, lambda ctx, r: Request("/v1/completions", b'{"prompt": "ROMEO.'), valid=False,
                     expected={"python": {400}, "native": {400}}),  # native: patch 0013
    "unknown model": Kind(3, lambda ctx, r: _completion(SHORT_PROMPT, 4, model="gpt-4"), valid=False,
                          expected={"python": {404}, "native": {200}}),
    "prompt over the context": Kind(3, lambda ctx, r: _completion(VERSE * (ctx * 8 // len(VERSE) + 1), 4),
                                    valid=False, expected={"python": {400}, "native": {400}}),
    # the python engine's gate refuses the body by its length; llama-server (patch 0011) the
    # prompt by its bytes, before it tokenizes it
    "body over the cap": Kind(3, lambda ctx, r: _completion("a" * (Limits.for_context(ctx).body + 1), 4),
                              valid=False, expected={"python": {413}, "native": {400}}),
    "wrong key": Kind(3, lambda ctx, r: Request("/v1/completions", _json(prompt=SHORT_PROMPT, max_tokens=4),
                                              wrong_key=True), valid=False, expected={"python": {401}, "native": {401}}),
}


def pick(rng: random.Random) -> str:
    return rng.choices(list(KINDS), weights=[k.weight for k in KINDS.values()])[0]
