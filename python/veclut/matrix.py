"""The kernel equivalence matrix (configs/check/matrix.yaml) run through test-veclut."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import BuildProfile, load_yaml
from .errors import VeclutError
from .paths import configs_dir

ENTRY_KEYS = ("shapes", "tokens", "threads", "inputs", "variants", "paths")
# optional: `experts: [E/U, ...]` turns every case of the entry into a MUL_MAT_ID (E experts, U per
# token), run once with a broadcast activation row and once with a row per slot; `src1: [3d,
# permuted]` gives MUL_MAT its tokens as a 3-D batch, contiguous or as a permuted view; `env:
# {NAME: value}` runs the entry with those library settings (e.g. VECLUT_I1_COMPACT)


@dataclass(frozen=True)
class Run:
    """One test-veclut invocation: all cases of an entry for one path."""
    shapes: tuple
    tokens: tuple
    threads: tuple
    inputs: tuple
    variants: tuple
    path: str
    experts: str = ""  # "E/U": MUL_MAT_ID; empty: MUL_MAT
    src1: str = "flat"  # layout of MUL_MAT's activations: flat, 3d or permuted
    env: tuple = ()  # (name, value) pairs set for test-veclut

    def args(self) -> list[str]:
        join = lambda items: ",".join(str(i) for i in items)  # noqa: E731
        moe = ["--experts", self.experts] if self.experts else []
        return ["--shapes", join(self.shapes), "--tokens", join(self.tokens), "--threads", join(self.threads),
                "--inputs", join(self.inputs), "--variants", join(self.variants), "--path", self.path,
                "--src1", self.src1, *moe]

    @property
    def cases(self) -> int:
        per_tokens = 2 if self.experts else 1  # broadcast and per-slot activation rows
        return len(self.shapes) * len(self.tokens) * per_tokens * len(self.threads) * len(self.inputs) * len(self.variants)


def load_matrix(level: str, path: Path | None = None) -> list[Run]:
    path = path or configs_dir() / "check" / "matrix.yaml"
    data = load_yaml(path)
    if level not in data:
        raise VeclutError(f"{path} has no '{level}' matrix; known: {', '.join(data)}")
    runs = []
    for number, entry in enumerate(data[level], 1):
        missing = [k for k in ENTRY_KEYS if k not in entry]
        if missing:
            raise VeclutError(f"{path}: entry {number} of '{level}' lacks {', '.join(missing)}")
        for path_name in entry["paths"]:
            for experts in entry.get("experts", [""]):
                for src1 in entry.get("src1", ["flat"]):
                    runs.append(Run(*(tuple(entry[k]) for k in ENTRY_KEYS[:-1]), path=path_name,
                                    experts=str(experts), src1=src1,
                                    env=tuple((str(k), str(v)) for k, v in entry.get("env", {}).items())))
    return runs


def kernel_sets(profile: BuildProfile, bin_dir: Path) -> list[str]:
    """The kernel sets compiled into a build, as the library itself reports them."""
    result = subprocess.run([*profile.runner, str(bin_dir / "veclut-info")], capture_output=True, text=True, timeout=600,
                            env={**os.environ, **profile.run_env})
    for line in result.stdout.splitlines():
        if line.startswith("kernel_sets:"):
            return [s for s in line.split(":", 1)[1].strip().split(",") if s]
    raise VeclutError(f"veclut-info of profile {profile.name} reports no kernel sets; rebuild it with `veclut build --profile {profile.name}`")


def run_matrix(profile: BuildProfile, bin_dir: Path, runs: list[Run], timeout: int = 3600) -> list[dict]:
    """All result rows, for every kernel set of the build; raises if test-veclut crashes
    (a failed case is a row with pass=false)."""
    rows = []
    for kernels in kernel_sets(profile, bin_dir):
        for row in _run_kernel_set(profile, bin_dir, runs, kernels, timeout):
            rows.append({**row, "kernels": kernels})
    return rows


def _run_kernel_set(profile: BuildProfile, bin_dir: Path, runs: list[Run], kernels: str, timeout: int) -> list[dict]:
    rows = []
    env = {**os.environ, **profile.run_env, "VECLUT_KERNELS": kernels}
    shown_env = " ".join(f"{k}={v}" for k, v in {**profile.run_env, "VECLUT_KERNELS": kernels}.items())
    for run in runs:
        cmd = [*profile.runner, str(bin_dir / "test-veclut"), *run.args()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**env, **dict(run.env)})
        got = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode not in (0, 1) or len(got) != run.cases:
            run_env = "".join(f" {k}={v}" for k, v in run.env)
            raise VeclutError(f"test-veclut ({kernels} kernels) stopped after {len(got)} of {run.cases} cases "
                              f"(exit {result.returncode}: {stop_reason(result.stderr)}); rerun it by hand: {shown_env}{run_env} {' '.join(cmd)}")
        rows.extend({**row, "env": " ".join(f"{k}={v}" for k, v in run.env)} if run.env else row for row in got)
    return rows


def stop_reason(stderr: str) -> str:
    """Why a program stopped: a sanitizer's finding (its report ends in a generic line), else its last line."""
    lines = stderr.strip().splitlines()
    found = [line.strip() for line in lines if "Sanitizer:" in line or ": runtime error:" in line]
    return (found or lines or ["no output"])[0 if found else -1]


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Worst NMSE per (kernel set, variant) against float64 and against upstream, and the failures."""
    out: dict[str, dict] = {}
    for row in rows:
        op = "/MUL_MAT_ID" if row.get("experts") else ""
        env = f" [{row['env']}]" if row.get("env") else ""
        s = out.setdefault(f"{row.get('kernels', '?')}/{row['variant']}{op}{env}", {"cases": 0, "failed": 0, "worst_nmse_ref": 0.0, "worst_nmse_upstream": 0.0})
        s["cases"] += 1
        s["failed"] += 0 if row["pass"] else 1
        s["worst_nmse_ref"] = max(s["worst_nmse_ref"], row["nmse_ref"])
        s["worst_nmse_upstream"] = max(s["worst_nmse_upstream"], row["nmse_upstream"])
    return out

