"""Read PyTorch ``.pth`` state dicts into numpy, with or without torch installed.

``load_state_dict(path)`` uses ``torch.load(map_location="cpu", weights_only=True)`` when torch imports, and
otherwise a torch-free reader of both serialisation formats: the zip archive (torch >= 1.6: ``data.pkl`` +
one file per storage) and the legacy stream (magic number, protocol, sys info, the object pickle, the
storage keys, then each storage's raw bytes). The reader's unpickler only admits the handful of globals a
state dict needs (tensor rebuild functions, storage types, OrderedDict); anything else is refused, so a
checkpoint cannot run code. Checkpoints that wrap the state dict (``{"state_dict": ...}``, ``{"model": ...}``)
are unwrapped and DataParallel's ``module.`` prefixes stripped.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # bfloat16 for numpy ships with jax (ml_dtypes)
    from ml_dtypes import bfloat16 as _bf16
except ImportError:  # pragma: no cover
    _bf16 = None

_STORAGE_DTYPES: dict[str, Any] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": _bf16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params", "generator", "netG", "net_G")


class _StorageType:
    def __init__(self, name: str):
        if _STORAGE_DTYPES.get(name) is None:
            raise pickle.UnpicklingError(f"unsupported storage type torch.{name}")
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer; ``data`` is filled when the bytes are read (at once for zip, later for legacy)."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise pickle.UnpicklingError("tensor storage bytes missing from the checkpoint")
        if not self.size:
            return np.array(flat[self.offset])
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        out = np.array(view)
        return out.astype(np.float32) if out.dtype == _bf16 else out  # as the torch path returns bfloat16


def _rebuild_tensor(storage, storage_offset, size, stride, *_args):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_args):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: Mapping[str, _Storage] | None = None, load_storage=None):
        super().__init__(file)
        self._storages = storages if storages is not None else {}
        self._load_storage = load_storage

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"checkpoint references {module}.{name}, which a state dict never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        key = str(key)
        if key not in self._storages:
            storage = _Storage(storage_type.dtype, int(numel))
            if self._load_storage is not None:
                storage.data = self._load_storage(key, storage.dtype)
            self._storages[key] = storage
        storage = self._storages[key]
        if view is not None:  # legacy storage views: (view key, offset, size)
            _, offset, size = view
            return _ViewStorage(storage, int(offset), int(size))
        return storage


class _ViewStorage(_Storage):
    def __init__(self, base: _Storage, offset: int, numel: int):
        super().__init__(base.dtype, numel)
        self.base, self.offset = base, offset

    @property
    def data(self):
        return None if self.base.data is None else self.base.data[self.offset : self.offset + self.numel]

    @data.setter
    def data(self, value):
        pass


def _materialize(obj):
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, Mapping):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ValueError(f"{path}: zip archive without data.pkl: not a torch checkpoint")
        root = pkl[0][: -len("data.pkl")]
        big = zf.read(root + "byteorder").decode().strip() == "big" if root + "byteorder" in names else False

        def load_storage(key: str, dtype: np.dtype) -> np.ndarray:
            raw = zf.read(f"{root}data/{key}")
            return np.frombuffer(raw, dtype=dtype.newbyteorder(">" if big else "<")).astype(dtype)

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage=load_storage).load()
        return _materialize(obj)


def _read_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        plain = _RestrictedUnpickler(f)  # magic number, protocol version, sys info: no globals
        magic = plain.load()
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic number)")
        plain.load()
        plain.load()
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f).load()
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(numel * storage.dtype.itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<")).astype(storage.dtype)
        return _materialize(obj)


def read_torch_file(path: str | os.PathLike) -> Any:
    """The unpickled object of a ``.pth`` file (tensors as numpy arrays), without torch."""
    path = os.fspath(path)
    return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)


def _torch_load(path: str) -> Any:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path}: torch.load(weights_only=True) refused it (not a plain state dict?): {e}"
        ) from e

    def to_numpy(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
        if isinstance(x, Mapping):
            return collections.OrderedDict((k, to_numpy(v)) for k, v in x.items())
        return x

    return to_numpy(obj)


def unwrap_state_dict(obj: Any, what: str = "checkpoint") -> dict[str, np.ndarray]:
    """The tensor dict inside a checkpoint: unwraps ``{"state_dict": ...}``-style wrappers and strips
    DataParallel's ``module.`` prefix."""
    while isinstance(obj, Mapping) and not all(isinstance(v, np.ndarray) for v in obj.values()):
        inner = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not inner:
            dicts = [k for k, v in obj.items() if isinstance(v, Mapping)]
            if len(dicts) != 1:
                raise ValueError(
                    f"{what}: cannot find the state dict among keys {sorted(map(str, obj))[:10]}"
                )
            inner = dicts
        obj = obj[inner[0]]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what}: expected a dict of tensors, got {type(obj).__name__}")
    return {(k[len("module.") :] if k.startswith("module.") else k): np.asarray(v) for k, v in obj.items()}


def load_state_dict(path: str | os.PathLike, *, use_torch: bool | None = None) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` of an official ``.pth`` file. ``use_torch=None`` uses torch when it imports."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if use_torch is None:
        try:
            import torch  # noqa: F401

            use_torch = True
        except ImportError:
            use_torch = False
    obj = _torch_load(path) if use_torch else read_torch_file(path)
    return unwrap_state_dict(obj, path)
