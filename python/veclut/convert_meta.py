"""Metadata of other runtimes' GGUFs in the pinned llama.cpp's names.

Architectures are the one difference found: bitnet.cpp and ik_llama.cpp run BitNet b1.58 2B-4T
as `bitnet-b1.58` (or `bitnet-25`, its name in their first port), the pinned llama.cpp as
`bitnet` with bitnet.hidden_activation = relu2 (patch 0008), the same graph otherwise: RMS
sub-norms before o_proj and down_proj, NeoX RoPE, output tied to the token embedding. Every
key named after the architecture is renamed with it. Tokenizer and general keys were compared
key by key (bitnet.cpp's llama.cpp fork, ik_llama.cpp 0.1.5 and the pin: LLM_KV_NAMES in
llama-arch.cpp / llama.cpp) and are named alike; general.file_type is rewritten by the
converter anyway (each runtime numbers its file types its own way)."""

import re
from dataclasses import dataclass, field

from .errors import VeclutError


@dataclass(frozen=True)
class Architecture:
    name: str           # the pinned llama.cpp's name
    keys: dict          # keys (without the "<arch>." prefix) the pinned llama.cpp needs to compute the same graph
    source: str         # who uses the foreign name


_RELU2_BITNET = {"hidden_activation": "relu2"}
ARCHITECTURES = {
    "bitnet-b1.58": Architecture("bitnet", _RELU2_BITNET, "bitnet.cpp, ik_llama.cpp"),
    "bitnet-25": Architecture("bitnet", _RELU2_BITNET, "bitnet.cpp, ik_llama.cpp"),
}
# Tensors bitnet.cpp's / ik's graph may load and the mapped one does not (llama.cpp refuses a file
# with tensors it does not use): an untied output, RoPE factors, biases.
UNUSED_TENSORS = {"bitnet": (re.compile(r"^(output|rope_freqs)\.weight$|\.bias$"),
                             "it ties the output to token_embd.weight and has no RoPE factors and no biases")}


@dataclass
class MetadataMap:
    source: str                   # the file's architecture
    target: str                   # the architecture written
    added: dict = field(default_factory=dict)   # full key -> value
    renamed: int = 0              # keys renamed with the architecture

    def key(self, name: str) -> str:
        if self.source != self.target and name.startswith(self.source + "."):
            self.renamed += 1
            return self.target + name[len(self.source):]
        return name

    def notes(self) -> list[str]:
        if self.source == self.target:
            return []
        added = "".join(f", {k} = {v}" for k, v in self.added.items())
        return [f"mapped architecture {self.source} ({ARCHITECTURES[self.source].source}) to the pinned llama.cpp's "
                f"{self.target}{added}; renamed {self.renamed} key{'s' if self.renamed != 1 else ''} {self.source}.* to {self.target}.*"]


def metadata_map(architecture: str, field_names, tensor_names) -> MetadataMap:
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        return MetadataMap(architecture, architecture)
    pattern, why = UNUSED_TENSORS[arch.name]
    unused = sorted(n for n in tensor_names if pattern.search(n))
    if unused:
        more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
        raise VeclutError(f"the {architecture} model has {', '.join(unused[:3])}{more}, which the pinned llama.cpp's "
                          f"{arch.name} graph does not take ({why}); veclut cannot map this model")
    mapping = MetadataMap(architecture, arch.name)
    for key, value in arch.keys.items():
        if f"{architecture}.{key}" not in field_names:  # the file's own value wins
            mapping.added[f"{arch.name}.{key}"] = value
    return mapping
