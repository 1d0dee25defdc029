"""`veclut soak MODEL`: a bounded load test of `veclut serve` on loopback.

Starts the server (either engine) on a free port with a random API key, warms it up, then runs
N concurrent clients for a fixed time, each sending a weighted mix of requests
(veclut.soak_requests: short and long prompts, streaming and not, clients leaving mid-stream,
malformed requests). Reports requests served, answers by kind, p50/p99 latency of valid
requests, generated tokens/s and the server's RSS at start, peak and end, and checks the
invariants: every valid request answered whole with a 200, every malformed one with the status
its engine promises, RSS growth within RSS_GROWTH_MIB + RSS_GROWTH_SHARE of the start, and the
server still answering afterwards."""

import asyncio
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import cpuinfo, serve
from .cpus import usable_cpus
from .errors import VeclutError
from .soak_requests import KINDS, SHORT_PROMPT, Request, pick

HOST = "127.0.0.1"
READY_TIMEOUT = 300     # seconds for the server to load the model
REQUEST_TIMEOUT = 900   # seconds for one request, queueing included (the python engine answers one at a time)
RSS_GROWTH_MIB, RSS_GROWTH_SHARE = 64, 0.10  # end RSS may exceed start RSS by 64 MiB + 10 % of it
RSS_EVERY = 0.5         # seconds between RSS samples


@dataclass
class Outcome:
    kind: str
    answer: str           # "200", "413", ... or "no answer: ReadTimeout", "stream cut short"
    seconds: float
    tokens: int = 0


@dataclass
class Report:
    engine: str
    model: str
    cpu: str
    clients: int
    duration_s: float
    threads: int
    ctx: int
    requests: int = 0
    answers: dict = field(default_factory=dict)    # kind -> answer -> count
    latency_s: dict = field(default_factory=dict)  # p50, p99 of valid requests answered whole
    tokens_per_s: float = 0.0
    rss_mib: dict = field(default_factory=dict)    # start, peak, end
    answers_after: bool = False
    problems: list = field(default_factory=list)   # one sentence per broken invariant


