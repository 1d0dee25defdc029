"""Damaged GGUF files, by the thousand (issue 16): a seeded mutator changes a small real GGUF (bit
flips, overwritten bytes, extreme integers in the header, truncation, inserted bytes) and hands
every variant to the file check before `serve` (gguf_check.validate) and to `veclut convert`.
Each case must end in a result or one VeclutError sentence: no other exception, no output file
unless the conversion succeeded, no temporary left behind, the input unchanged. 2,000 cases per
run (20,000 with --full); the outcome counts are printed (pytest -s)."""

import random
import traceback
from collections import Counter

import pytest

from test_convert import _write
from veclut import convert, gguf_check
from veclut.errors import VeclutError

EXTREMES = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def _mutate(rng: random.Random, data: bytes, header_end: int) -> tuple[str, bytes]:
    """One damage, 3 times in 4 inside the header (magic, counts, metadata, tensor table)."""
    b = bytearray(data)
    kind = rng.choice(["flip", "bytes", "int", "truncate", "insert"])
    at = rng.randrange(header_end) if rng.random() < 0.75 else rng.randrange(len(b))
    if kind == "flip":
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        n = rng.randint(1, 8)
        b[at:at + n] = bytes(rng.randrange(256) for _ in range(n))[: len(b) - at]
    elif kind == "int":
        width = rng.choice([4, 8])
        at -= at % width
        b[at:at + width] = (rng.choice(EXTREMES) % 2 ** (8 * width)).to_bytes(width, "little")
    elif kind == "truncate":
        del b[at:]
    else:
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return kind, bytes(b)


def _one_case(path, out, quiet) -> tuple[bool, bool]:
    """(the check before serve accepted it, convert accepted it); a refusal is a VeclutError."""
    try:
        gguf_check.validate(path)
        checked = True
    except VeclutError:
        checked = False
    try:
        with quiet():
            convert.run(path, out, "I2_V")
        return checked, True
    except VeclutError:
        return checked, False


def test_damaged_ggufs_end_in_a_result_or_one_sentence(native_build, tmp_path, request, capsys):
    import gguf

    cases = 20000 if request.config.getoption("--full") else 2000
    base = _write(tmp_path / "base.gguf")
    original = base.read_bytes()
    header_end = gguf.GGUFReader(base).data_offset
    work = tmp_path / "cases"
    work.mkdir()
    rng = random.Random(16)
    outcomes, failures = Counter(), []
    for case in range(cases):
        kind, data = _mutate(rng, original, header_end)
        src, out = work / "in.gguf", work / "out.gguf"
        src.write_bytes(data)
        converted = False
        try:
            checked, converted = _one_case(src, out, _silence(capsys))
            outcome = f"check {'passed' if checked else 'refused'}, convert {'done' if converted else 'refused'}"
        except Exception:  # anything but VeclutError is a bug of ours
            failures.append(f"case {case} ({kind}): {traceback.format_exc(limit=4)}")
            outcome = "crashed"
        outcomes[(kind, outcome)] += 1
        left = sorted(p.name for p in work.iterdir())
        expected = ["in.gguf", "out.gguf"] if converted else ["in.gguf"]
        if left != expected:
            failures.append(f"case {case} ({kind}, {outcome}): the directory holds {left}, not {expected}")
        if src.read_bytes() != data:
            failures.append(f"case {case} ({kind}): the input file changed")
        out.unlink(missing_ok=True)
    with capsys.disabled():
        print(f"\n{cases} damaged GGUFs:", ", ".join(f"{k} {o}: {n}" for (k, o), n in sorted(outcomes.items())))
    assert not failures, f"{len(failures)} of {cases} cases failed; first: {failures[0]}"
    assert sum(n for (_, o), n in outcomes.items() if "refused" in o) > cases // 4, "the damage reaches the checks"


def _silence(capsys):
    """A context that drops what convert prints for one case (its summary)."""
    class _Quiet:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            capsys.readouterr()
            return False
    return lambda: _Quiet()
