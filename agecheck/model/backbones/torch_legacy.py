"""Read legacy (non-zip) PyTorch ``.pth`` state dicts into numpy, without torch.

The legacy format written by ``torch.save(..., _use_new_zipfile_serialization=False)``
is a sequence of pickles followed by raw storage data:

1. pickle: magic number ``119547037146038801333356``
2. pickle: protocol version ``1001``
3. pickle: sys_info dict (endianness, type sizes)
4. pickle: the object itself; tensors are ``torch._utils._rebuild_tensor_v2``
   calls whose storages are persistent ids
   ``('storage', StorageType, key, location, numel, view_metadata)``
5. pickle: list of storage keys
6. for each key in that order: int64 little-endian element count, raw data.

Only a restricted set of globals is resolved, so no arbitrary pickle code runs.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only its numpy dtype matters."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage (or a view into one) referenced from the object pickle."""

    key: str
    dtype: np.dtype
    numel: int
    view_of: str | None = None
    view_offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose data is materialized once the storages are read."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    """Replacement for ``torch._utils._rebuild_tensor_v2`` that records metadata."""
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a plain state dict needs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise ValueError(f"refusing to unpickle global {module}.{name} (not a plain tensor state dict)")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"unexpected storage type {storage_type!r}")
        if view_metadata is None:
            return _StorageRef(str(key), storage_type.dtype, int(numel))
        view_key, view_offset, view_size = view_metadata
        return _StorageRef(str(view_key), storage_type.dtype, int(view_size), str(key), int(view_offset))


def _read_header(f: BinaryIO) -> None:
    """Check magic number, protocol version and endianness."""
    magic = _RestrictedUnpickler(f).load()
    if magic != MAGIC_NUMBER:
        raise ValueError("bad magic number")
    protocol = _RestrictedUnpickler(f).load()
    if protocol != PROTOCOL_VERSION:
        raise ValueError(f"unsupported protocol version {protocol!r}")
    sys_info = _RestrictedUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise ValueError("only little-endian files are supported")


def _read_storages(f: BinaryIO, keys: list[str], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """Read the raw storage blobs that follow the pickles, in ``keys`` order."""
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"missing data for storage {key}")
        count = int.from_bytes(header, "little", signed=True)
        dtype = dtypes.get(key, np.dtype("u1"))
        nbytes = count * dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise ValueError(f"truncated data for storage {key}")
        storages[key] = np.frombuffer(data, dtype=dtype)
    return storages


def _storage_dtypes(tensors: dict[str, _TensorRef]) -> dict[str, np.dtype]:
    """Map each root storage key to its dtype."""
    dtypes: dict[str, np.dtype] = {}
    for ref in tensors.values():
        root = ref.storage.view_of or ref.storage.key
        dtypes[root] = ref.storage.dtype
    return dtypes


def _materialize(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    """Build a contiguous array from a storage, offset, size and stride."""
    st = ref.storage
    root = storages[st.view_of or st.key]
    flat = root[st.view_offset : st.view_offset + st.numel] if st.view_of else root
    if not ref.size:
        return flat[ref.offset : ref.offset + 1].reshape(()).copy()
    extent = 1 + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True) if n > 0)
    if min(ref.size) > 0 and ref.offset + extent > flat.size:
        raise ValueError(f"tensor exceeds its storage {st.key}")
    base = flat[ref.offset :]
    strides = tuple(s * base.itemsize for s in ref.stride)
    return np.lib.stride_tricks.as_strided(base, shape=ref.size, strides=strides, writeable=False).copy()


def _load(f: BinaryIO) -> dict[str, np.ndarray]:
    _read_header(f)
    obj = _RestrictedUnpickler(f).load()
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()
    ):
        raise ValueError("the pickled object is not a flat {name: tensor} state dict")
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise ValueError("missing storage key list")
    storages = _read_storages(f, [str(k) for k in keys], _storage_dtypes(obj))
    return {name: _materialize(ref, storages) for name, ref in obj.items()}


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy-format PyTorch state dict as ``{name: numpy array}``.

    Raises ``ValueError`` (naming the path) when the file is not in that format,
    e.g. a zip-format ``.pth``, or pickles anything but plain tensors.
    """
    path = Path(path)
    with path.open("rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise ValueError(f"{path}: zip-format torch file; only the legacy format is supported")
        f.seek(0)
        try:
            return _load(f)
        except ValueError as exc:
            raise ValueError(f"{path}: not a legacy PyTorch state dict: {exc}") from exc
        except (pickle.UnpicklingError, EOFError, IndexError, KeyError, TypeError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"{path}: not a legacy PyTorch state dict ({reason})") from exc
