"""Where veclut finds its own sources and where it writes caches and builds."""

import os
from pathlib import Path

from .errors import VeclutError

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout holding patches/, ggml_ext/ and configs/ (veclut installs editable)."""
    env = os.environ.get("VECLUT_PROJECT_DIR")
    root = Path(env) if env else PACKAGE_DIR.parents[1]
    if not (root / "patches" / "series").is_file():
        raise VeclutError(
            f"no veclut checkout found at {root} (patches/series is missing); "
            "install veclut from its checkout with `pip install -e .` or set VECLUT_PROJECT_DIR"
        )
    return root


def configs_dir() -> Path:
    return project_root() / "configs"


def cache_dir() -> Path:
    """Downloads and pristine unpacked sources, shared by all checkouts of a user."""
    env = os.environ.get("VECLUT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "veclut"


def build_root() -> Path:
    """Patched tree and per-profile builds: <checkout>/build unless overridden."""
    env = os.environ.get("VECLUT_BUILD_DIR")
    return Path(env) if env else project_root() / "build"


def source_tree() -> Path:
    return build_root() / "src"


def profile_build_dir(profile: str) -> Path:
    return build_root() / profile
