"""Bind `import gguf` and `import llama_cpp` in this environment to the patched build.

gguf-py is installed editable from the patched tree. llama-cpp-python is installed from the
same tree with LLAMA_BUILD=OFF (pure Python, no second compile of llama.cpp), and its lib/
directory gets symlinks to the shared libraries the profile just built.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from . import atomic, ui
from .errors import VeclutError
from .paths import build_root

STAMP = "python-bindings.stamp"
LIBRARIES = ("libllama.so", "libggml.so", "libggml-base.so")
# The CPU backend: one libggml-cpu.so, or in a GGML_BACKEND_DL build (the portable profile) one
# libggml-cpu-<variant>.so per CPU level, which ggml loads from beside libggml itself (patches/0009).
CPU_LIBRARY, CPU_VARIANTS = "libggml-cpu.so", "libggml-cpu-*.so"


def _pip(*args: str, what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise VeclutError(f"pip could not install {what} ({last}); check the network or pip's index settings")


def llama_cpp_package_dir() -> Path | None:
    importlib.invalidate_caches()
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _stamp_text(tree: Path, bin_dir: Path) -> str:
    patched = (tree / ".veclut-patched").read_text().split()[0]
    return f"{patched} {sys.prefix} {bin_dir}\n"


def link_libraries(package_dir: Path, bin_dir: Path) -> None:
    """Point llama_cpp/lib at the built libraries (symlinks, so a rebuild takes effect at once)."""
    lib_dir = package_dir / "lib"
    atomic.make_dirs(lib_dir, "create llama_cpp/lib")
    one_cpu_library = (bin_dir / CPU_LIBRARY).exists()
    if not one_cpu_library and not any(bin_dir.glob(CPU_VARIANTS)):
        raise VeclutError(f"{bin_dir} holds no ggml CPU backend ({CPU_LIBRARY} or {CPU_VARIANTS}); rebuild with `veclut build`")
    if not one_cpu_library and (lib_dir / CPU_LIBRARY).is_symlink():
        (lib_dir / CPU_LIBRARY).unlink()  # left by a binding to a build with one CPU library
    for name in LIBRARIES + ((CPU_LIBRARY,) if one_cpu_library else ()):
        target = bin_dir / name
        if not target.exists():
            raise VeclutError(f"{target} was not built; rebuild with `veclut build`")
        link = lib_dir / name
        tmp = lib_dir / f".veclut-tmp-{os.getpid()}-{name}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target.absolute())  # the unversioned name: survives a soname bump
        os.replace(tmp, link)


def bind(tree: Path, llama_cpp_tree: Path, bin_dir: Path) -> None:
    stamp_file = build_root() / STAMP
    stamp = _stamp_text(tree, bin_dir)
    package_dir = llama_cpp_package_dir()
    if not (package_dir and stamp_file.is_file() and stamp_file.read_text() == stamp):
        with ui.status("installing gguf-py from the patched tree"):
            _pip("-e", str(llama_cpp_tree / "gguf-py"), what="gguf-py")
        with ui.status("installing llama-cpp-python (Python only, bound to this build)"):
            _pip("--force-reinstall", "--no-deps", "-C", "cmake.define.LLAMA_BUILD=OFF",
                 "-C", "cmake.define.LLAVA_BUILD=OFF", str(tree), what="llama-cpp-python")
            _pip("typing-extensions>=4.5.0", "numpy>=1.20.0", "diskcache>=5.6.1", "jinja2>=2.11.3",
                 what="llama-cpp-python's dependencies")
        package_dir = llama_cpp_package_dir()
        if package_dir is None:
            raise VeclutError("llama-cpp-python installed but `import llama_cpp` cannot find it; check that pip and python are the same environment")
    link_libraries(package_dir, bin_dir)
    atomic.write_text(stamp_file, stamp, "record the Python bindings")
