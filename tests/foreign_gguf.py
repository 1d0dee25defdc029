"""Writes GGUF files as bitnet.cpp and ik_llama.cpp do: tensors of their ternary types (type ids
gguf-py does not know, bytes from veclut.foreign_types' encoders) beside ordinary ones, under
any architecture name. The tests' stand-in for those runtimes' own writers."""

import numpy as np

from veclut.foreign_types import FOREIGN_TYPES


def ternary_of(values: np.ndarray, per_row: bool) -> tuple[np.ndarray, np.ndarray]:
    """Trits and scales of a ternary float tensor (rows, k): one scale per row, or one for all."""
    x = np.asarray(values, dtype=np.float32)
    amax = np.abs(x).max(axis=1) if per_row else np.full(x.shape[0], np.abs(x).max(), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        trits = np.where(amax[:, None] > 0, np.rint(x / amax[:, None]), 0).astype(np.int8)
    assert np.array_equal(trits * amax[:, None], x), "not ternary with this scale"
    return trits, amax.astype(np.float32)


def foreign_bytes(type_name: str, values: np.ndarray) -> np.ndarray:
    """A ternary float tensor (rows, k) in a foreign type, with the scale that type keeps."""
    ftype = next(t for t in FOREIGN_TYPES.values() if t.name == type_name)
    trits, scales = ternary_of(values, per_row=type_name != "I2_S")
    return ftype.encode(trits, scales[0] if type_name == "I2_S" else scales)


def type_id(type_name: str) -> int:
    return next(t.id for t in FOREIGN_TYPES.values() if t.name == type_name)


def write(path, arch: str, fields: list, tensors: list) -> None:
    """fields: (key, value, GGUFValueType, sub type or None); tensors: (name, numpy shape, type id,
    bytes). Tensor data is padded to the default alignment, as gguf-py and llama.cpp write it."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for key, value, vtype, sub in fields:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, shape, tid, data in tensors:
        w.add_tensor_info(name, shape, np.dtype(np.float32), np.asarray(data).nbytes, raw_dtype=tid)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    out = w.fout[0]
    for _, _, _, data in tensors:
        out.write(b"\0" * (-out.tell() % w.data_alignment))
        out.write(np.ascontiguousarray(data).tobytes())
    out.write(b"\0" * (-out.tell() % w.data_alignment))
    w.close()


def copy_as(src, dst, type_name: str | None = None, *, arch: str | None = None, only=None, add=()) -> list[str]:
    """`src` (a GGUF of ternary F32/F16 linear weights) rewritten with those weights in `type_name`
    (None: as they are), its architecture (and every key named after it) renamed to `arch` if
    given, and the string keys `add` (key, value) added. Returns the names of the tensors stored
    in the foreign type. `only(name)` narrows which tensors."""
    import gguf

    from veclut.convert_gguf import is_candidate

    reader = gguf.GGUFReader(src)
    old = reader.get_field("general.architecture").contents()
    new = arch or old
    fields = []
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        key = new + f.name[len(old):] if f.name.startswith(old + ".") else f.name
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        fields.append((key, f.contents(), f.types[0], sub))
    fields += [(key, value, gguf.GGUFValueType.STRING, None) for key, value in add]
    tensors, foreign = [], []
    for t in reader.tensors:
        shape = tuple(int(s) for s in reversed(t.shape.tolist()))
        if type_name and is_candidate(t.name) and (only is None or only(t.name)):
            values = np.asarray(t.data, dtype=np.float32).reshape(-1, shape[-1])
            tensors.append((t.name, shape, type_id(type_name), foreign_bytes(type_name, values)))
            foreign.append(t.name)
        else:
            tensors.append((t.name, shape, int(t.tensor_type), np.asarray(t.data).view(np.uint8).reshape(-1)))
    write(dst, new, fields, tensors)
    return foreign