def _rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (/proc/PID/status, VmRSS); NaN once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), math.nan)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextmanager
def _server(argv: list[str], env: dict[str, str]):
    """The server as a child process (serve.command's argv, not exec), stopped on the way out."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                start_new_session=True)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _wait_ready(proc: subprocess.Popen, client) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VeclutError(f"the server exited with {proc.returncode} while loading the model; "
                              "run the same `veclut serve` to see why")
        try:
            if (await client.get("/v1/models")).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(0.2)
    raise VeclutError(f"the server did not answer within {READY_TIMEOUT} s of starting")


async def _send(client, request: Request, key: str, kind: str) -> Outcome:
    """One request, timed; a whole stream counts its content events as tokens."""
    import httpx

    headers = {"Authorization": f"Bearer {'wrong' + key if request.wrong_key else key}",
               "Content-Type": "application/json"}
    start = time.monotonic()
    tokens, answer = 0, None
    try:
        if not request.stream:
            response = await client.post(request.path, content=request.content, headers=headers)
            answer = str(response.status_code)
            if response.status_code == 200:
                tokens = response.json().get("usage", {}).get("completion_tokens", 0)
        else:
            async with client.stream("POST", request.path, content=request.content, headers=headers) as response:
                answer = str(response.status_code)
                if response.status_code != 200:
                    await response.aread()
                else:
                    done = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        done = line[5:].strip() == "[DONE]"
                        tokens += not done
                        if request.leave_after and tokens >= request.leave_after:
                            break  # leaving the block closes the connection mid-stream
                    if not done and not (request.leave_after and tokens >= request.leave_after):
                        answer = "stream cut short"
    except httpx.HTTPError as err:
        answer = f"no answer: {type(err).__name__}"
    return Outcome(kind, answer, time.monotonic() - start, tokens)


async def _client(base: str, engine: str, key: str, ctx: int, seed: int, deadline: float, outcomes: list) -> None:
    import httpx

    rng = random.Random(seed)
    # llama-server may drop a kept-alive connection after a stream without saying so (README)
    limits = httpx.Limits() if engine == "python" else httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT, limits=limits) as client:
        while time.monotonic() < deadline:
            kind = pick(rng)
            outcomes.append(await _send(client, KINDS[kind].make(ctx, rng), key, kind))


async def _sample_rss(pid: int, peak: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss_mib(pid))
        await asyncio.sleep(RSS_EVERY)


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _problems(report: Report, outcomes: list[Outcome]) -> list[str]:
    problems = []
    wrong = Counter((o.kind, o.answer) for o in outcomes if o.answer not in map(str, KINDS[o.kind].expected[report.engine]))
    for (kind, answer), count in sorted(wrong.items()):
        expected = " or ".join(map(str, sorted(KINDS[kind].expected[report.engine])))
        problems.append(f"{count} '{kind}' request(s) got {answer}, not {expected}")
    rss = report.rss_mib
    bound = rss["start"] * (1 + RSS_GROWTH_SHARE) + RSS_GROWTH_MIB
    if rss["end"] > bound:
        problems.append(f"the server's RSS grew from {rss['start']:.0f} to {rss['end']:.0f} MiB, "
                        f"beyond {bound:.0f} MiB ({RSS_GROWTH_MIB} MiB + {RSS_GROWTH_SHARE:.0%})")
    if not report.answers_after:
        problems.append("the server did not answer a completion after the soak")
    return problems


async def _soak(opts: serve.Options, argv: list[str], env: dict[str, str], seed: int, report: Report) -> None:
    import httpx

    base = f"http://{HOST}:{opts.port}"
    with _server(argv, env) as proc:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT, headers={"Authorization": f"Bearer {opts.api_key}"},
                                     limits=httpx.Limits(max_keepalive_connections=0)) as probe:
            await _wait_ready(proc, probe)
            rng = random.Random(seed)
            for kind in [k for k, v in KINDS.items() if v.valid]:  # warm up: every valid kind once
                await _send(probe, KINDS[kind].make(report.ctx, rng), opts.api_key, kind)
            report.rss_mib["start"] = _rss_mib(proc.pid)
            peak, stop = [report.rss_mib["start"]], asyncio.Event()
            sampler = asyncio.create_task(_sample_rss(proc.pid, peak, stop))
            outcomes: list[Outcome] = []
            started = time.monotonic()
            await asyncio.gather(*(_client(base, opts.engine, opts.api_key, report.ctx, seed * 1000 + i,
                                           started + report.duration_s, outcomes) for i in range(report.clients)))
            elapsed = time.monotonic() - started
            stop.set()
            await sampler
            after = await _send(probe, Request("/v1/completions", json.dumps(
                {"prompt": SHORT_PROMPT, "max_tokens": 8}).encode()), opts.api_key, "after")
            report.answers_after = after.answer == "200" and proc.poll() is None
            report.rss_mib.update(peak=max(peak[0], _rss_mib(proc.pid)), end=_rss_mib(proc.pid))
    answers = defaultdict(Counter)
    for o in outcomes:
        answers[o.kind][o.answer] += 1
    report.answers = {kind: dict(answers[kind]) for kind in KINDS if kind in answers}
    report.requests = len(outcomes)
    whole = [o.seconds for o in outcomes if KINDS[o.kind].valid and o.answer == "200" and o.kind != "leaves mid-stream"]
    report.latency_s = {"p50": round(_percentile(whole, 50), 3), "p99": round(_percentile(whole, 99), 3)}
    report.tokens_per_s = round(sum(o.tokens for o in outcomes if KINDS[o.kind].valid) / elapsed, 2)
    report.duration_s = round(elapsed, 1)
    report.problems = _problems(report, outcomes)


def run(model: Path, engine: str = "python", clients: int = 32, duration: float = 300, parallel: int | None = None,
        threads: int | None = None, ctx: int | None = None, seed: int = 1) -> Report:
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise VeclutError("veclut soak needs httpx; install it with `pip install -e '.[soak]'` in the veclut checkout") from None
    if clients < 1 or duration <= 0:
        raise VeclutError(f"--clients must be at least 1 and --duration above 0 (got {clients} and {duration})")
    opts = serve.Options(model=model, engine=engine, host=HOST, port=_free_port(), ctx=ctx, threads=threads,
                         api_key=secrets.token_urlsafe(16), parallel=parallel)
    argv, env, info = serve.command(opts)
    cpu = cpuinfo.identity()
    report = Report(engine, model.name, f"{cpuinfo.model_name()} family {cpu.get('family')} model {cpu.get('model')}, "
                    f"{usable_cpus()} usable CPUs", clients, duration, serve.thread_count(threads),
                    serve.context_size(info, ctx))
    asyncio.run(_soak(opts, argv, env, seed, report))
    return report


def as_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2)


def table(report: Report):
    """The figures as a rich table: one row per kind of request, then the totals."""
    from rich.table import Table

    t = Table(title=f"soak: {report.engine} engine, {report.model}, {report.clients} clients, {report.duration_s} s, "
                    f"{report.threads} threads, {report.cpu}")
    t.add_column("kind")
    t.add_column("answers")
    for kind, answers in report.answers.items():
        t.add_row(kind, ", ".join(f"{answer}: {count}" for answer, count in sorted(answers.items())))
    rss = report.rss_mib
    t.add_section()
    for name, value in (("requests", str(report.requests)),
                        ("latency of valid requests", f"p50 {report.latency_s['p50']} s, p99 {report.latency_s['p99']} s"),
                        ("generated tokens/s", str(report.tokens_per_s)),
                        ("server RSS", f"start {rss['start']:.0f} MiB, peak {rss['peak']:.0f} MiB, end {rss['end']:.0f} MiB"),
                        ("answers afterwards", "yes" if report.answers_after else "NO")):
        t.add_row(name, value)
    return t
