"""Is this file a complete GGUF model this build can load? Checked in Python (gguf-py's reader)
before a server or a generation starts, so a bad path gives one sentence, not a loader trace.
Type-agnostic: any tensor type the patched gguf-py knows is accepted.

`read` is gguf-py's reader with the tensor table checked first (for `veclut convert` too): sizes
recomputed from the shape and the type's block with Python integers, so a dimension of 0, a
shape too large for ggml, a row that is not whole blocks, a misaligned or wrapped-around offset
and a tensor past the end of the file are each one sentence naming the tensor."""

import math
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


GGML_MAX_COUNT = 2**63 - 1  # ggml counts a tensor's elements and bytes in int64
_DAMAGED = "the file is damaged: re-create or re-download it"


def _check_tensor(path: Path, name: str, dims: list[int], qtype, offset: int, start: int, alignment: int,
                  size: int, gguf) -> None:
    """One entry of the tensor table against its type's block and the file: VeclutError if it
    cannot be a tensor of this file."""
    shape = "x".join(str(d) for d in dims) or "scalar"
    if 0 in dims:
        raise VeclutError(f"{path}: tensor {name} has a dimension of 0 (shape {shape}); {_DAMAGED}")
    elements = math.prod(dims)
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if elements > GGML_MAX_COUNT or elements // block * type_size > GGML_MAX_COUNT:
        raise VeclutError(f"{path}: tensor {name} has shape {shape}, more elements than ggml can count; {_DAMAGED}")
    if dims and dims[0] % block:
        raise VeclutError(f"{path}: tensor {name} has rows of {dims[0]} weights, not a whole number of "
                          f"{qtype.name}'s {block}-weight blocks; {_DAMAGED}")
    if offset % alignment:
        raise VeclutError(f"{path}: tensor {name} starts at data offset {offset}, not a multiple of the file's "
                          f"{alignment}-byte alignment; {_DAMAGED}")
    end = start + offset + elements // block * type_size
    if end > size:
        raise VeclutError(f"{path}: tensor {name} ends at byte {end}, past the end of the file ({size} bytes); "
                          "the file is truncated or damaged: re-create or re-download it")


def read(path: Path):
    """gguf-py's GGUFReader for `path`, its tensor table checked by _check_tensor before gguf-py
    builds the tensors (a type gguf-py does not know is left to gguf-py). Raises VeclutError for a
    bad entry, and whatever gguf-py raises for a damaged header."""
    import gguf

    class CheckedReader(gguf.GGUFReader):
        def _build_tensors(self, start_offs, fields):
            known = {int(t) for t in gguf.GGMLQuantizationType}
            for f in fields:
                _, name, _, dims, raw_type, offset = f.parts
                if int(raw_type[0]) in known:
                    _check_tensor(Path(path), bytes(name).decode("utf-8", "replace"), [int(d) for d in dims.tolist()],
                                  gguf.GGMLQuantizationType(int(raw_type[0])), int(offset[0]), int(start_offs),
                                  int(self.alignment), int(self.data.nbytes), gguf)
            super()._build_tensors(start_offs, fields)

    return CheckedReader(path)


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
        reader = read(path)
    except VeclutError:
        raise
    except ValueError as err:
        if "GGMLQuantizationType" in str(err):
            raise VeclutError(f"{path} uses a tensor type this build does not know ({err}); "
                              "update veclut and run `veclut build`") from None
        raise VeclutError(f"{path} is truncated or damaged (its header or tensor table cannot be read); "
                          "re-create or re-download it") from None
    except Exception as err:  # struct/index errors on a damaged header
        raise VeclutError(f"{path} is truncated or damaged ({err.__class__.__name__}); re-create or re-download it") from None
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
