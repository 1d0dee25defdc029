"""The command line as a user meets it: one sentence, a non-zero exit, no traceback."""

import os
import shutil

from conftest import run_veclut


def _assert_one_clear_error(result, *phrases):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "veclut: error:" in result.stderr
    for phrase in phrases:
        assert phrase in " ".join(result.stderr.split()), result.stderr


def test_unknown_profile_lists_the_known_ones():
    result = run_veclut("build", "--profile", "nope")
    _assert_one_clear_error(result, "unknown build profile 'nope'", "native", "arm64")


def test_missing_build_tool_names_the_debian_package(tmp_path):
    # a PATH with every build tool except ninja
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cmake", "cc", "c++", "git", "gcc", "g++"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    result = run_veclut("build", env={"PATH": str(bin_dir), "VECLUT_BUILD_DIR": str(tmp_path / "b")})
    _assert_one_clear_error(result, "ninja is not installed", "apt-get install ninja-build")
    assert not (tmp_path / "b").exists(), "nothing is created before the check"


def test_missing_compiler_names_the_debian_package(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cmake", "ninja", "git"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    result = run_veclut("build", env={"PATH": str(bin_dir)})
    _assert_one_clear_error(result, "cc is not installed", "apt-get install gcc")


def test_help_lists_the_steps():
    result = run_veclut("--help")
    assert result.returncode == 0
    for step in ("fetch", "patch", "build", "doctor"):
        assert step in result.stdout


def test_doctor_reports_tools_and_cpu():
    result = run_veclut("doctor")
    assert "python" in result.stdout and "cmake" in result.stdout
    assert "cpu AVX2" in result.stdout
    assert result.returncode in (0, 1)


def test_serve_reads_the_api_key_from_a_file_or_the_environment(tmp_path, monkeypatch, capsys):
    from veclut.serve import api_key

    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    monkeypatch.setenv("VECLUT_API_KEY", "from-env")
    assert api_key(None, key_file) == "s3cret"
    assert api_key(None, None) == "from-env"
    assert capsys.readouterr().err == ""
    assert api_key("on-argv", None) == "on-argv"
    assert "shows the key to everyone" in " ".join(capsys.readouterr().err.split())


def test_a_bad_api_key_file_is_one_sentence_before_anything_starts(tmp_path):
    model = tmp_path / "model.gguf"  # never read: the key is checked first
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("one\ntwo\n")
    for args, phrase in ((["--api-key-file", str(tmp_path / "absent")], "cannot read the API key file"),
                         (["--api-key-file", str(two_lines)], "must hold one key"),
                         (["--api-key-file", str(two_lines), "--api-key", "x"], "give the API key once")):
        _assert_one_clear_error(run_veclut("serve", str(model), *args), phrase)
