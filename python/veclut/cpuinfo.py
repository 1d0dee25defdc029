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


def family_model() -> str:
    """'family 25 model 1': with the vendor's model name, what identifies a CPU generation."""
    fields = dict(line.split(":", 1) for line in _cpuinfo().splitlines()[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "cpu family" in fields and "model" in fields:
        return f"family {fields['cpu family']} model {fields['model']}"
    return "family and model unknown"


def describe() -> str:
    return f"{model_name()} ({family_model()})"


def lacking(profile) -> list[str]:
    """The CPU features a profile's programs need that this machine lacks; none for a profile
    whose programs run under an emulator (its `runner`)."""
    if profile.runner:
        return []
    unknown = [f for f in profile.cpu_features if f not in FEATURES]
    if unknown:
        raise ValueError(f"profile {profile.name}: unknown CPU feature {unknown[0]}; known: {', '.join(FEATURES)}")
    have = features()
    return [f for f in profile.cpu_features if not have[f]]


def cannot_run_reason(profile) -> str | None:
    """One sentence saying why this machine cannot run the profile's programs, or None."""
    missing = lacking(profile)
    if not missing:
        return None
    return (f"profile {profile.name} was compiled for {', '.join(missing)}, which this CPU ({describe()}) lacks; "
            "run it on a machine that has them")
