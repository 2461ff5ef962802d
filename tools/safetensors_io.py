"""Minimal safetensors reader/writer (no `safetensors` package needed).

Format: 8-byte little-endian header length N, then N bytes of JSON header
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}),
padded with spaces to a multiple of 8, then the raw little-endian tensor data.
Only the dtypes used by the lmtrain fixtures are supported (F32, F64, I32, I64).
Tensors are written in the order given, so the same inputs give the same bytes.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def write(path, tensors, metadata=None):
    """tensors: list of (name, numpy array) in file order; metadata: {str: str}."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dt = np.dtype(arr.dtype).newbyteorder("<")
        if dt not in _NAMES:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        data = arr.astype(dt, copy=False).tobytes()
        if name in header:
            raise ValueError(f"duplicate tensor name {name}")
        header[name] = {"dtype": _NAMES[dt], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns (dict name -> numpy array in file order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dt = np.dtype(_DTYPES[info["dtype"]])
        arr = np.frombuffer(raw[base + begin:base + end], dtype=dt)
        out[name] = arr.reshape(info["shape"])
    return out, metadata
