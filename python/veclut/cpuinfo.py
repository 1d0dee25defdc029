"""CPU facts of this machine, read from /proc/cpuinfo (what the kernels can use)."""

from pathlib import Path

# feature name shown to users -> cpuinfo flag(s) that must all be present
FEATURES = {
    "AVX2": ("avx2", "fma", "f16c"),
    "AVX-512": ("avx512f", "avx512bw", "avx512vl"),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-512 VBMI": ("avx512vbmi",),
    "NEON": ("asimd",),
    "NEON dot-product": ("asimddp",),
}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def model_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def features() -> dict[str, bool]:
    have = flags()
    return {name: all(f in have for f in needed) for name, needed in FEATURES.items()}
