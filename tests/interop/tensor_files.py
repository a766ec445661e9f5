"""Tensor bytes for the interop tests, without torch: bfloat16 conversion
(round to nearest even, as the server does), raw little-endian tensor bytes
as the Open Inference Protocol carries them, and a safetensors writer and
strict reader (Debian has no python3-safetensors). torch_models.py
re-exports all of it.
"""

import collections
import json
import struct

import numpy as np

# -- bfloat16 --------------------------------------------------------------

def bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even;
    NaN stays a (quiet) NaN."""
    bits = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(a, np.float32))
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded.astype("<u2")


def bf16_to_f32(bits):
    return (np.asarray(bits, "<u2").astype("<u4") << 16).view("<f4")


def bf16_round(a):
    """`a` rounded to the nearest bfloat16, as float32."""
    return bf16_to_f32(bf16_bits(a)).reshape(np.shape(a))


def raw_bytes(a, datatype="FP32"):
    """The raw little-endian bytes of `a` as datatype FP32 or BF16."""
    if datatype == "FP32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if datatype == "BF16":
        return bf16_bits(a).tobytes()
    raise ValueError(datatype)


def from_raw(blob, datatype, shape):
    """float32 array of `shape` from raw FP32 or BF16 bytes."""
    if datatype == "FP32":
        return np.frombuffer(blob, dtype="<f4").reshape(shape)
    if datatype == "BF16":
        return bf16_to_f32(np.frombuffer(blob, dtype="<u2")).reshape(shape)
    raise ValueError(datatype)


def element_size(datatype):
    return {"FP32": 4, "BF16": 2}[datatype]


# -- safetensors -----------------------------------------------------------

_ST_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
              "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
              "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?")}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def safetensors_bytes(tensors, metadata=None):
    """A safetensors file: 8-byte little-endian header length N, N bytes of
    JSON header ({name: {dtype, shape, data_offsets: [begin, end]}}, offsets
    relative to the data section; "__metadata__" string map), padded with
    spaces to a multiple of 8, then every tensor's raw little-endian
    row-major bytes, back to back in the order given. `tensors`: name ->
    numpy array, or name -> ("BF16", uint16 array) for bfloat16."""
    header = collections.OrderedDict()
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, value in tensors.items():
        if name == "__metadata__":
            raise ValueError("a tensor cannot be named __metadata__")
        if isinstance(value, tuple) and value[0] == "BF16":
            a = np.ascontiguousarray(value[1], dtype="<u2")
            dtype = "BF16"
        else:
            a = np.asarray(value)
            key = np.dtype(a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype)
            if key not in _ST_NAMES:
                raise ValueError(f"{name}: unsupported dtype {a.dtype}")
            a = np.ascontiguousarray(a.astype(key, copy=False))
            dtype = _ST_NAMES[key]
        data = a.tobytes()
        header[name] = {"dtype": dtype, "shape": [int(d) for d in a.shape],
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))
    return path


def read_safetensors(path):
    """(tensors, metadata) from a safetensors file, checking it strictly:
    the header length fits, the JSON parses, every tensor's byte range
    matches its dtype and shape, and the ranges tile the data section
    exactly. BF16 tensors come back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, no header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} beyond the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"),
                        object_pairs_hook=collections.OrderedDict)
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", None)
    tensors, ranges = collections.OrderedDict(), []
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{path}: {name}: header keys {sorted(info)}")
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        if info["dtype"] == "BF16":
            itemsize = 2
        else:
            itemsize = _ST_DTYPES[info["dtype"]].itemsize
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: {name}: offsets {begin}..{end} outside "
                             f"{len(data)} data bytes")
        if end - begin != int(np.prod(shape, dtype=np.int64)) * itemsize:
            raise ValueError(f"{path}: {name}: {end - begin} bytes for {info['dtype']} "
                             f"{shape}")
        chunk = data[begin:end]
        if info["dtype"] == "BF16":
            tensors[name] = bf16_to_f32(np.frombuffer(chunk, "<u2")).reshape(shape)
        else:
            tensors[name] = np.frombuffer(chunk, _ST_DTYPES[info["dtype"]]).reshape(shape)
        ranges.append((begin, end))
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise ValueError(f"{path}: data section has a gap or overlap at {position}")
        position = end
    if position != len(data):
        raise ValueError(f"{path}: {len(data) - position} trailing data bytes")
    return tensors, metadata
