"""Loading the declarative configs: the upstream pin and the build profiles."""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import VeclutError
from .paths import configs_dir, project_root

# The environment that leaves a veclut build to upstream's kernels: upstream's TQ1_0 / TQ2_0 / Q2_0 / Q1_0
# to its own matmuls, attention to its own flash attention (a baseline measured in the same build).
UPSTREAM_KERNELS = {"VECLUT_NO_UPSTREAM": "1", "VECLUT_ATTENTION": "0"}


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise VeclutError(f"config file {path} is missing; restore it from the veclut checkout") from None
    except yaml.YAMLError as err:
        raise VeclutError(f"config file {path} is not valid YAML ({err.__class__.__name__}); fix its syntax") from None
    if not isinstance(data, dict):
        raise VeclutError(f"config file {path} must hold a mapping of keys to values")
    return data


def _require(data: dict, path: Path, keys: dict) -> None:
    for key, kind in keys.items():
        if key not in data:
            raise VeclutError(f"config file {path} lacks the key '{key}'; add it")
        if not isinstance(data[key], kind):
            raise VeclutError(f"config file {path}: '{key}' must be a {kind.__name__}")


PIN_KEYS = ("package", "version", "sdist", "sha256", "llama_cpp_commit", "llama_cpp_dir")


@dataclass(frozen=True)
class UpstreamPin:
    """A llama.cpp tree vendored in a PyPI sdist: ours (configs/upstream.yaml) or a peer's."""
    package: str
    version: str
    sdist: str
    sha256: str
    llama_cpp_commit: str
    llama_cpp_dir: str
    config: str = "configs/upstream.yaml"  # where the pin is written, named in messages

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except (ValueError, VeclutError):
        return str(path)


def load_pin(path: Path) -> UpstreamPin:
    """The pin in a config file (the keys of PIN_KEYS); other keys of the file are ignored."""
    data = load_yaml(path)
    _require(data, path, dict.fromkeys(PIN_KEYS, str))
    sha = data["sha256"].lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise VeclutError(f"config file {path}: sha256 must be 64 hex digits")
    return UpstreamPin(**{**{k: data[k] for k in PIN_KEYS}, "sha256": sha}, config=_shown(path))


def load_upstream(path: Path | None = None) -> UpstreamPin:
    return load_pin(path or configs_dir() / "upstream.yaml")


LIBRARY_TARGETS = ("llama", "ggml", "ggml-base", "ggml-cpu")


@dataclass(frozen=True)
class BuildProfile:
    name: str
    description: str
    cmake: dict = field(default_factory=dict)
    targets: tuple = ()
    runner: tuple = ()           # prefix to run the profile's programs (e.g. qemu-user)
    run_env: dict = field(default_factory=dict)  # environment its programs run with (sanitizer options)
    bind_python: bool = False    # bind llama_cpp / gguf to this build
    host_runnable: bool = True
    required_tools: tuple = ()   # (program, debian package) pairs beyond the defaults
    check_matrix: str = "quick"  # level of configs/check/matrix.yaml run on every check
    cpu_features: tuple = ()     # what its programs need from the CPU that runs them (cpuinfo.FEATURES names)

    @property
    def programs(self) -> tuple:
        """Targets that are executables in bin/ (the rest are the libraries)."""
        return tuple(t for t in self.targets if t not in LIBRARY_TARGETS)


def profile_files(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or configs_dir() / "build"
    return {p.stem: p for p in sorted(directory.glob("*.yaml")) if not p.stem.startswith("_")}


def load_shared(directory: Path) -> dict:
    """The settings all profiles start from (configs/build/_shared.yaml)."""
    path = directory / "_shared.yaml"
    return load_yaml(path) if path.exists() else {}


def load_profile(name: str, directory: Path | None = None) -> BuildProfile:
    directory = directory or configs_dir() / "build"
    files = profile_files(directory)
    if name not in files:
        known = ", ".join(files) or "none"
        raise VeclutError(f"unknown build profile '{name}'; known profiles: {known}")
    path = files[name]
    data = load_yaml(path)
    _require(data, path, {"description": str, "targets": (list, str)})
    shared = load_shared(directory)
    targets = data["targets"]
    if isinstance(targets, str):  # the name of a shared target set
        sets = shared.get("target_sets") or {}
        if targets not in sets:
            raise VeclutError(f"config file {path}: target set '{targets}' is not defined in _shared.yaml")
        targets = sets[targets]
    merged = {**(shared.get("cmake") or {}), **(data.get("cmake") or {})}
    cmake = {k: _cmake_value(v) for k, v in merged.items()}
    tools = tuple((t["program"], t["debian"]) for t in data.get("required_tools", []))
    return BuildProfile(
        name=name,
        description=data["description"],
        cmake=cmake,
        targets=tuple(targets),
        runner=tuple(data.get("runner", [])),
        run_env={str(k): str(v) for k, v in (data.get("run_env") or {}).items()},
        bind_python=bool(data.get("bind_python", False)),
        host_runnable=bool(data.get("host_runnable", True)),
        required_tools=tools,
        check_matrix=str(data.get("check_matrix", "quick")),
        cpu_features=tuple(data.get("cpu_features", [])),
    )


def _cmake_value(value) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


@dataclass(frozen=True)
class Peer:
    """Another runtime measured beside veclut (configs/peers/<name>.yaml): its pin, its build and
    what the benchmark runs on it."""
    name: str
    pin: UpstreamPin
    cmake: dict
    targets: tuple
    add_files: dict              # path in the peer's tree -> file under configs/peers/
    label: str                   # report rows are "<label>:<type>"
    types: tuple
    tensor_type_names: dict      # our spelling of a tensor type (q4_k) -> the peer quantizer's (q4_K)
    llama_bench_args: tuple
    batched_bench_args: tuple
    batched_bench_output: str    # "jsonl" (as ours) or "table"
    compare: dict                # veclut type -> peer types it is compared with


def peer_files(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or configs_dir() / "peers"
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


def load_peer(name: str, directory: Path | None = None) -> Peer:
    files = peer_files(directory)
    if name not in files:
        raise VeclutError(f"unknown peer runtime '{name}'; known peers: {', '.join(files) or 'none'}")
    path = files[name]
    data = load_yaml(path)
    _require(data, path, {"build": dict, "bench": dict})
    build, bench = data["build"], data["bench"]
    _require(build, path, {"cmake": dict, "targets": list})
    _require(bench, path, {"label": str, "types": list, "compare": dict})
    output = bench.get("batched_bench_output", "jsonl")
    if output not in ("jsonl", "table"):
        raise VeclutError(f"config file {path}: batched_bench_output must be jsonl or table, not {output}")
    return Peer(name=name, pin=load_pin(path), cmake={k: _cmake_value(v) for k, v in build["cmake"].items()},
                targets=tuple(build["targets"]), add_files=dict(build.get("add_files") or {}),
                label=bench["label"], types=tuple(bench["types"]),
                tensor_type_names=dict(bench.get("tensor_type_names") or {}),
                llama_bench_args=tuple(map(str, bench.get("llama_bench_args", []))),
                batched_bench_args=tuple(map(str, bench.get("batched_bench_args", []))),
                batched_bench_output=output, compare={k: tuple(v) for k, v in bench["compare"].items()})
