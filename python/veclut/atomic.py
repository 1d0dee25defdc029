"""Write-then-rename helpers: a crash never leaves a half-written file or tree."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import describe_os_error

_TMP_PREFIX = ".veclut-tmp-"


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


def write_text(path: Path, text: str, what: str) -> None:
    """Write a whole file under a temporary name, then rename it into place."""
    make_dirs(path.parent, what)
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise describe_os_error(err, what) from None


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
