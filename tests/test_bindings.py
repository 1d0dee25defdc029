"""llama_cpp/lib's links to a build: one CPU library, or (portable profile) CPU variant modules that
ggml loads from beside libggml, which need no link."""

import pytest

from veclut.bindings import link_libraries
from veclut.errors import VeclutError

LIBS = ("libllama.so", "libggml.so", "libggml-base.so")


def _build(tmp_path, name, *cpu):
    bin_dir = tmp_path / name / "bin"
    bin_dir.mkdir(parents=True)
    for lib in (*LIBS, *cpu):
        (bin_dir / lib).write_text(lib)
    return bin_dir


def test_one_cpu_library_is_linked(tmp_path):
    bin_dir = _build(tmp_path, "native", "libggml-cpu.so")
    link_libraries(tmp_path / "pkg", bin_dir)
    lib = tmp_path / "pkg/lib"
    assert sorted(p.name for p in lib.iterdir()) == sorted([*LIBS, "libggml-cpu.so"])
    assert all(p.resolve().parent == bin_dir.resolve() for p in lib.iterdir())


def test_a_build_of_cpu_variants_replaces_the_old_cpu_link(tmp_path):
    link_libraries(tmp_path / "pkg", _build(tmp_path, "native", "libggml-cpu.so"))
    portable = _build(tmp_path, "portable", "libggml-cpu-x64.so", "libggml-cpu-haswell.so")
    link_libraries(tmp_path / "pkg", portable)
    lib = tmp_path / "pkg/lib"
    assert sorted(p.name for p in lib.iterdir()) == sorted(LIBS)
    assert all(p.resolve().parent == portable.resolve() for p in lib.iterdir())


def test_a_build_without_a_cpu_backend_is_one_sentence(tmp_path):
    with pytest.raises(VeclutError, match="holds no ggml CPU backend"):
        link_libraries(tmp_path / "pkg", _build(tmp_path, "broken"))
