"""`veclut build`: configure and build one profile with CMake + Ninja, then bind Python to it."""

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import atomic, bindings, ui
from .config import BuildProfile, load_profile, load_upstream
from .cpus import usable_cpus
from .errors import VeclutError
from .patching import ensure_patched
from .paths import build_root, profile_build_dir, project_root
from .toolchain import require_build_tools

CONFIGURE_STAMP = "veclut-configure.stamp"
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


@dataclass
class BuildResult:
    profile: BuildProfile
    build_dir: Path
    bin_dir: Path
    up_to_date: bool


def llama_cpp_dir(tree: Path) -> Path:
    return tree / load_upstream().llama_cpp_dir


def cmake_defines(profile: BuildProfile) -> dict[str, str]:
    return {**profile.cmake, "GGML_VECLUT_DIR": str(project_root() / "ggml_ext")}


def _configure_stamp(source: Path, defines: dict[str, str]) -> str:
    text = repr(sorted(defines.items())) + str(source)
    return hashlib.sha256(text.encode()).hexdigest()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def configure(profile: BuildProfile, tree: Path, build_dir: Path) -> bool:
    """Run CMake for a profile unless this exact configuration already succeeded; True if it ran."""
    return configure_cmake(f"profile {profile.name}", llama_cpp_dir(tree), build_dir, cmake_defines(profile))


def configure_cmake(what: str, source: Path, build_dir: Path, defines: dict[str, str]) -> bool:
    """Configure `source` for Ninja with `defines` unless a stamp says this exact configuration
    already succeeded in `build_dir`; True if CMake ran."""
    stamp_file = build_dir / CONFIGURE_STAMP
    stamp = _configure_stamp(source, defines)
    if (build_dir / "build.ninja").is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return False
    atomic.make_dirs(build_dir, "create the build directory")
    stamp_file.unlink(missing_ok=True)  # an interrupted configure must run again
    log = build_dir / "veclut-configure.log"
    cmd = ["cmake", "-G", "Ninja", "-S", str(source), "-B", str(build_dir)]
    cmd += [f"-D{k}={v}" for k, v in defines.items()]
    with ui.status(f"configuring {what} (CMake)"), log.open("w") as handle:
        code = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        ui.console.print(_tail(log), markup=False)
        raise VeclutError(f"CMake could not configure {what}; the log is {log}")
    stamp_file.write_text(stamp)
    return True


def _ccache_env() -> dict[str, str]:
    """ccache keys on paths relative to checkout and build, so another clone (CI) reuses the cache."""
    base = os.path.commonpath([project_root(), build_root()])
    return {} if base == os.sep else {"CCACHE_BASEDIR": base, "CCACHE_NOHASHDIR": "true"}


def run_ninja(profile: BuildProfile, build_dir: Path, jobs: int | None) -> bool:
    """Build the profile's targets; True if nothing was compiled or linked."""
    return ninja(f"profile {profile.name}", build_dir, profile.targets, jobs)


def ninja(what: str, build_dir: Path, targets: tuple, jobs: int | None) -> bool:
    """Build `targets` with a progress bar, logging to veclut-build.log; True if nothing was compiled
    or linked. (llama.cpp's UI-asset step runs on every build, so "ninja: no work to do" never appears.)"""
    log = build_dir / "veclut-build.log"
    # ninja's own default is the machine's CPUs + 2; before 1.12 it ignores a cgroup CPU quota
    cmd = ["ninja", "-C", str(build_dir), "-j", str(jobs or usable_cpus() + 2), *targets]
    env = {**_ccache_env(), **os.environ, "NINJA_STATUS": "[%f/%t] "}
    no_work = True
    with log.open("w", buffering=1) as handle, ui.progress() as bar:
        task = bar.add_task(f"building {what}", total=None)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            handle.write(line)
            if match := _NINJA_STEP.match(line):
                bar.update(task, completed=int(match[1]), total=int(match[2]))
                no_work = no_work and not line[match.end():].lstrip().startswith(("Building", "Linking"))
        code = proc.wait()
    if code != 0:
        ui.console.print(_tail(log), markup=False)
        raise VeclutError(f"building {what} failed; the full log is {log}")
    return no_work


def build(profile_name: str = "native", jobs: int | None = None, bind: bool | None = None) -> BuildResult:
    profile = load_profile(profile_name)
    require_build_tools(profile.required_tools)
    with atomic.tree_lock(build_root(), "lock the build directory"):  # two builds of one tree wait in turn
        return _build(profile, jobs, bind)


def _build(profile: BuildProfile, jobs: int | None, bind: bool | None) -> BuildResult:
    tree = ensure_patched()
    build_dir = profile_build_dir(profile.name)
    configured = configure(profile, tree, build_dir)
    no_work = run_ninja(profile, build_dir, jobs)
    result = BuildResult(profile, build_dir, build_dir / "bin", no_work and not configured)
    if bind if bind is not None else profile.bind_python:
        if not profile.host_runnable:
            raise VeclutError(f"profile {profile.name} is cross-compiled; Python can only be bound to a profile that runs here")
        bindings.bind(tree, llama_cpp_dir(tree), result.bin_dir)
    return result
