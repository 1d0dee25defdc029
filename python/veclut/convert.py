"""`veclut convert SRC OUT --type T`: checks the paths, converts into a temporary file next to
OUT, and renames it into place only when every tensor converted and verified."""

import contextlib
import errno
import re
from pathlib import Path

from rich.table import Table

from . import atomic, ui
from .errors import VeclutError, describe_os_error

# I2_V / I1_V: veclut's ternary types; TQ2_0 / TQ1_0: upstream's, for a file plain llama.cpp opens;
# Q2_V: veclut's 2-bit type (from Q2_0)
TYPES = ("I2_V", "I1_V", "TQ2_0", "TQ1_0", "Q2_V")


def _check_paths(src: Path, out: Path, force: bool) -> None:
    if not src.exists():
        raise VeclutError(f"{src} does not exist; give a GGUF file or an HF checkpoint directory")
    if out.resolve() == src.resolve():
        raise VeclutError(f"the output {out} is the input; write to another path (the input is never modified)")
    if not out.parent.is_dir():
        raise VeclutError(f"the output directory {out.parent} does not exist; create it first")
    if out.exists() and not force:
        raise VeclutError(f"{out} already exists; pass --force to replace it")
    if out.is_dir():
        raise VeclutError(f"{out} is a directory; give a file name for the output")


def run(src: Path, out: Path, type_name: str, ternarize: bool = False, force: bool = False) -> None:
    if type_name not in TYPES:
        raise VeclutError(f"unknown type {type_name}; choose one of {', '.join(TYPES)}")
    _check_paths(src, out, force)
    try:
        tmp = atomic.temp_file(out)  # unpredictable, created here: a planted symlink is never followed
    except OSError as err:
        raise _write_error(err, src, out) from None
    try:
        if src.is_dir() and type_name == "Q2_V":
            raise VeclutError(f"--type Q2_V converts a GGUF holding Q2_0 tensors; for the float weights of {src}, "
                              "convert them to an F16/F32 GGUF and run llama-quantize with type Q2_V")
        if src.is_dir():
            from .convert_hf import convert as convert_hf

            report = convert_hf(src, tmp, type_name, ternarize)
        else:
            from .convert_gguf import convert as convert_gguf

            report = convert_gguf(src, tmp, type_name, ternarize)
        atomic.commit(tmp, out)  # fsynced before and after the rename
    except OSError as err:
        raise _write_error(err, src, out) from None
    finally:
        with contextlib.suppress(OSError):  # on a read-only file system even this fails (EROFS)
            tmp.unlink(missing_ok=True)
    _print_summary(report, out, type_name)


def _write_error(err: OSError, src: Path, out: Path) -> VeclutError:
    """A failure to create or fill the output (read-only or full file system, no permission)."""
    if err.filename and Path(err.filename).resolve() == src.resolve():
        return describe_os_error(err, f"read {src}")
    reason = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOSPC: "the disk is full"}.get(err.errno, err.strerror or str(err))
    return VeclutError(f"cannot write {out}: {reason}; choose an output directory that is writable and has room "
                       "for the converted model")


def _pattern(name: str) -> str:
    """blk.7.attn_q.weight -> blk.*.attn_q.weight: one line per kind of tensor, not per layer."""
    return re.sub(r"^blk\.\d+\.", "blk.*.", name)


def _groups(items, key) -> dict:
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _label(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{_pattern(names[0])} ({len(names)} tensors)"


def _print_summary(report, out: Path, type_name: str) -> None:
    table = Table(title=f"veclut convert -> {out.name}")
    for column in ("tensors", "from", "to", "note"):
        table.add_column(column)
    for (src_type, dst_type), items in sorted(_groups(report.converted, lambda c: c[1:]).items()):
        exact = src_type in ("TQ2_0", "TQ1_0", "Q2_0") or all(name in report.identical for name, *_ in items)
        table.add_row(str(len(items)), src_type, dst_type,
                      "dequantized values identical" if exact else "ternary pattern identical")
    for verb, entries in (("kept", report.kept), ("copied", report.copied)):
        for (kept_type, reason), items in sorted(_groups(entries, lambda k: k[1:]).items()):
            table.add_row(str(len(items)), kept_type, kept_type, f"{verb}: {reason}")
    ui.out.print(table)
    if report.max_scale_change > 0:
        ui.info(f"block scales were rounded to fp16 (largest relative change {report.max_scale_change:.2e}); "
                "the ternary values themselves are exact")
    for _, items in sorted(_groups(report.ternarized, lambda t: _pattern(t[0])).items()):
        errors = sorted(100 * e for _, e in items)
        change = f"{errors[0]:.1f}%" if len(errors) == 1 else f"{errors[0]:.1f}% to {errors[-1]:.1f}%"
        ui.info(f"ternarised {_label([n for n, _ in items])} with the absmean rule (relative RMS change {change})")
    for (_, kept_type, reason), items in sorted(_groups(report.kept, lambda k: (_pattern(k[0]), *k[1:])).items()):
        ui.info(f"kept {_label([n for n, _, _ in items])} as {kept_type}: {reason}")
    for (_, src_type, dst_type, reason), items in sorted(_groups(report.repacked, lambda r: (_pattern(r[0]), *r[1:])).items()):
        ui.info(f"stored {_label([n for n, *_ in items])} ({src_type}) as {dst_type}: {reason}")
    for note in report.notes:
        ui.info(note)
    kept = f"; {len(report.kept)} linear weights kept their type" if report.kept else ""
    repacked = f"; {len(report.repacked)} in another type that takes their rows" if report.repacked else ""
    converted = len(report.converted) - len(report.repacked)
    ui.info(f"wrote {out} ({converted} tensors in {type_name}{repacked}, every one verified{kept})")
