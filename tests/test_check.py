"""`veclut check`: report pieces, bad input, and a real run on a built profile."""

import json
import xml.etree.ElementTree as ET

import pytest

from conftest import run_veclut
from veclut import check, junit
from veclut.errors import VeclutError
from veclut.logits import LogitComparison


def _result(kld=1e-5, same_top=0.995, ppl_ratio=1.0004):
    return LogitComparison(kld=kld, same_top=same_top, ppl_ratio=ppl_ratio, ppl=10.0, ppl_base=10.0)


def test_logit_rows_apply_each_limit_in_its_direction():
    rows = {r["metric"]: r["pass"] for r in check.logit_rows("m", _result())}
    assert rows == {"KLD": True, "same top token": True, "|PPL ratio - 1|": True}
    rows = {r["metric"]: r["pass"] for r in check.logit_rows("m", _result(kld=3e-4, same_top=0.98, ppl_ratio=0.998))}
    assert rows == {"KLD": False, "same top token": False, "|PPL ratio - 1|": False}


def test_junit_counts_failures(tmp_path):
    rows = check.logit_rows("m", _result(kld=1.0))
    path = tmp_path / "out.xml"
    junit.write(path, "veclut-check", rows)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert suite.find("testcase/failure").get("message").startswith("KLD 1 > limit")


def test_unbuilt_profile_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("VECLUT_BUILD_DIR", str(tmp_path))
    with pytest.raises(VeclutError, match=r"profile avx2 is not built; run `veclut build --profile avx2`"):
        check.kernel_rows("avx2", quick=True)


def test_profile_this_cpu_cannot_run_is_one_sentence(tmp_path, monkeypatch):
    from veclut import cpuinfo

    monkeypatch.setenv("VECLUT_BUILD_DIR", str(tmp_path))
    (tmp_path / "avx512" / "bin").mkdir(parents=True)
    (tmp_path / "avx512" / "bin" / "test-veclut").write_text("")  # built, as far as check can tell
    monkeypatch.setattr(cpuinfo, "features", lambda: {name: name == "AVX2" for name in cpuinfo.FEATURES})
    with pytest.raises(VeclutError, match=r"profile avx512 was compiled for AVX-512, .* which this CPU .* lacks"):
        check.kernel_rows("avx512", quick=True)


def test_unknown_profile_via_cli():
    result = run_veclut("check", "--profile", "nope")
    assert result.returncode == 1 and "unknown build profile 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.build
def test_missing_model_file_is_one_sentence(native_build, tmp_path):
    result = run_veclut("check", "--quick", "--no-fixture", "--model", str(tmp_path / "x.gguf"))
    assert result.returncode == 1 and "does not exist; name a GGUF model file" in result.stderr


@pytest.mark.build
def test_not_a_model_is_one_sentence(native_build, tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("not a model\n")
    result = run_veclut("check", "--quick", "--no-fixture", "--model", str(bogus))
    assert result.returncode == 1 and "is not a GGUF file (no GGUF magic)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.build
def test_quick_check_writes_json_and_junit(builds, tmp_path):
    builds.get("scalar")
    out_json, out_xml = tmp_path / "check.json", tmp_path / "check.xml"
    result = run_veclut("check", "--quick", "--profile", "scalar", "--no-fixture",
                        "--json", str(out_json), "--junit", str(out_xml))
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    assert report["passed"] is True and report["profile"] == "scalar" and report["machine"]["cpu"]
    whats = [r["what"] for r in report["rows"]]
    assert any(w.startswith("scalar/scalar/I2_V") for w in whats)
    for row in report["rows"]:
        assert row["worst"] <= row["limit"]
    suite = ET.parse(out_xml).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(report["rows"]) and suite.get("failures") == "0"
