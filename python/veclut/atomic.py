"""Write-then-rename helpers: a crash never leaves a half-written file or tree; and the lock that
lets one `veclut build` / `veclut patch` at a time work on a build tree.

Temporary files are made by mkstemp in the target's directory: an unpredictable name, created
with O_EXCL (a symlink planted under that name is never followed), and fsynced, with their
directory, before and after the rename, so a power cut leaves the old file or the new one."""

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import ui
from .errors import describe_os_error

_TMP_PREFIX = ".veclut-tmp-"
LOCK_NAME = ".veclut-lock"
_held: dict[Path, int] = {}  # locks this process holds: path -> depth (the lock is re-entrant)


def make_dirs(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise describe_os_error(err, what) from None


@contextmanager
def staging_dir(final: Path, what: str):
    """Yield an empty directory next to `final`; it replaces `final` only if the block succeeds."""
    make_dirs(final.parent, what)
    clean_stale_staging(final.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=final.parent))
    except OSError as err:
        raise describe_os_error(err, what) from None
    try:
        yield tmp
        replace_tree(tmp, final)
    except OSError as err:
        raise describe_os_error(err, what) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_tree(new: Path, final: Path) -> None:
    """Swap `new` in for `final` (a directory or file), removing the old one afterwards."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f"{_TMP_PREFIX}{os.getpid()}-old-{final.name}")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def fsync_dir(directory: Path) -> None:
    """Make the entries of `directory` (a rename into it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_file(final: Path) -> Path:
    """A new empty file next to `final`, under an unpredictable name that marks it as ours
    (clean_stale_staging recognises it); the caller fills it and passes it to `commit`."""
    fd, name = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix=f"-{final.name}", dir=final.parent)
    os.close(fd)
    return Path(name)


def commit(tmp: Path, final: Path) -> None:
    """fsync the filled temporary file, rename it to `final`, fsync the directory."""
    fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_text(path: Path, text: str, what: str) -> None:
    """Write a whole file under a temporary name, then rename it into place."""
    make_dirs(path.parent, what)
    tmp = None
    try:
        tmp = temp_file(path)
        tmp.write_text(text)
        commit(tmp, path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise describe_os_error(err, what) from None


@contextmanager
def tree_lock(directory: Path, what: str):
    """Hold the lock of a build tree for the block; wait (saying so) while another process holds
    it. Re-entrant within a process. The kernel drops the lock when its holder dies, so a crashed
    build never blocks the next one."""
    directory = Path(directory).resolve()
    if directory in _held:
        _held[directory] += 1
        try:
            yield
        finally:
            _held[directory] -= 1
        return
    make_dirs(directory, what)
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise describe_os_error(err, what) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            ui.info(f"another veclut (pid {holder}) is building in {directory}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[directory] = 1
        try:
            yield
        finally:
            del _held[directory]
    finally:
        os.close(fd)  # releases the lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(directory: Path) -> None:
    """Remove leftovers of interrupted runs (their process is gone) so the next run recovers."""
    if not directory.is_dir():
        return
    for entry in directory.glob(f"{_TMP_PREFIX}*"):
        pid = entry.name[len(_TMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
            continue
        if pid.isdigit() and int(pid) == os.getpid():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
