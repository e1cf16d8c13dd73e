"""Reading a ``torch.save`` state dict without PyTorch.

Kaggle's RecurrentGemma archives ship the reference model's ``state_dict`` as written by ``torch.save``:
a zip holding a pickle ``<prefix>/data.pkl`` and one raw little-endian file per storage
``<prefix>/data/<key>``. Unpickling such a file with the standard ``pickle`` module would run whatever
callables it names, so the unpickler here resolves only the handful of names a state dict needs and
refuses everything else *before* it can be called. Tensors are kept as references (storage, offset,
shape, stride) and their data is read one storage at a time, so a many-gigabyte checkpoint is never in
memory at once.

bfloat16 has no NumPy dtype: BF16 tensors are returned as ``uint16`` arrays holding the raw bits, and
``TensorRef.dtype`` says ``"BF16"``.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from dataclasses import dataclass

import numpy as np

__all__ = ["ConvertError", "Storage", "TensorRef", "TorchCheckpoint"]


class ConvertError(ValueError):
    """A checkpoint that cannot be read or converted; the message names the file and the entry."""


# torch's legacy storage class names, as torch.save pickles them, to (safetensors dtype tag, NumPy dtype
# of the little-endian file). BF16 is read as its uint16 bits.
_STORAGE_TYPES = {
    "DoubleStorage": ("F64", "<f8"),
    "FloatStorage": ("F32", "<f4"),
    "HalfStorage": ("F16", "<f2"),
    "BFloat16Storage": ("BF16", "<u2"),
    "LongStorage": ("I64", "<i8"),
    "IntStorage": ("I32", "<i4"),
    "ShortStorage": ("I16", "<i2"),
    "CharStorage": ("I8", "<i1"),
    "ByteStorage": ("U8", "<u1"),
    "BoolStorage": ("BOOL", "<b1"),
}

_READ_CHUNK = 64 << 20  # bytes per read from the zip: bounds the temporary copies zipfile makes


@dataclass(frozen=True, slots=True)
class _StorageType:
    """What the unpickler hands back for ``torch.FloatStorage`` etc.: a tag, deliberately not callable.
    Slotted and frozen (like the other records here) so a pickle's BUILD opcode cannot rewrite it."""

    name: str
    dtype: str
    numpy_dtype: str


@dataclass(frozen=True, slots=True)
class Storage:
    """One ``<prefix>/data/<key>`` entry: ``numel`` elements of ``dtype``."""

    key: str
    entry: str
    dtype: str
    numpy_dtype: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.numpy_dtype).itemsize


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A tensor as torch describes it: a strided view of a storage. No data is read until ``load``."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> str:
        return self.storage.dtype

    def elements_spanned(self) -> int:
        """How many storage elements the view reaches, from element 0 of the storage."""
        if any(n == 0 for n in self.shape):
            return 0
        return self.offset + 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Our stand-in for ``torch._utils._rebuild_tensor_v2``: checks the arguments, builds a TensorRef."""
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {type(storage).__name__} instead of a storage")
    size, stride = tuple(size), tuple(stride)
    if not (_is_int(storage_offset) and storage_offset >= 0):
        raise pickle.UnpicklingError(f"tensor storage offset {storage_offset!r} is not a non-negative integer")
    if len(size) != len(stride) or not all(_is_int(n) and n >= 0 for n in size + stride):
        raise pickle.UnpicklingError(f"tensor size {size!r} and stride {stride!r} are not matching "
                                     "tuples of non-negative integers")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is just its tensor here."""
    if not isinstance(data, TensorRef):
        raise pickle.UnpicklingError(f"_rebuild_parameter got {type(data).__name__} instead of a tensor")
    return data


# The callables the unpickler may resolve, besides the storage types (a fresh tag each time). Anything
# else (os.system, builtins.eval, ...) is refused by name before it can be called.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that can build a state dict and nothing else."""

    def __init__(self, file, zip_file: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._zip = zip_file
        self._prefix = prefix
        self._storages: dict[str, Storage] = {}

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name in _STORAGE_TYPES:
            return _StorageType(name, *_STORAGE_TYPES[name])
        if module == "torch" and name.endswith("Storage"):
            raise _RefusedGlobal(f"unsupported storage dtype torch.{name}")
        raise _RefusedGlobal(f"refused to load {module}.{name}: a state dict needs only tensors "
                             "(this may be a malicious file)")

    def persistent_load(self, pid):
        # torch.save writes ('storage', storage_type, key, location, numel) for every storage.
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names {storage_type!r}, not a storage type")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage id {pid!r}")
        known = self._storages.get(key)
        if known is not None:
            if (known.dtype, known.numel) != (storage_type.dtype, numel):
                raise pickle.UnpicklingError(f"storage {key} is described twice, differently")
            return known
        storage = Storage(key, f"{self._prefix}/data/{key}", storage_type.dtype, storage_type.numpy_dtype, numel)
        self._storages[key] = storage
        return storage


