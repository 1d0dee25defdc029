"""Files and trees on disk: temporary files that no planted symlink can redirect, written durably,
and one build at a time per build tree."""

import os
import subprocess
import sys

import pytest

from conftest import run_veclut
from veclut import atomic
from veclut.errors import VeclutError


def test_write_text_never_follows_a_symlink_planted_at_a_temporary_name(tmp_path):
    """Another user of a shared directory could guess `.veclut-tmp-<pid>-<name>` and point it at a
    file of ours (fails with the old predictable name: the victim was overwritten)."""
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    target = tmp_path / "report.json"
    for guess in (f".veclut-tmp-{os.getpid()}-report.json", f".veclut-tmp-{os.getpid()}-{target.name}"):
        if not (tmp_path / guess).is_symlink():
            (tmp_path / guess).symlink_to(victim)
    atomic.write_text(target, "new\n", "write the report")
    assert target.read_text() == "new\n" and not target.is_symlink()
    assert victim.read_text() == "keep me\n"


def test_write_text_syncs_the_file_before_and_the_directory_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        events.append(f"fsync {kind}")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_text(tmp_path / "state.json", "{}\n", "write the state")
    assert events == ["fsync file", "rename", "fsync dir"]
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temporary file is left"


def test_write_text_failure_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(VeclutError, match="the disk is full"):
        atomic.write_text(tmp_path / "state.json", "{}\n", "write the state")
    assert list(tmp_path.iterdir()) == []


HOLD_LOCK = """
import sys
from pathlib import Path
from veclut import atomic
with atomic.tree_lock(Path(sys.argv[1]), "lock"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_build_of_one_tree_waits_for_the_first(tmp_path):
    """Without the lock the second build went ahead at once (here: straight to its download,
    which fails offline); with it, it says it waits, and goes on only when the first is done."""
    build_dir = tmp_path / "build"
    first = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(build_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        offline = {"VECLUT_BUILD_DIR": str(build_dir), "VECLUT_CACHE_DIR": str(tmp_path / "cache"),
                   "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}
        second = subprocess.Popen([sys.executable, "-m", "veclut.cli", "build", "--profile", "scalar"],
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, **offline})
        waiting = second.stderr.readline()
        assert "is building in" in waiting and f"pid {first.pid}" in waiting, waiting
        assert second.poll() is None, "it waits while the first holds the tree"
        first.stdin.close()
        assert first.wait(60) == 0
        rest = second.stderr.read()
        assert second.wait(120) == 1 and "pip could not download" in " ".join(rest.split()), rest
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()


def test_the_lock_is_reentrant_and_released_with_its_holder(tmp_path):
    with atomic.tree_lock(tmp_path, "lock"):
        with atomic.tree_lock(tmp_path, "lock"):  # ensure_patched inside build
            pass
    crashed = subprocess.run([sys.executable, "-c", HOLD_LOCK.replace("sys.stdin.read()", "import os; os._exit(3)"),
                              str(tmp_path)], capture_output=True, text=True)
    assert crashed.returncode == 3
    with atomic.tree_lock(tmp_path, "lock"):  # a dead holder blocks nobody
        pass
