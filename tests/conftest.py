"""Shared fixtures: builds happen once per session and are reused by every test that needs one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures/bitnet-shakespeare"


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the slow tests: the full kernel matrix, the 8B-parameter conversion")
    parser.addoption("--profiles", default="native,scalar,avx2,asan,avx512,arm64,arm64-nodot,portable",
                     help="build profiles the build-backed tests cover (comma-separated)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="slow: run with --full")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def run_veclut(*args, env=None, cwd=None, timeout=3600):
    """Run the CLI as a user would; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "veclut.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


# Set by .ci/run: a profile whose tools are missing fails instead of being skipped, so CI keeps
# covering every profile; a developer's machine may lack the cross tools and still pass.
REQUIRE_TOOLS = os.environ.get("VECLUT_TESTS_REQUIRE_TOOLS") == "1"


def missing_tools_reason(profile) -> str | None:
    """Why a profile cannot be built here (a cross compiler or emulator not installed), or None."""
    import shutil

    missing = [(program, package) for program, package in profile.required_tools if shutil.which(program) is None]
    if not missing:
        return None
    packages = " ".join(sorted({package for _, package in missing}))
    return (f"profile {profile.name} needs {', '.join(p for p, _ in missing)}, not installed here; "
            f"install with `apt-get update && apt-get install -y {packages}`")


def info_fields(stdout: str) -> dict[str, str]:
    """veclut-info's `key: value` lines."""
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def variant_scores(fields: dict[str, str]) -> dict[str, int]:
    """veclut-info's `cpu_variant_scores` (a portable build): variant -> ggml's score on this CPU."""
    return {name: int(score) for name, score in (item.split("=") for item in fields["cpu_variant_scores"].split())}


def qemu_x86() -> list[str]:
    """qemu-user for x86-64, to run a build on one of its older CPU models (`-cpu Nehalem`)."""
    import shutil

    path = shutil.which("qemu-x86_64")
    if path is None:
        reason = "qemu-x86_64 is not installed; install with `apt-get update && apt-get install -y qemu-user`"
        pytest.fail(reason) if REQUIRE_TOOLS else pytest.skip(reason)
    return [path]


class _Builds:
    """Builds requested by tests, each once per session."""

    def __init__(self):
        self.results = {}

    def get(self, profile: str):
        """The built profile; skips the test (fails under VECLUT_TESTS_REQUIRE_TOOLS=1) when the
        profile's cross tools are not installed."""
        if profile not in self.results:
            from veclut.build import build
            from veclut.config import load_profile

            if reason := missing_tools_reason(load_profile(profile)):
                pytest.fail(reason) if REQUIRE_TOOLS else pytest.skip(reason)
            self.results[profile] = build(profile, bind=(profile == "native"))
        return self.results[profile]

    def runnable(self, profile: str):
        """The built profile, if this machine's CPU can run its programs; skips the test otherwise
        (an AVX-512 profile on a CPU without AVX-512: nothing here can stand in for it)."""
        from veclut import cpuinfo

        result = self.get(profile)
        if reason := cpuinfo.cannot_run_reason(result.profile):
            pytest.skip(reason)
        return result


@pytest.fixture(scope="session")
def builds():
    return _Builds()


@pytest.fixture(scope="session")
def native_build(builds):
    result = builds.get("native")
    _import_what_the_build_installed(result)
    return result


def _import_what_the_build_installed(result):
    """The build installs gguf-py (editable) into this environment while pytest runs; an editable
    install's .pth hook only takes effect in new interpreters, so point this one at it directly."""
    import importlib
    import importlib.util

    importlib.invalidate_caches()
    if importlib.util.find_spec("gguf") is None:
        sys.path.insert(0, str(result.bin_dir.parent.parent / "src/vendor/llama.cpp/gguf-py"))
        importlib.invalidate_caches()


def selected_profiles(config) -> list[str]:
    return [p for p in config.getoption("--profiles").split(",") if p]


def pytest_generate_tests(metafunc):
    if "profile_name" in metafunc.fixturenames:
        metafunc.parametrize("profile_name", selected_profiles(metafunc.config))


@pytest.fixture(scope="session")
def f32_model(native_build, tmp_path_factory):
    """The fixture checkpoint (bitnet-latent) as an F32 GGUF, by llama.cpp's own converter."""
    out = tmp_path_factory.mktemp("model") / "fixture-f32.gguf"
    script = native_build.bin_dir.parent.parent / "src/vendor/llama.cpp/convert_hf_to_gguf.py"
    result = subprocess.run([sys.executable, str(script), str(FIXTURE / "bitnet-latent"), "--outtype", "f32",
                             "--outfile", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def quantized(native_build, f32_model):
    """The same model quantized by the patched llama-quantize into each ternary type."""
    made = {}

    def get(type_name: str, *extra: str) -> Path:
        key = (type_name, extra)
        if key not in made:
            out = f32_model.with_name(f"fixture-{type_name.lower()}{'-'.join(('',) + extra)}.gguf")
            result = subprocess.run([str(native_build.bin_dir / "llama-quantize"), *extra, str(f32_model), str(out), type_name],
                                    capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-2000:]
            made[key] = out
        return made[key]

    return get


@pytest.fixture(scope="session")
def models(native_build, tmp_path_factory):
    """The fixture as I2_V and I1_V (converted by veclut) and as upstream TQ2_0 / TQ1_0."""
    from veclut.convert import run as convert

    work = tmp_path_factory.mktemp("serve-models")
    made = {}
    for upstream, ours in (("TQ2_0", "I2_V"), ("TQ1_0", "I1_V")):
        made[upstream] = FIXTURE / f"fixture-{upstream.lower()}.gguf"
        made[ours] = work / f"fixture-{ours.lower()}.gguf"
        convert(made[upstream], made[ours], ours)
    return made
