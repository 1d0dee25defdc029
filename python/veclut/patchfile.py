"""Parsing the patch series and unified diffs (no application here: see patching.py)."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VeclutError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    number: int          # 1-based within its file
    old_start: int
    old_len: int
    header: str


@dataclass
class FileDiff:
    path: str
    new_file: bool = False
    hunks: list = field(default_factory=list)


@dataclass
class Patch:
    name: str
    header: str
    files: list

    def hunk_at(self, path: str, old_line: int):
        """The hunk of `path` whose pre-image starts at `old_line` (as git reports failures)."""
        for diff in self.files:
            if diff.path == path:
                for hunk in diff.hunks:
                    if hunk.old_start == old_line:
                        return hunk
        return None


def parse_series(path: Path) -> list[str]:
    """Patch names in application order; `#` starts a comment."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise VeclutError(f"{path} is missing; it lists the patches to apply, one per line") from None
    names = []
    for number, raw in enumerate(lines, 1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if name in names:
            raise VeclutError(f"{path}:{number} lists {name} twice; remove the duplicate line")
        if not (path.parent / name).is_file():
            raise VeclutError(f"{path}:{number} names {name}, which is not in {path.parent}; add the file or remove the line")
        names.append(name)
    return names


def parse_patch(path: Path) -> Patch:
    text = path.read_text()
    header_lines, files, current = [], [], None
    in_header = True
    for line in text.splitlines():
        if line.startswith("diff --git "):
            in_header = False
            current = FileDiff(path=line.split(" b/", 1)[-1])
            files.append(current)
        elif in_header:
            header_lines.append(line)
        elif line.startswith("new file mode") and current is not None:
            current.new_file = True
        elif line.startswith("@@") and current is not None:
            match = _HUNK.match(line)
            if not match:
                raise VeclutError(f"{path.name} has a malformed hunk header '{line}'; regenerate the patch")
            current.hunks.append(Hunk(len(current.hunks) + 1, int(match[1]), int(match[2] or 1), line))
    if not files:
        raise VeclutError(f"{path.name} contains no `diff --git` sections; regenerate it with `veclut patch --export`")
    header = "\n".join(header_lines).strip()
    if not header:
        raise VeclutError(f"{path.name} has no header; start it with what it changes, why, and what upstream change would make it unnecessary")
    return Patch(name=path.name, header=header, files=files)


def changed_lines(path: Path) -> int:
    """Lines added or removed inside hunks (the size the series is judged by)."""
    count, in_hunk = 0, False
    for line in path.read_text().splitlines():
        if line.startswith("diff --git "):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line[:1] in ("+", "-"):
            count += 1
    return count
