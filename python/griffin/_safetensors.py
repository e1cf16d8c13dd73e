"""A minimal safetensors writer and reader in pure Python + NumPy.

The converter must not depend on the ``safetensors`` package (or on torch), and a multi-gigabyte
checkpoint must be written without building it in memory: ``write_file`` takes the tensors' names,
dtypes and shapes up front (the header needs every offset) and asks for each tensor's data only when it
is its turn to be written.

Format: an 8-byte little-endian header length N, N bytes of JSON (``{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {str: str}}``, offsets relative to the end of the
header), then the tensors' bytes, contiguous and in offset order. We pad the header with spaces so the
data starts at a multiple of 8 bytes.

bfloat16 has no NumPy dtype: BF16 tensors are uint16 arrays holding the bits, both ways (the reader can
widen them to float32 on request).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

__all__ = ["SafetensorsError", "TensorSpec", "TensorInfo", "write_file", "save_file", "read_header", "load_file"]


class SafetensorsError(ValueError):
    """A safetensors file that is malformed, or tensors that do not match what was declared."""


# safetensors dtype tag -> little-endian NumPy dtype. BF16 and U16 share uint16 storage.
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "<i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "<u1", "BOOL": "<b1",
}
# The reverse, for arrays given without a tag (uint16 means U16: BF16 must be asked for by name).
_TAG_OF = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}

_MAX_HEADER = 100 << 20  # the reference implementation's limit


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to write: ``produce()`` is called once, when its bytes are due, and must return an array
    of exactly ``shape`` and ``dtype``'s NumPy dtype."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]


@dataclass(frozen=True)
class TensorInfo:
    """One header entry; ``begin``/``end`` are relative to the start of the data."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _nbytes(dtype: str, shape) -> int:
    return math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize


def write_file(path, specs: Iterable[TensorSpec], metadata: Mapping[str, str] | None = None) -> int:
    """Writes ``specs`` in order to ``path``, streaming one tensor at a time. Returns the file size."""
    specs = list(specs)
    header: dict[str, object] = {"__metadata__": dict(metadata if metadata is not None else {"format": "pt"})}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in header["__metadata__"].items()):
        raise SafetensorsError("metadata keys and values must be strings")
    offset = 0
    for s in specs:
        if s.name in header:
            raise SafetensorsError(f"tensor name {s.name!r} is used twice (or is reserved)")
        if s.dtype not in DTYPES:
            raise SafetensorsError(f"{s.name}: unknown dtype {s.dtype!r}")
        n = _nbytes(s.dtype, s.shape)
        header[s.name] = {"dtype": s.dtype, "shape": [int(d) for d in s.shape], "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for s in specs:
            a = s.produce()
            want = np.dtype(DTYPES[s.dtype])
            if a.dtype != want or tuple(a.shape) != tuple(s.shape):
                raise SafetensorsError(f"{s.name}: got a {a.dtype} array of shape {list(a.shape)}, "
                                       f"declared {s.dtype} {list(s.shape)}")
            a = np.ascontiguousarray(a)
            f.write(a.reshape(-1).view(np.uint8).data)
    return 8 + len(text) + offset


def save_file(tensors: Mapping[str, np.ndarray], path, dtypes: Mapping[str, str] | None = None,
              metadata: Mapping[str, str] | None = None) -> int:
    """Writes in-memory arrays. ``dtypes`` gives a tag per name where the NumPy dtype is ambiguous (BF16)."""
    dtypes = dtypes or {}
    specs = []
    for name, a in tensors.items():
        a = np.asarray(a)
        tag = dtypes.get(name) or _TAG_OF.get(a.dtype.newbyteorder("<"))
        if tag is None:
            raise SafetensorsError(f"{name}: NumPy dtype {a.dtype} has no safetensors dtype")
        a = a.astype(DTYPES[tag], copy=False)
        specs.append(TensorSpec(name, tag, tuple(a.shape), lambda a=a: a))
    return write_file(path, specs, metadata)


def _unique_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise SafetensorsError(f"header repeats the key {k!r}")
        d[k] = v
    return d


def read_header(path) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    """Parses and validates the header: returns (tensors by name, metadata, offset of the data)."""
    path = str(path)

    def fail(what):
        return SafetensorsError(f"{path}: {what}")

    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        if size < 8:
            raise fail(f"{size} bytes is too short for a safetensors file")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(_MAX_HEADER, size - 8):
            raise fail(f"header length {n} does not fit the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise fail(f"header is not JSON ({e})") from None
    except SafetensorsError as e:  # a repeated key
        raise fail(str(e)) from None
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("__metadata__ is not an object of strings")
    data_len = size - 8 - n
    infos: dict[str, TensorInfo] = {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise fail(f"{name}: expected dtype, shape and data_offsets, got {e!r}")
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPES:
            raise fail(f"{name}: unknown dtype {dtype!r}")
        ok_int = lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0  # noqa: E731
        if not isinstance(shape, list) or not all(ok_int(d) for d in shape):
            raise fail(f"{name}: shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(ok_int(o) for o in offsets)):
            raise fail(f"{name}: data_offsets {offsets!r} is not [begin, end]")
        begin, end = offsets
        if not begin <= end <= data_len:
            raise fail(f"{name}: data_offsets {offsets} fall outside the {data_len} data bytes")
        if end - begin != _nbytes(dtype, shape):
            raise fail(f"{name}: data_offsets {offsets} hold {end - begin} bytes, "
                       f"but {dtype} {shape} needs {_nbytes(dtype, shape)}")
        infos[name] = TensorInfo(dtype, tuple(shape), begin, end)
    # The data must be tiled exactly: no overlaps, no holes.
    pos = 0
    for name, info in sorted(infos.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if info.begin != pos:
            raise fail(f"{name}: data starts at {info.begin}, expected {pos} (overlap or hole)")
        pos = info.end
    if pos != data_len:
        raise fail(f"the tensors cover {pos} of the {data_len} data bytes")
    return infos, metadata, 8 + n


def load_file(path, bf16: str = "bits") -> dict[str, np.ndarray]:
    """Reads every tensor as a read-only array over a memory map. BF16 is uint16 bits unless
    ``bf16="float32"``, which widens it (exactly: a bf16 value is the top half of a float32)."""
    if bf16 not in ("bits", "float32"):
        raise ValueError("bf16 must be 'bits' or 'float32'")
    infos, _, start = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r") if infos else np.zeros(0, np.uint8)
    out = {}
    for name, info in infos.items():
        a = data[start + info.begin: start + info.end].view(DTYPES[info.dtype]).reshape(info.shape)
        if info.dtype == "BF16" and bf16 == "float32":
            a = (a.astype("<u4") << 16).view("<f4")
        out[name] = a
    return out
