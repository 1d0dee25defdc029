"""The programs a build needs, and the Debian package that provides each."""

import shutil
import subprocess

from .errors import VeclutError

# program -> (Debian package, what it is for)
BUILD_TOOLS = {
    "cmake": ("cmake", "configuring llama.cpp"),
    "ninja": ("ninja-build", "building llama.cpp"),
    "cc": ("gcc", "compiling C"),
    "c++": ("g++", "compiling C++"),
    "git": ("git", "keeping the patched tree"),
}
OPTIONAL_TOOLS = {
    "ccache": ("ccache", "faster rebuilds"),
    "aarch64-linux-gnu-g++": ("g++-aarch64-linux-gnu", "the arm64 profile"),
    "clang-19": ("clang-19", "the arm64-portable profile"),
    "qemu-aarch64": ("qemu-user", "running arm64 tests"),
}


def require(programs: dict[str, str]) -> None:
    """Fail with one sentence naming the Debian package of the first missing program."""
    for program, package in programs.items():
        if shutil.which(program) is None:
            raise VeclutError(
                f"{program} is not installed; install it with `apt-get install {package}` and retry"
            )


def require_build_tools(extra: tuple = ()) -> None:
    require({p: pkg for p, (pkg, _) in BUILD_TOOLS.items()} | dict(extra))


def version_of(program: str) -> str | None:
    path = shutil.which(program)
    if path is None:
        return None
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "present"
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0] if first else "present"
