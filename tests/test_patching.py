"""Applying a series to a small fake upstream tree: success, failure diagnosis, nothing half-done."""

import subprocess
from pathlib import Path

import pytest

from veclut import patching
from veclut.config import UpstreamPin
from veclut.errors import VeclutError

PIN = UpstreamPin(package="fake", version="1.0", sdist="fake-1.0.tar.gz", sha256="0" * 64,
                  llama_cpp_commit="c" * 40, llama_cpp_dir="vendor/llama.cpp")


def _make_patch(base: Path, edit, name: str, header: str, out_dir: Path) -> None:
    """Write patch `name` as the diff that `edit` makes to a copy of `base`."""
    work = out_dir / f"work-{name}"
    subprocess.run(["cp", "-r", str(base), str(work)], check=True)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b"], cwd=work, check=True)
    edit(work)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    diff = subprocess.run(["git", "diff", "--cached", "--full-index"], cwd=work, capture_output=True, text=True).stdout
    (out_dir / name).write_text(header + "\n\n" + diff)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    pristine = tmp_path / "pristine"
    src = pristine / "vendor/llama.cpp"
    src.mkdir(parents=True)
    (src / "CMakeLists.txt").write_text("".join(f"line {i}\n" for i in range(1, 60)))
    (src / "other.c").write_text("int x;\n")
    patches = tmp_path / "patches"
    patches.mkdir()

    def edit_one(tree):
        path = tree / "vendor/llama.cpp/CMakeLists.txt"
        path.write_text(path.read_text().replace("line 10\n", "line 10\nadded by one\n"))

    def edit_two(tree):
        path = tree / "vendor/llama.cpp/CMakeLists.txt"
        text = path.read_text().replace("line 10\n", "line 10\nadded by one\n")
        path.write_text(text.replace("line 50\n", "line 50 changed\n"))
        (tree / "vendor/llama.cpp/new.h").write_text("#pragma once\n")

    _make_patch(pristine, edit_one, "0001-one.patch", "One.", patches)
    one_applied = tmp_path / "after-one"
    subprocess.run(["cp", "-r", str(pristine), str(one_applied)], check=True)
    edit_one(one_applied)
    _make_patch(one_applied, lambda t: (
        (t / "vendor/llama.cpp/CMakeLists.txt").write_text(
            (t / "vendor/llama.cpp/CMakeLists.txt").read_text().replace("line 50\n", "line 50 changed\n")),
        (t / "vendor/llama.cpp/new.h").write_text("#pragma once\n")), "0002-two.patch", "Two.", patches)
    (patches / "series").write_text("0001-one.patch\n0002-two.patch\n")
    build = tmp_path / "build"
    monkeypatch.setenv("VECLUT_BUILD_DIR", str(build))
    monkeypatch.setattr(patching, "ensure_unpacked", lambda pin: pristine)
    return tmp_path, pristine, patches, build


def test_series_applies_as_commits(fake):
    _, _, patches, build = fake
    tree = patching.ensure_patched(PIN, patches)
    assert tree == build / "src"
    text = (tree / "vendor/llama.cpp/CMakeLists.txt").read_text()
    assert "added by one" in text and "line 50 changed" in text
    assert (tree / "vendor/llama.cpp/new.h").is_file()
    log = patching.git(tree, "log", "--format=%s").stdout.split()
    assert log[:2] == ["0002-two.patch", "0001-one.patch"]


def test_second_run_does_nothing_and_change_reapplies(fake):
    _, _, patches, _ = fake
    tree = patching.ensure_patched(PIN, patches)
    marker = (tree / patching.STAMP).stat().st_mtime_ns
    assert patching.ensure_patched(PIN, patches) == tree
    assert (tree / patching.STAMP).stat().st_mtime_ns == marker
    # a changed patch header changes the stamp and the tree is rebuilt
    path = patches / "0002-two.patch"
    path.write_text(path.read_text().replace("Two.", "Two, reworded."))
    patching.ensure_patched(PIN, patches)
    assert "Two, reworded." in patching.git(tree, "log", "-1", "--format=%B").stdout


def test_failing_patch_names_patch_file_and_hunk_and_leaves_no_tree(fake):
    _, pristine, patches, build = fake
    target = pristine / "vendor/llama.cpp/CMakeLists.txt"
    target.write_text(target.read_text().replace("line 50\n", "line fifty\n"))  # upstream moved on
    with pytest.raises(VeclutError) as err:
        patching.ensure_patched(PIN, patches)
    message = str(err.value)
    assert "patch 0002-two.patch no longer applies" in message
    assert "hunk #1 (-48,7 +48,7) of vendor/llama.cpp/CMakeLists.txt" in message
    assert not (build / "src").exists(), "no half-patched tree is left behind"
    assert not list(build.glob(".veclut-tmp-*"))


def test_check_reports_each_patch_and_leaves_nothing(fake):
    _, pristine, patches, build = fake
    rows = patching.check_series(PIN, patches)
    assert rows == [("0001-one.patch", "applies"), ("0002-two.patch", "applies")]
    (pristine / "vendor/llama.cpp/other.c").unlink()
    target = pristine / "vendor/llama.cpp/CMakeLists.txt"
    target.write_text(target.read_text().replace("line 10\n", "line ten\n"))
    rows = patching.check_series(PIN, patches)
    assert rows[0][0] == "0001-one.patch" and "hunk #1" in rows[0][1]
    assert not (build / "src").exists() and not (build / "patch-check").exists()


def test_local_edits_are_never_thrown_away(fake):
    _, _, patches, _ = fake
    tree = patching.ensure_patched(PIN, patches)
    edited = tree / "vendor/llama.cpp/other.c"
    edited.write_text("int y; /* my work */\n")
    path = patches / "0002-two.patch"
    path.write_text(path.read_text().replace("Two.", "Two again."))
    with pytest.raises(VeclutError, match="uncommitted edits"):
        patching.ensure_patched(PIN, patches)
    assert edited.read_text() == "int y; /* my work */\n"


def test_export_round_trip(fake, monkeypatch):
    _, _, patches, _ = fake
    monkeypatch.setattr(patching, "load_upstream", lambda: PIN)
    tree = patching.ensure_patched(PIN, patches)
    (tree / "vendor/llama.cpp/other.c").write_text("int x = 1;\n")
    patching.git(tree, "commit", "-qam", "0003-three.patch\n\nThree: what, why, upstream.")
    names = patching.export_series(patches)
    assert names == ["0001-one.patch", "0002-two.patch", "0003-three.patch"]
    assert (patches / "series").read_text().splitlines()[-1] == "0003-three.patch"
    assert (patches / "0003-three.patch").read_text().startswith("Three: what, why, upstream.")
    # the exported series is what the tree holds, so patching again is a no-op
    assert patching.ensure_patched(PIN, patches) == tree
    assert (tree / "vendor/llama.cpp/other.c").read_text() == "int x = 1;\n"
