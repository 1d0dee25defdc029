from pathlib import Path

import pytest
import yaml

from veclut.config import load_profile, load_upstream, profile_files
from veclut.errors import VeclutError

ROOT = Path(__file__).resolve().parents[1]


def test_upstream_pin_is_complete():
    pin = load_upstream()
    assert pin.package == "llama-cpp-python"
    assert pin.requirement == f"llama-cpp-python=={pin.version}"
    assert len(pin.sha256) == 64
    assert pin.llama_cpp_commit.startswith("0c1e5709")


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_upstream_pin_rejects_bad_sha(tmp_path):
    data = yaml.safe_load((ROOT / "configs/upstream.yaml").read_text())
    data["sha256"] = "xyz"
    with pytest.raises(VeclutError, match="64 hex digits"):
        load_upstream(_write(tmp_path, "upstream.yaml", data))


def test_upstream_pin_names_missing_key(tmp_path):
    data = yaml.safe_load((ROOT / "configs/upstream.yaml").read_text())
    del data["llama_cpp_commit"]
    with pytest.raises(VeclutError, match="lacks the key 'llama_cpp_commit'"):
        load_upstream(_write(tmp_path, "upstream.yaml", data))


def test_invalid_yaml_is_one_sentence(tmp_path):
    path = tmp_path / "upstream.yaml"
    path.write_text("package: [unclosed\n")
    with pytest.raises(VeclutError, match="not valid YAML"):
        load_upstream(path)


@pytest.mark.parametrize("name", sorted(profile_files()))
def test_every_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.targets, "a profile builds something"
    assert "veclut-info" in profile.programs
    assert profile.cmake["GGML_NATIVE"] in ("ON", "OFF")
    assert profile.cmake["LLAMA_USE_PREBUILT_UI"] == "OFF", "no downloads during the build"


def test_expected_profiles_exist():
    assert {"native", "avx2", "avx512", "scalar", "arm64"} <= set(profile_files())


def test_unknown_profile_lists_known_ones():
    with pytest.raises(VeclutError) as err:
        load_profile("avx9000")
    message = str(err.value)
    assert "unknown build profile 'avx9000'" in message
    for known in ("native", "scalar", "arm64"):
        assert known in message


def test_profile_values_and_shared_target_sets(tmp_path):
    (tmp_path / "_shared.yaml").write_text(yaml.safe_dump(
        {"cmake": {"A": True, "B": "x"}, "target_sets": {"small": ["ggml", "prog"]}}))
    _write(tmp_path, "p.yaml", {"description": "d", "targets": "small", "cmake": {"A": False, "C": 3}})
    profile = load_profile("p", tmp_path)
    assert profile.cmake == {"A": "OFF", "B": "x", "C": "3"}
    assert profile.targets == ("ggml", "prog")
    assert profile.programs == ("prog",)


def test_profile_with_undefined_target_set(tmp_path):
    _write(tmp_path, "p.yaml", {"description": "d", "targets": "nope"})
    with pytest.raises(VeclutError, match="target set 'nope' is not defined"):
        load_profile("p", tmp_path)


def test_a_profile_this_cpu_cannot_run_is_named_with_what_it_lacks(monkeypatch):
    from veclut import cpuinfo

    avx512, arm64 = load_profile("avx512"), load_profile("arm64")
    assert "AVX-512" in avx512.cpu_features
    monkeypatch.setattr(cpuinfo, "features", lambda: {name: name == "AVX2" for name in cpuinfo.FEATURES})
    assert cpuinfo.lacking(avx512) == list(avx512.cpu_features)
    reason = cpuinfo.cannot_run_reason(avx512)
    assert reason.startswith("profile avx512 was compiled for AVX-512") and "lacks" in reason
    assert cpuinfo.cannot_run_reason(load_profile("avx2")) is None
    assert cpuinfo.lacking(arm64) == []  # runs under its emulator, whatever this CPU is
    monkeypatch.setattr(cpuinfo, "features", lambda: {name: True for name in cpuinfo.FEATURES})
    assert cpuinfo.cannot_run_reason(avx512) is None


def test_requires_python_admits_only_versions_that_have_what_the_code_uses():
    """tarfile's extraction filters (PEP 706: upstream.py unpacks with filter="data") came with
    3.10.12, 3.11.4 and 3.12; `X | None` annotations evaluated at import need 3.10. The old
    ">=3.10" admitted 3.10.0-3.10.11 and 3.11.0-3.11.3, where `veclut fetch` fails on the filter."""
    import re

    from packaging.specifiers import SpecifierSet

    pyproject = (ROOT / "pyproject.toml").read_text()  # no tomllib: 3.10 runs these tests too
    spec = SpecifierSet(re.search(r'^requires-python = "([^"]+)"$', pyproject, re.M)[1])
    lacking = ["3.9.18", "3.10.0", "3.10.11", "3.11.0", "3.11.3"]
    having = ["3.10.12", "3.10.14", "3.11.4", "3.11.7", "3.12.0", "3.13.1"]
    assert [v for v in lacking if v in spec] == [] and [v for v in having if v not in spec] == []
    import tarfile

    assert hasattr(tarfile, "data_filter"), "this interpreter is one of those it admits"
