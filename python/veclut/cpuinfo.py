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


# report key -> the /proc/cpuinfo field that holds it (x86 name, Arm name)
IDENTITY = {
    "vendor": ("vendor_id", "CPU implementer"),
    "family": ("cpu family", "CPU architecture"),
    "model": ("model", "CPU part"),
    "stepping": ("stepping", "CPU revision"),
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


def _fields() -> dict[str, str]:
    """The first processor's `name: value` lines."""
    out: dict[str, str] = {}
    for line in _cpuinfo().splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out.setdefault(name.strip(), value.strip())
    return out


def identity() -> dict[str, str]:
    """Vendor, family, model and stepping of this CPU ("?" where the kernel does not say)."""
    fields = _fields()
    return {key: next((fields[n] for n in names if n in fields), "?") for key, names in IDENTITY.items()}


def family_model() -> str:
    """'family 25 model 1': with the vendor's model name, what identifies a CPU generation."""
    ident = identity()
    return f"family {ident['family']} model {ident['model']}"


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
