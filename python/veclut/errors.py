"""The one exception type the CLI turns into a single clear sentence."""


class VeclutError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do."""


def describe_os_error(err: OSError, what: str) -> VeclutError:
    """Turn a file-system failure while doing `what` into one actionable sentence."""
    import errno

    hints = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.ENOTDIR: "a parent of the path is a file, not a directory",
    }
    reason = hints.get(err.errno, err.strerror or str(err))
    where = f" ({err.filename})" if err.filename else ""
    return VeclutError(
        f"cannot {what}{where}: {reason}; free space or choose a writable location "
        "with VECLUT_CACHE_DIR / VECLUT_BUILD_DIR"
    )
