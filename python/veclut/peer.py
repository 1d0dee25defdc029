"""A peer runtime (configs/peers/<name>.yaml) built from its pinned sdist, once, for `veclut bench --peer`.

The sdist goes through upstream.py like ours (sha256 checked before anything in it is read).
Its tree is copied next to the build, with the files the sdist lacks added from configs/peers/,
so the pristine unpacked tree stays as downloaded. Everything lives in the cache: the build
depends on the pin only, so every checkout of a user shares it."""

import shutil
from pathlib import Path

from . import atomic, ui
from .build import configure_cmake, ninja
from .config import Peer
from .errors import VeclutError, describe_os_error
from .paths import build_root, cache_dir, configs_dir, project_root
from .toolchain import require_build_tools
from .upstream import ensure_unpacked, pip_download

_COMPLETE = ".veclut-complete"


def peer_root(peer: Peer) -> Path:
    return cache_dir() / "peers" / f"{peer.name}-{peer.pin.version}-{peer.pin.sha256[:12]}"


def bin_dir(peer: Peer) -> Path:
    return peer_root(peer) / "build" / "bin"


def ensure_source(peer: Peer, downloader=pip_download) -> Path:
    """The peer's tree, ready to configure: a copy of the verified sdist's tree plus `add_files`."""
    final = peer_root(peer) / "src"
    if (final / _COMPLETE).is_file():
        return final
    pristine = ensure_unpacked(peer.pin, downloader) / peer.pin.llama_cpp_dir
    with atomic.staging_dir(final, f"copy the {peer.name} tree") as tmp:
        with ui.status(f"copying the {peer.name} tree"):
            shutil.copytree(pristine, tmp, symlinks=True, dirs_exist_ok=True)  # keeps mtimes
        for inside, ours in peer.add_files.items():
            source = configs_dir() / "peers" / ours
            if not source.is_file():
                raise VeclutError(f"{source} is missing (add_files in {peer.pin.config}); restore it from the veclut checkout")
            atomic.make_dirs((tmp / inside).parent, f"add {inside} to the {peer.name} tree")
            shutil.copyfile(source, tmp / inside)
        (tmp / _COMPLETE).write_text(peer.pin.sha256 + "\n")
    return final


def ensure_built(peer: Peer, jobs: int | None = None, downloader=pip_download) -> Path:
    """The directory of the peer's programs; configures and builds only what changed."""
    require_build_tools()
    source = ensure_source(peer, downloader)
    build_dir = peer_root(peer) / "build"
    what = f"peer {peer.name} ({peer.pin.requirement})"
    try:
        configure_cmake(what, source, build_dir, peer.cmake)
        ninja(what, build_dir, peer.targets, jobs)
    except OSError as err:
        raise describe_os_error(err, f"build {what}") from None
    missing = [t for t in peer.targets if not (bin_dir(peer) / t).is_file()]
    if missing:
        raise VeclutError(f"the {what} build finished without {', '.join(missing)}; "
                          f"check the targets in {peer.pin.config} and {build_dir / 'veclut-build.log'}")
    return bin_dir(peer)


GEMM_PROGRAM = "bench-peer-gemm"


def build_gemm_program(what: str, source_tree: Path, libraries: list[Path], build_dir: Path,
                       jobs: int | None = None) -> Path:
    """bench-peer-gemm (ggml_ext/bench/peer) compiled against the ggml headers of `source_tree` and
    linked with its ggml `libraries`: bench-veclut's measurement on another runtime's kernels."""
    defines = {"CMAKE_BUILD_TYPE": "Release", "PEER_SOURCE_DIR": str(source_tree),
               "PEER_GGML_LIBRARIES": ";".join(map(str, libraries))}
    try:
        configure_cmake(what, project_root() / "ggml_ext" / "bench" / "peer", build_dir, defines)
        ninja(what, build_dir, (GEMM_PROGRAM,), jobs)
    except OSError as err:
        raise describe_os_error(err, f"build {what}") from None
    return build_dir / GEMM_PROGRAM


def gemm_program(peer: Peer, jobs: int | None = None, downloader=pip_download) -> Path:
    """The peer's bench-peer-gemm, linked with the static ggml of the peer's own build (made first
    if needed); built in this checkout's build tree, since the program's source is ours."""
    ensure_built(peer, jobs, downloader)
    return build_gemm_program(f"{GEMM_PROGRAM} for {peer.name}", peer_root(peer) / "src",
                              [peer_root(peer) / "build" / "ggml" / "src" / "libggml.a"],
                              build_root() / "peers" / f"{peer.name}-gemm", jobs)
