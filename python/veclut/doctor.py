"""`veclut doctor`: what this machine has, what veclut has built, and what is missing."""

import platform
import sys

from rich.table import Table

from . import cpuinfo, ui
from .config import load_profile, load_upstream, profile_files
from .paths import cache_dir, profile_build_dir, source_tree
from .toolchain import BUILD_TOOLS, OPTIONAL_TOOLS, version_of
from .upstream import sdist_path, unpacked_path


def rows() -> list[tuple[str, str, str]]:
    """(what, state, detail) rows; state is ok / missing / optional / info."""
    out = []
    version_ok = sys.version_info >= (3, 10)
    out.append(("python", "ok" if version_ok else "missing", f"{platform.python_version()} at {sys.executable}"
                + ("" if version_ok else " (veclut needs 3.10 or newer)")))
    for tools, absent in ((BUILD_TOOLS, "missing"), (OPTIONAL_TOOLS, "optional")):
        for program, (package, purpose) in tools.items():
            found = version_of(program)
            out.append((program, "ok" if found else absent,
                        found or f"for {purpose}: apt-get install {package}"))
    for name, present in cpuinfo.features().items():
        out.append((f"cpu {name}", "ok" if present else "info", "yes" if present else "no"))
    pin = load_upstream()
    out.append(("cache", "info", str(cache_dir())))
    out.append(("upstream sdist", "ok" if sdist_path(pin).is_file() else "info",
                "downloaded" if sdist_path(pin).is_file() else "not yet fetched (veclut fetch)"))
    out.append(("unpacked tree", "ok" if unpacked_path(pin).is_dir() else "info",
                str(unpacked_path(pin)) if unpacked_path(pin).is_dir() else "not yet unpacked"))
    out.append(("patched tree", "ok" if (source_tree() / ".veclut-patched").is_file() else "info",
                str(source_tree()) if source_tree().is_dir() else "not yet patched (veclut patch)"))
    for name in profile_files():
        profile = load_profile(name)
        bin_dir = profile_build_dir(name) / "bin"
        programs = profile.programs
        built = [t for t in programs if (bin_dir / t).exists()]
        state = "ok" if programs and len(built) == len(programs) else "info"
        out.append((f"profile {name}", state, f"{len(built)}/{len(programs)} programs built in {bin_dir}"))
    return out


def run() -> int:
    table = Table(title="veclut doctor")
    for column in ("check", "state", "detail"):
        table.add_column(column)
    styles = {"ok": "green", "missing": "bold red", "optional": "yellow", "info": "dim"}
    results = rows()
    for what, state, detail in results:
        table.add_row(what, f"[{styles[state]}]{state}[/]", detail)
    ui.out.print(table)
    missing = [what for what, state, _ in results if state == "missing"]
    if missing:
        ui.error(f"missing: {', '.join(missing)}; install them as the table says")
        return 1
    return 0
