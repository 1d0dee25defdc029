"""gguf-py's GGUFReader, extended to files of other runtimes: a tensor whose type id is one of
the foreign ternary types (foreign_types.py) is listed with that type instead of failing the
whole file; an id that is neither upstream's nor one of those is refused in one sentence that
names the id, the tensor and the types `veclut convert` reads. Tensors of upstream types are
read by gguf-py itself, unchanged."""

import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import VeclutError
from .gguf_check import _check_tensor
from .foreign_types import FOREIGN_TYPES, FormatError, ForeignType, readable_types


class ForeignTensor(NamedTuple):
    """What convert_gguf reads of a ReaderTensor, for a tensor of a foreign type (no `data` view:
    its bytes are read in chunks by the type itself)."""
    name: str
    tensor_type: ForeignType
    shape: np.ndarray
    n_elements: int
    n_bytes: int
    data_offset: int


def is_foreign(tensor_type) -> bool:
    return isinstance(tensor_type, ForeignType)


@functools.cache
def _reader_class():
    import gguf

    known = {int(t) for t in gguf.GGMLQuantizationType}

    class Reader(gguf.GGUFReader):
        def __init__(self, path, *args, **kwargs):
            self.veclut_path = Path(path)  # _build_tensors runs inside GGUFReader's constructor
            super().__init__(path, *args, **kwargs)

        def _build_tensors(self, start_offs, fields):
            tensors, names = [], set()
            for field in fields:
                _, name_data, _, dims, raw_dtype, offset = field.parts
                name = bytes(name_data).decode("utf-8")
                if name in names:
                    raise ValueError(f"Found duplicated tensor with name {name}")
                names.add(name)
                type_id = int(raw_dtype[0])
                if type_id in known:  # checked against the file (gguf_check), then gguf-py's own reading
                    _check_tensor(self.veclut_path, name, [int(d) for d in dims.tolist()],
                                  gguf.GGMLQuantizationType(type_id), int(offset[0]), int(start_offs),
                                  int(self.alignment), int(self.data.nbytes), gguf)
                    super()._build_tensors(start_offs, [field])
                    tensors.append(self.tensors[0])
                    continue
                if type_id not in FOREIGN_TYPES:
                    raise VeclutError(
                        f"tensor {name} has type id {type_id}, which veclut convert does not read: it reads the pinned "
                        f"llama.cpp's types and the ternary types {readable_types()}; convert the model from its "
                        "float weights instead")
                tensors.append(_foreign_tensor(name, FOREIGN_TYPES[type_id], dims, int(start_offs) + int(offset[0])))
            self.tensors = tensors

    return Reader


def _foreign_tensor(name: str, ftype: ForeignType, dims, offset: int) -> ForeignTensor:
    shape = [int(d) for d in dims.tolist()]
    if 0 in shape:
        raise VeclutError(f"tensor {name} has a dimension of 0 (shape {'x'.join(map(str, shape))}); the file is "
                          "damaged: re-create or re-download it")
    k, rows = shape[0], math.prod(shape[1:])  # Python integers: a damaged shape cannot wrap around
    try:
        nbytes = ftype.nbytes(k, rows)
    except FormatError as err:
        raise VeclutError(f"tensor {name} ({ftype.name}, {'x'.join(map(str, shape))}) cannot be {ftype.name}: {err}; "
                          "the file is damaged or its type id is wrong") from None
    return ForeignTensor(name, ftype, dims, k * rows, nbytes, offset)


def open_reader(path):
    """A GGUFReader for `path` that also lists foreign ternary tensors."""
    return _reader_class()(path)


def check_sizes(reader, file_size: int) -> None:
    """A foreign tensor's declared type must account for the bytes up to the next tensor: a
    type id that does not match the data (IQ2_BN where IQ1_BN was written) shows as a size
    that overlaps the next tensor or leaves more than the alignment's padding before it."""
    starts = sorted({int(t.data_offset) for t in reader.tensors} | {file_size})
    for t in reader.tensors:
        if not is_foreign(t.tensor_type):
            continue
        following = next(s for s in starts if s > t.data_offset) if t.data_offset < file_size else file_size
        room = following - t.data_offset
        at_end = following == file_size
        if t.n_bytes > room or (not at_end and room - t.n_bytes >= reader.alignment):
            shape = "x".join(str(int(d)) for d in t.shape)
            where, cause = (("the end of the file", "the type id does not match the data, or the file is truncated")
                            if at_end else ("the next tensor", "the type id does not match the data"))
            raise VeclutError(
                f"tensor {t.name} is declared {t.tensor_type.name} (type id {t.tensor_type.id}), which needs "
                f"{t.n_bytes} bytes for {shape} weights, but {room} bytes lie before {where}: {cause}; "
                "re-create or re-download the file")
