"""Fetching the pinned sdist: verified, cached, and never left half-downloaded."""

import errno
import hashlib
import io
import tarfile

import local_index
import pytest

from veclut import atomic, upstream
from veclut.config import UpstreamPin
from veclut.errors import VeclutError


def _sdist_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {"pkg-1.0/vendor/llama.cpp/CMakeLists.txt": b"project(x)\n",
                           "pkg-1.0/README.md": b"hi\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


SDIST = _sdist_bytes()


def _pin(sha=None) -> UpstreamPin:
    return UpstreamPin(package="pkg", version="1.0", sdist="pkg-1.0.tar.gz",
                       sha256=sha or hashlib.sha256(SDIST).hexdigest(),
                       llama_cpp_commit="c" * 40, llama_cpp_dir="vendor/llama.cpp")


def _downloader(payload=SDIST, calls=None):
    def download(pin, dest):
        if calls is not None:
            calls.append(pin)
        (dest / pin.sdist).write_bytes(payload)
    return download


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VECLUT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_is_verified_cached_and_unpacked_once(cache):
    calls = []
    tree = upstream.ensure_unpacked(_pin(), _downloader(calls=calls))
    assert (tree / "vendor/llama.cpp/CMakeLists.txt").read_text() == "project(x)\n"
    assert upstream.sdist_path(_pin()).read_bytes() == SDIST
    assert upstream.ensure_unpacked(_pin(), _downloader(calls=calls)) == tree
    assert len(calls) == 1, "the second run downloads nothing"


def test_sha_mismatch_is_refused_and_the_download_deleted(cache):
    with pytest.raises(VeclutError) as err:
        upstream.ensure_sdist(_pin(sha="1" * 64), _downloader())
    assert "sha256" in str(err.value) and "1" * 64 in str(err.value)
    assert "deleted" in str(err.value)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == [], f"nothing of the bad download is kept: {leftovers}"


def test_interrupted_download_leaves_nothing_and_next_run_recovers(cache):
    def interrupted(pin, dest):
        (dest / pin.sdist).write_bytes(SDIST[:100])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upstream.ensure_sdist(_pin(), interrupted)
    assert not upstream.sdist_path(_pin()).exists()
    assert upstream.ensure_sdist(_pin(), _downloader()).read_bytes() == SDIST


def test_stale_staging_of_a_dead_process_is_cleaned(cache):
    stale = cache / "sdist" / ".veclut-tmp-999999999-download-1.0"  # no such pid
    stale.mkdir(parents=True)
    (stale / "pkg-1.0.tar.gz").write_bytes(b"partial")
    upstream.ensure_sdist(_pin(), _downloader())
    assert not stale.exists()


def test_corrupted_cache_entry_is_fetched_again(cache):
    upstream.ensure_sdist(_pin(), _downloader())
    upstream.sdist_path(_pin()).write_bytes(b"bit rot")
    assert upstream.ensure_sdist(_pin(), _downloader()).read_bytes() == SDIST


def test_wrong_archive_layout_is_refused(cache):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/README.md")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    payload = buffer.getvalue()
    pin = _pin(sha=hashlib.sha256(payload).hexdigest())
    with pytest.raises(VeclutError, match="does not contain vendor/llama.cpp"):
        upstream.ensure_unpacked(pin, _downloader(payload))
    assert not upstream.unpacked_path(pin).exists()


def test_cache_under_a_file_is_a_clear_message(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("VECLUT_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(VeclutError, match="a parent of the path is a file"):
        upstream.ensure_sdist(_pin(), _downloader())


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")])
def test_read_only_or_full_cache_is_a_clear_message(cache, monkeypatch, code, words):
    def failing_mkdtemp(*args, **kwargs):
        raise OSError(code, "simulated", str(cache))

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", failing_mkdtemp)
    with pytest.raises(VeclutError) as err:
        upstream.ensure_sdist(_pin(), _downloader())
    assert words in str(err.value) and "VECLUT_CACHE_DIR" in str(err.value)


def _local_pin(sha: str) -> UpstreamPin:
    return UpstreamPin(package="pkg", version="1.0", sdist="pkg-1.0.tar.gz", sha256=sha,
                       llama_cpp_commit="c" * 40, llama_cpp_dir="vendor/llama.cpp")


def test_pip_refuses_an_sdist_of_another_hash_before_running_anything_from_it(tmp_path, cache, monkeypatch):
    """`pip download` runs an sdist's build backend to read its metadata: with an unpinned archive
    that must never happen (fails without the hash-checking requirement line: the marker appears)."""
    marker = tmp_path / "backend-ran"
    local_index.publish(tmp_path / "index", "pkg", "1.0", marker, monkeypatch)
    pin = _local_pin("1" * 64)
    with pytest.raises(VeclutError) as err:
        upstream.ensure_unpacked(pin)
    assert not marker.exists(), "pip ran the build backend of an archive whose hash is not pinned"
    message = str(err.value)
    assert "sha256" in message and "1" * 64 in message and "pins" in message
    assert "\n" not in message
    assert [p for p in cache.rglob("*") if p.is_file()] == [], "nothing of the refused archive is kept"


def test_pip_downloads_the_pinned_sdist_from_the_index(tmp_path, cache, monkeypatch):
    marker = tmp_path / "backend-ran"
    sha = local_index.publish(tmp_path / "index", "pkg", "1.0", marker, monkeypatch)
    tree = upstream.ensure_unpacked(_local_pin(sha))
    assert (tree / "vendor/llama.cpp/CMakeLists.txt").read_text() == "project(x)\n"
    assert upstream.sha256_of(upstream.sdist_path(_local_pin(sha))) == sha
