"""`veclut patch`: the series applied to a clean copy of the pinned tree, as a git repository.

The patched tree (build/src) holds one commit per patch on top of an `upstream` tag, so a
developer edits it with ordinary git and `veclut patch --export` writes the series back.
"""

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import atomic, ui
from .config import UpstreamPin, load_upstream
from .errors import VeclutError
from .patchfile import Patch, parse_patch, parse_series
from .paths import build_root, project_root, source_tree
from .upstream import ensure_unpacked

STAMP = ".veclut-patched"
_GIT_ID = ["-c", "user.name=veclut", "-c", "user.email=veclut@localhost", "-c", "commit.gpgsign=false"]
_FAILED = re.compile(r"^error: patch failed: (.+):(\d+)$", re.M)
_MISSING = re.compile(r"^error: (.+): (?:does not exist in index|No such file or directory)$", re.M)
_EXISTS = re.compile(r"^error: (.+): already exists in (?:index|working directory)$", re.M)


def patches_dir() -> Path:
    return project_root() / "patches"


def load_series(directory: Path | None = None) -> list[Patch]:
    directory = directory or patches_dir()
    return [parse_patch(directory / name) for name in parse_series(directory / "series")]


def series_stamp(pin: UpstreamPin, directory: Path | None = None) -> str:
    """Identifies a patched tree: the pinned sdist plus the exact bytes of every patch in order."""
    directory = directory or patches_dir()
    digest = hashlib.sha256(pin.sha256.encode())
    for name in parse_series(directory / "series"):
        digest.update(name.encode() + b"\0" + (directory / name).read_bytes())
    return digest.hexdigest()