class TorchCheckpoint:
    """A ``torch.save`` zip opened for reading: ``tensors`` maps each state-dict name to a TensorRef.

    Every structural check (entries present and long enough, views inside their storage) happens on
    open, so a conversion can refuse a bad file before it writes anything.
    """

    def __init__(self, path):
        self.path = str(path)
        try:
            if not zipfile.is_zipfile(self.path):
                raise self._error("is not a zip archive; expected a torch.save checkpoint "
                                  "(PyTorch 1.6 or later writes a zip; older formats are not supported)")
            self._zip = zipfile.ZipFile(self.path)
        except OSError as e:
            raise ConvertError(f"{self.path}: cannot read: {e.strerror or e}") from None
        except zipfile.BadZipFile as e:
            raise self._error(f"is not a readable zip archive ({e})") from None
        try:
            self._prefix = self._find_prefix()
            self.byteorder = self._read_byteorder()
            self.tensors = self._unpickle()
            self._check_storages()
        except BaseException:
            self._zip.close()
            raise
        self._cached_key: str | None = None
        self._cached: np.ndarray | None = None

    # -- opening --------------------------------------------------------------------------------------

    def _error(self, what: str) -> ConvertError:
        return ConvertError(f"{self.path}: {what}")

    def _find_prefix(self) -> str:
        pickles = [n for n in self._zip.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if not pickles:
            raise self._error("no <prefix>/data.pkl in the zip: not a torch.save checkpoint")
        if len(pickles) > 1:
            raise self._error(f"several data.pkl entries ({', '.join(sorted(pickles))}); expected one")
        return pickles[0][: -len("/data.pkl")]

    def _read_byteorder(self) -> str:
        # torch writes <prefix>/byteorder since 1.13; files without it were written little-endian.
        name = f"{self._prefix}/byteorder"
        if name not in self._zip.NameToInfo:
            return "little"
        order = self._zip.read(name).decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise self._error(f"{name} says {order!r}, expected 'little' or 'big'")
        return order

    def _unpickle(self) -> dict[str, TensorRef]:
        entry = f"{self._prefix}/data.pkl"
        try:
            with self._zip.open(entry) as f:
                obj = _StateDictUnpickler(io.BufferedReader(f), self._zip, self._prefix).load()
        except _RefusedGlobal as e:
            raise self._error(f"{entry}: {e}") from None
        except zipfile.BadZipFile as e:
            raise self._error(f"{entry}: corrupt zip entry ({e})") from None
        except Exception as e:  # any malformed pickle: report it, never a traceback
            raise self._error(f"{entry}: cannot unpickle: {type(e).__name__}: {e}") from None
        if not isinstance(obj, dict):
            raise self._error(f"{entry} holds a {type(obj).__name__}, not a state dict")
        tensors: dict[str, TensorRef] = {}
        for name, value in obj.items():
            if not isinstance(name, str):
                raise self._error(f"{entry}: state dict key {name!r} is not a string")
            if not isinstance(value, TensorRef):
                raise self._error(f"{entry}: {name} is a {type(value).__name__}, not a tensor")
            tensors[name] = value
        return tensors

    def _check_storages(self) -> None:
        for name, t in self.tensors.items():
            s = t.storage
            info = self._zip.NameToInfo.get(s.entry)
            if info is None:
                raise self._error(f"tensor {name}: storage entry {s.entry} is missing from the zip")
            if info.file_size < s.nbytes:
                raise self._error(f"tensor {name}: storage entry {s.entry} holds {info.file_size} bytes, "
                                  f"too short for {s.numel} {s.dtype} elements ({s.nbytes} bytes)")
            if math.prod(t.shape) > s.numel:  # parameters never overlap themselves (no stride-0 views)
                raise self._error(f"tensor {name}: shape {list(t.shape)} has more elements than storage {s.entry} "
                                  f"holds ({s.numel}); overlapping views are not parameters")
            if t.elements_spanned() > s.numel:
                raise self._error(f"tensor {name}: shape {list(t.shape)} with stride {list(t.stride)} at offset "
                                  f"{t.offset} reaches element {t.elements_spanned()}, but storage {s.entry} "
                                  f"holds {s.numel}")

    # -- reading --------------------------------------------------------------------------------------

    def _read_storage(self, s: Storage) -> np.ndarray:
        if self._cached_key == s.key:
            return self._cached
        self._cached_key = self._cached = None  # let the previous storage go before reading the next
        buf = np.empty(s.nbytes, dtype=np.uint8)
        view = memoryview(buf)
        done = 0
        try:
            with self._zip.open(s.entry) as f:
                while done < s.nbytes:
                    n = f.readinto(view[done: done + _READ_CHUNK])
                    if not n:
                        raise self._error(f"storage entry {s.entry} ended after {done} of {s.nbytes} bytes")
                    done += n
        except zipfile.BadZipFile as e:
            raise self._error(f"storage entry {s.entry} is corrupt ({e})") from None
        dtype = np.dtype(s.numpy_dtype)
        if self.byteorder == "big":
            dtype = dtype.newbyteorder(">")
        data = buf.view(dtype)
        self._cached_key, self._cached = s.key, data
        return data

    def load(self, name: str) -> np.ndarray:
        """The tensor's data as a C-contiguous little-endian array (BF16: uint16 bits)."""
        t = self.tensors[name]
        data = self._read_storage(t.storage)
        itemsize = data.dtype.itemsize
        if math.prod(t.shape) == 0:
            view = np.zeros(t.shape, dtype=data.dtype)
        else:
            view = np.lib.stride_tricks.as_strided(data[t.offset:], shape=t.shape,
                                                   strides=tuple(s * itemsize for s in t.stride), writeable=False)
        # Native little-endian, contiguous; a no-copy view for the common contiguous little-endian case.
        return np.ascontiguousarray(view, dtype=np.dtype(t.storage.numpy_dtype))

    def close(self) -> None:
        self._cached_key = self._cached = None
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
