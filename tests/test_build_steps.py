"""configure + ninja on a tiny CMake project: incremental, honest about 'up to date', and
recovering from an interrupted configure without manual cleanup."""

import pytest

from veclut import build
from veclut.config import BuildProfile


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    tree = tmp_path / "src"
    project = tree / "vendor/llama.cpp"
    project.mkdir(parents=True)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.14)\nproject(tiny C)\nadd_executable(hello hello.c)\n")
    (project / "hello.c").write_text("int main(void) { return 0; }\n")
    monkeypatch.setattr(build, "llama_cpp_dir", lambda t: t / "vendor/llama.cpp")
    monkeypatch.setattr(build, "cmake_defines", lambda p: dict(p.cmake))
    profile = BuildProfile(name="tiny", description="t", cmake={"CMAKE_BUILD_TYPE": "Release"}, targets=("hello",))
    return profile, tree, tmp_path / "build"


def test_second_build_is_up_to_date_and_a_change_rebuilds(tiny):
    profile, tree, out = tiny
    assert build.configure(profile, tree, out) is True
    assert build.run_ninja(profile, out, jobs=1) is False
    assert (out / "hello").exists()
    assert build.configure(profile, tree, out) is False, "same configuration: CMake does not run again"
    assert build.run_ninja(profile, out, jobs=1) is True
    (tree / "vendor/llama.cpp/hello.c").write_text("int main(void) { return 1; }\n")
    assert build.run_ninja(profile, out, jobs=1) is False


def test_interrupted_configure_runs_again(tiny):
    profile, tree, out = tiny
    build.configure(profile, tree, out)
    (out / build.CONFIGURE_STAMP).unlink()  # as if CMake had been killed before finishing
    assert build.configure(profile, tree, out) is True
    assert build.run_ninja(profile, out, jobs=1) is False


def test_changed_profile_reconfigures(tiny):
    profile, tree, out = tiny
    build.configure(profile, tree, out)
    changed = BuildProfile(name="tiny", description="t", cmake={"CMAKE_BUILD_TYPE": "Debug"}, targets=("hello",))
    assert build.configure(changed, tree, out) is True


def test_compile_error_is_one_sentence_with_the_log(tiny):
    profile, tree, out = tiny
    (tree / "vendor/llama.cpp/hello.c").write_text("int main(void) { return }\n")
    build.configure(profile, tree, out)
    with pytest.raises(build.VeclutError, match="building profile tiny failed; the full log is"):
        build.run_ninja(profile, out, jobs=1)
