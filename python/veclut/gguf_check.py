"""Is this file a complete GGUF model this build can load? Checked in Python (gguf-py's reader)
before a server or a generation starts, so a bad path gives one sentence, not a loader trace.
Type-agnostic: any tensor type the patched gguf-py knows is accepted."""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VeclutError


@dataclass
class ModelInfo:
    path: Path
    architecture: str
    name: str
    context_length: int | None
    chat_template: bool
    tensor_types: Counter = field(default_factory=Counter)

    def types_text(self) -> str:
        """'I2_V x28, F32 x18': the tensor types, most frequent first."""
        return ", ".join(f"{t} x{n}" for t, n in self.tensor_types.most_common())


def _field(reader, key: str):
    f = reader.fields.get(key)
    return f.contents() if f is not None else None


def validate(path: Path) -> ModelInfo:
    path = Path(path)
    if not path.exists():
        raise VeclutError(f"the model file {path} does not exist; give the path of a GGUF model")
    if not path.is_file():
        raise VeclutError(f"{path} is not a file; give the path of a GGUF model file")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF" and 0 < size < 4 and b"GGUF".startswith(magic):
        raise VeclutError(f"{path} is truncated ({size} bytes); re-create or re-download it")
    if magic != b"GGUF":
        hint = "it is empty" if size == 0 else "it does not start with the GGUF magic"
        raise VeclutError(f"{path} is not a GGUF model ({hint}); convert the model with `veclut convert` "
                          "or llama.cpp's convert_hf_to_gguf.py first")
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except ValueError as err:
        if "GGMLQuantizationType" in str(err):
            raise VeclutError(f"{path} uses a tensor type this build does not know ({err}); "
                              "update veclut and run `veclut build`") from None
        raise VeclutError(f"{path} is truncated or damaged (its header or tensor table cannot be read); "
                          "re-create or re-download it") from None
    except Exception as err:  # struct/index errors on a damaged header
        raise VeclutError(f"{path} is truncated or damaged ({err.__class__.__name__}); re-create or re-download it") from None
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size:
            raise VeclutError(f"{path} is truncated (tensor {tensor.name} ends past the end of the file); "
                              "re-create or re-download it")
    architecture = _field(reader, "general.architecture")
    if not architecture:
        raise VeclutError(f"{path} has no general.architecture key, so it is not a model llama.cpp can load; "
                          "convert the model again")
    if not reader.tensors:
        raise VeclutError(f"{path} holds no tensors (a vocabulary-only GGUF?); give a complete model file")
    context = _field(reader, f"{architecture}.context_length")
    return ModelInfo(path=path, architecture=architecture, name=_field(reader, "general.name") or path.stem,
                     context_length=int(context) if context else None,
                     chat_template=_field(reader, "tokenizer.chat_template") is not None,
                     tensor_types=Counter(t.tensor_type.name for t in reader.tensors))
