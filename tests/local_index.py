"""A package index on disk for `pip download`, with an sdist whose build backend leaves a marker
file when pip runs it — to see whether pip ran anything from an archive (tests/test_upstream.py,
tests/test_peer.py). Nothing here touches the network or the user's pip configuration."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

# PEP 517 hooks enough for `pip download` to read the metadata; importing the module (what pip
# does first) leaves the marker
BACKEND = '''from pathlib import Path
Path({marker!r}).write_text("the build backend ran")

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = Path(metadata_directory) / "{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n")
    return info.name
'''


def sdist_bytes(name: str, version: str, marker: Path, tree: str = "vendor/llama.cpp") -> bytes:
    """An sdist `name`-`version` holding `tree`/CMakeLists.txt and a backend that leaves `marker`."""
    top = f"{name}-{version}"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND.format(marker=str(marker), name=name, version=version),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{tree}/CMakeLists.txt": "project(x)\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def serve_only(directory: Path, monkeypatch) -> None:
    """Make pip (in subprocesses of this test) see `directory` as its only index: no config files,
    no index server, links from that directory."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(directory))


def publish(directory: Path, name: str, version: str, marker: Path, monkeypatch) -> str:
    """Put the sdist into `directory`, make it pip's only index; its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = sdist_bytes(name, version, marker)
    (directory / f"{name}-{version}.tar.gz").write_bytes(payload)
    serve_only(directory, monkeypatch)
    return hashlib.sha256(payload).hexdigest()
