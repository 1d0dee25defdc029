"""`veclut fetch`: a pinned sdist from PyPI (ours, or a peer runtime's), checked and unpacked into the cache.

Every pin goes through this one path: pip download in hash-checking mode (pip compares the
archive with the pinned sha256 before it unpacks it or runs anything from it), the sha256
checked again by us before anything in the archive is read, unpacked under a temporary name and
renamed."""

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import atomic, ui
from .config import UpstreamPin, load_upstream
from .errors import VeclutError
from .paths import cache_dir

_COMPLETE = ".veclut-complete"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# what pip prints when an archive does not have the hash its requirement line pins
_PIP_HASH_MISMATCH = "DO NOT MATCH THE HASHES"


def pip_download(pin: UpstreamPin, dest: Path) -> None:
    """Fetch the sdist through pip (its index, proxies and config apply), without dependencies.

    `pip download` prepares an sdist's metadata, which runs its build backend; a requirement line
    with the pinned hash puts pip in hash-checking mode, where it refuses an archive of another
    hash before it unpacks it, so nothing from an archive we did not pin ever runs."""
    with tempfile.TemporaryDirectory(prefix="veclut-pin-") as req_dir:
        requirement = Path(req_dir) / "requirement.txt"
        requirement.write_text(f"{pin.requirement} --hash=sha256:{pin.sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
               "--disable-pip-version-check", "-d", str(dest), "-r", str(requirement)]
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 and _PIP_HASH_MISMATCH in result.stderr + result.stdout:
        raise VeclutError(
            f"the index offers a {pin.sdist} whose sha256 is not the {pin.sha256} that {pin.config} pins; "
            "pip refused it before running anything from it: check the pin or your package index"
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise VeclutError(
            f"pip could not download {pin.requirement} ({last}); check the network or pip's index settings"
        )


def sdist_path(pin: UpstreamPin) -> Path:
    return cache_dir() / "sdist" / pin.sdist


def unpacked_path(pin: UpstreamPin) -> Path:
    return cache_dir() / "unpacked" / f"{pin.package}-{pin.version}-{pin.sha256[:12]}"


def ensure_sdist(pin: UpstreamPin, downloader=pip_download) -> Path:
    """The verified sdist in the cache; downloads it once. A bad download is deleted, never kept."""
    final = sdist_path(pin)
    if final.is_file():
        if sha256_of(final) == pin.sha256:
            return final
        final.unlink()  # our own cache entry, corrupted: fetch again
    with atomic.staging_dir(final.parent / f"download-{pin.package}-{pin.version}", f"download the {pin.package} sdist") as tmp:
        with ui.status(f"downloading {pin.requirement} sdist through pip"):
            downloader(pin, tmp)
        got = tmp / pin.sdist
        if not got.is_file():
            found = ", ".join(p.name for p in tmp.iterdir()) or "nothing"
            raise VeclutError(f"pip downloaded {found} instead of {pin.sdist}; fix `sdist` in {pin.config}")
        actual = sha256_of(got)
        if actual != pin.sha256:
            raise VeclutError(
                f"{pin.sdist} has sha256 {actual}, but {pin.config} pins {pin.sha256}; "
                "the download was deleted: check the pin or your package index"
            )
        atomic.make_dirs(final.parent, "create the sdist cache")
        got.replace(final)
    return final


def ensure_unpacked(pin: UpstreamPin, downloader=pip_download) -> Path:
    """The pristine unpacked sdist; a marker file says the unpack finished."""
    final = unpacked_path(pin)
    if (final / _COMPLETE).is_file():
        return final
    archive = ensure_sdist(pin, downloader)
    with atomic.staging_dir(final, f"unpack the {pin.package} sdist") as tmp:
        with ui.status(f"unpacking {archive.name}"), tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        roots = [p for p in tmp.iterdir() if p.is_dir()]
        if len(roots) != 1 or not (roots[0] / pin.llama_cpp_dir / "CMakeLists.txt").is_file():
            raise VeclutError(f"{archive.name} does not contain {pin.llama_cpp_dir}; fix llama_cpp_dir in {pin.config}")
        for item in roots[0].iterdir():
            item.rename(tmp / item.name)
        roots[0].rmdir()
        (tmp / _COMPLETE).write_text(pin.sha256 + "\n")
    return final


def fetch(pin: UpstreamPin | None = None) -> Path:
    pin = pin or load_upstream()
    path = ensure_unpacked(pin)
    ui.info(f"upstream {pin.requirement} (llama.cpp {pin.llama_cpp_commit[:10]}) ready at {path}")
    return path