def git(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *_GIT_ID, "-C", str(tree), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise VeclutError(f"git {args[0]} failed in {tree}: {result.stderr.strip().splitlines()[-1:]}")
    return result


@dataclass
class PatchFailure:
    patch: str
    file: str
    hunk: str

    def sentence(self) -> str:
        return (f"patch {self.patch} no longer applies: {self.hunk} of {self.file} does not match the pinned tree; "
                "refresh it (README: Editing the patch series)")


def diagnose(patch: Patch, stderr: str) -> PatchFailure:
    """Name the file and hunk git could not apply."""
    if match := _FAILED.search(stderr):
        path, line = match[1], int(match[2])
        hunk = patch.hunk_at(path, line)
        where = f"hunk #{hunk.number} ({hunk.header.split('@@')[1].strip()})" if hunk else f"the hunk at line {line}"
        return PatchFailure(patch.name, path, where)
    if match := _MISSING.search(stderr):
        return PatchFailure(patch.name, match[1], "the file it changes (missing upstream)")
    if match := _EXISTS.search(stderr):
        return PatchFailure(patch.name, match[1], "the new file (it already exists)")
    last = (stderr.strip().splitlines() or ["unknown error"])[-1]
    return PatchFailure(patch.name, "?", f"an unparsed failure ({last})")


def apply_series(tree: Path, patches: list[Patch], directory: Path) -> PatchFailure | None:
    """Apply and commit each patch in order; stop at the first that fails and say where."""
    for patch in patches:
        path = directory / patch.name
        result = git(tree, "apply", "--index", "--whitespace=nowarn", str(path), check=False)
        if result.returncode != 0:
            return diagnose(patch, result.stderr)
        git(tree, "commit", "-q", "--no-verify", "-m", f"{patch.name}\n\n{patch.header}")
    return None


def _init_upstream(tree: Path, pristine: Path, pin: UpstreamPin) -> None:
    shutil.copytree(pristine, tree, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", ".veclut-complete"))
    git(tree, "init", "-q")
    git(tree, "add", "-A", "-f")
    git(tree, "commit", "-q", "--no-verify", "-m", f"upstream {pin.requirement} (llama.cpp {pin.llama_cpp_commit})")
    git(tree, "tag", "upstream")


def local_edits(tree: Path) -> str | None:
    """Why the patched tree must not be replaced (the developer's work would be lost), or None."""
    if not (tree / ".git").is_dir():
        return None
    if git(tree, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip():
        return "it has uncommitted edits"
    stamp = tree / STAMP
    recorded = stamp.read_text().split()[1] if stamp.is_file() and len(stamp.read_text().split()) > 1 else None
    head = git(tree, "rev-parse", "HEAD", check=False).stdout.strip()
    if recorded and head != recorded:
        return "it has commits that are not in patches/"
    return None


def _keep_unchanged_mtimes(old: Path, new: Path, patches: list[Patch]) -> None:
    """Files whose patched content did not change keep their old mtime, so ninja rebuilds less."""
    for patch in patches:
        for diff in patch.files:
            before, after = old / diff.path, new / diff.path
            if before.is_file() and after.is_file() and before.read_bytes() == after.read_bytes():
                stat = before.stat()
                os.utime(after, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def ensure_patched(pin: UpstreamPin | None = None, directory: Path | None = None) -> Path:
    """The patched tree at build/src, rebuilt only when the pin or a patch changed."""
    with atomic.tree_lock(build_root(), "lock the build directory"):  # a build of this tree may be using it
        return _ensure_patched(pin, directory)


def _ensure_patched(pin: UpstreamPin | None, directory: Path | None) -> Path:
    pin = pin or load_upstream()
    directory = directory or patches_dir()
    patches = load_series(directory)
    stamp = series_stamp(pin, directory)
    tree = source_tree()
    marker = tree / STAMP
    if marker.is_file() and marker.read_text().split()[0] == stamp:
        return tree
    if reason := local_edits(tree):
        raise VeclutError(
            f"the patched tree {tree} cannot be refreshed because {reason}; save them with "
            "`veclut patch --export` or discard them with `git -C build/src reset --hard` and retry"
        )
    pristine = ensure_unpacked(pin)
    with atomic.staging_dir(tree, "write the patched tree") as tmp:
        with ui.status(f"copying the pristine tree and applying {len(patches)} patches"):
            _init_upstream(tmp, pristine, pin)
            failure = apply_series(tmp, patches, directory)
        if failure:
            raise VeclutError(failure.sentence())
        head = git(tmp, "rev-parse", "HEAD").stdout.strip()
        (tmp / STAMP).write_text(f"{stamp} {head}\n")
        if tree.is_dir():
            _keep_unchanged_mtimes(tree, tmp, patches)
    ui.info(f"applied {len(patches)} patches to {tree}")
    return tree


def check_series(pin: UpstreamPin | None = None, directory: Path | None = None) -> list[tuple[str, str]]:
    """Apply the series to a throw-away copy; (patch, result) rows, nothing left behind."""
    pin = pin or load_upstream()
    directory = directory or patches_dir()
    patches = load_series(directory)
    pristine = ensure_unpacked(pin)
    rows = []
    scratch = source_tree().parent / "patch-check"
    atomic.make_dirs(scratch.parent, "create the build directory")
    try:
        with atomic.staging_dir(scratch, "check the patch series") as tmp:
            _init_upstream(tmp, pristine, pin)
            for patch in patches:
                failure = apply_series(tmp, [patch], directory)
                if failure:
                    rows.append((patch.name, failure.sentence()))
                    break
                rows.append((patch.name, "applies"))
            raise _Discard
    except _Discard:
        pass
    return rows


class _Discard(Exception):
    """Leaves staging_dir without installing the scratch tree."""


def export_series(directory: Path | None = None) -> list[str]:
    """Write the commits on top of `upstream` in build/src back to patches/ (like quilt refresh)."""
    directory = directory or patches_dir()
    tree = source_tree()
    if not (tree / ".git").is_dir():
        raise VeclutError(f"{tree} is not a patched tree; run `veclut patch` first")
    if git(tree, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip():
        raise VeclutError(f"{tree} has uncommitted edits; commit them to the patch they belong to "
                          "(`git commit --fixup` + `git rebase -i --autosquash upstream`) and export again")
    commits = git(tree, "rev-list", "--reverse", "upstream..HEAD").stdout.split()
    names = []
    for commit in commits:
        message = git(tree, "log", "-1", "--format=%B", commit).stdout.strip()
        name, _, header = message.partition("\n")
        name = name.strip()
        if not name.endswith(".patch") or "/" in name:
            raise VeclutError(f"commit {commit[:10]} in {tree} must have a patch file name (NNNN-what.patch) as its subject")
        if not header.strip():
            raise VeclutError(f"commit {commit[:10]} ({name}) needs a header in its message body: what, why, and what upstream change would make it unnecessary")
        diff = git(tree, "show", "--format=", "--no-color", "--no-ext-diff", "--full-index", commit).stdout
        atomic.write_text(directory / name, header.strip() + "\n\n" + diff, f"write {name}")
        names.append(name)
    old = [n for n in parse_series(directory / "series")] if (directory / "series").is_file() else []
    series = "# Applied in order by `veclut patch`; regenerate with `veclut patch --export`.\n" + "\n".join(names) + "\n"
    atomic.write_text(directory / "series", series, "write patches/series")
    for gone in sorted(set(old) - set(names)):
        ui.info(f"{gone} is no longer in the series (the file is kept; delete it if it is obsolete)")
    head = git(tree, "rev-parse", "HEAD").stdout.strip()
    pin = load_upstream()
    (tree / STAMP).write_text(f"{series_stamp(pin, directory)} {head}\n")
    return names
