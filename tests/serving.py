"""Start `veclut serve` as a real process on a free loopback port, wait for it with a bounded
timeout, and always stop it (terminate, then kill) — for tests/test_serve.py."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"
READY_TIMEOUT = 120  # seconds; loading the fixture takes a few on an idle machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, *extra: str, api_key: str | None = None, keepalive: bool = True,
                 env: dict | None = None):
        self.port = free_port()
        self.api_key = api_key
        self.keepalive = keepalive
        self.base = f"http://{HOST}:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="veclut-serve-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "veclut.cli", "serve", str(model), "--host", HOST, "--port", str(self.port), *extra]
        env = {**os.environ, **(env or {}), **({"VECLUT_API_KEY": api_key} if api_key else {})}
        # own process group: stop() reaches the server even if it ever forks
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = 120) -> httpx.Client:
        limits = httpx.Limits() if self.keepalive else httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(base_url=self.base, headers=self.headers, timeout=timeout, limits=limits)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"the server exited with {self.proc.returncode} before it was ready:\n{self.output()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/v1/models", headers=self.headers, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server was not ready within {READY_TIMEOUT} s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of a server-sent event stream, in order."""
    return [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
