"""`veclut convert SRC OUT --type T`: checks the paths, converts into a temporary file next to
OUT, and renames it into place only when every tensor converted and verified."""

import os
from pathlib import Path

from rich.table import Table

from . import ui
from .errors import VeclutError, describe_os_error

TYPES = ("I2_V", "I1_V", "Q2_V")


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
    tmp = out.with_name(f".veclut-tmp-{os.getpid()}-{out.name}")
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
        os.replace(tmp, out)
    except OSError as err:
        raise describe_os_error(err, f"write {out}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _print_summary(report, out, type_name)


def _print_summary(report, out: Path, type_name: str) -> None:
    counts: dict[tuple[str, str], int] = {}
    for _, src_type, dst_type in report.converted:
        counts[(src_type, dst_type)] = counts.get((src_type, dst_type), 0) + 1
    table = Table(title=f"veclut convert -> {out.name}")
    for column in ("tensors", "from", "to", "check"):
        table.add_column(column)
    for (src_type, dst_type), n in sorted(counts.items()):
        exact = src_type in ("TQ2_0", "TQ1_0", "Q2_0")
        check = "dequantized values identical" if exact else "ternary pattern identical"
        table.add_row(str(n), src_type, dst_type, check)
    ui.out.print(table)
    if report.max_scale_change > 0:
        ui.info(f"block scales were rounded to fp16 (largest relative change {report.max_scale_change:.2e}); "
                "the ternary values themselves are exact")
    for name, error in report.ternarized:
        ui.info(f"ternarised {name} with the absmean rule (relative RMS change {100 * error:.1f}%)")
    for name, kept_type, reason in report.kept:
        ui.info(f"kept {name} as {kept_type}: {reason}")
    ui.info(f"wrote {out} ({len(report.converted)} tensors in {type_name}, every one verified)")
