"""Read PyTorch ``.pth`` state dicts into numpy, with or without torch installed.

``load_state_dict(path)`` uses ``torch.load(map_location="cpu", weights_only=True)`` when torch imports, and
otherwise a torch-free reader of both serialisation formats: the zip archive (torch >= 1.6: ``data.pkl`` +
one file per storage) and the legacy stream (magic number, protocol, sys info, the object pickle, the
storage keys, then each storage's raw bytes). The reader's unpickler only admits the handful of globals a
state dict needs (tensor rebuild functions, storage types, OrderedDict); anything else is refused, so a
checkpoint cannot run code. Checkpoints that wrap the state dict (``{"state_dict": ...}``, ``{"model": ...}``)
are unwrapped and DataParallel's ``module.`` prefixes stripped.

A checkpoint is validated before anything large is allocated: every storage's declared size against the bytes
the archive holds for it, the total against a byte budget (``max_bytes``, default ``$PTX_MAX_CHECKPOINT_BYTES``
or 4 GiB), and every tensor's extent (offset, sizes, strides) against its storage, so a crafted file can neither
read past a buffer nor inflate a small zip into gigabytes. ``inspect(path)`` lists names, shapes and dtypes without
reading tensor data, so a converter can reject a wrong file before loading it. Zip archives are validated this way
before ``torch.load`` sees them too.
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
DEFAULT_MAX_BYTES = 4 << 30
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
        self.check_extent()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.size)

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    def check_extent(self) -> None:
        """The last element this tensor reads lies inside its storage (and nothing is negative)."""
        ints = (self.offset, *self.size, *self.stride)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise pickle.UnpicklingError(f"tensor offset/size/stride must be integers, got {ints}")
        if self.offset < 0 or any(d < 0 for d in self.size) or any(st < 0 for st in self.stride):
            raise pickle.UnpicklingError(f"tensor with a negative offset, size or stride: {ints}")
        if len(self.stride) != len(self.size):
            raise pickle.UnpicklingError(f"tensor of {len(self.size)} dims with {len(self.stride)} strides")
        if any(d == 0 for d in self.size):
            return
        last = self.offset + sum((d - 1) * st for d, st in zip(self.size, self.stride))
        if last >= self.storage.numel:
            raise pickle.UnpicklingError(
                f"tensor of shape {self.shape} (offset {self.offset}, strides {self.stride}) reads element {last}"
                f" of a storage holding {self.storage.numel}: a corrupt or crafted checkpoint"
            )

    def materialize(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise pickle.UnpicklingError("tensor storage bytes missing from the checkpoint")
        if len(flat) < self.storage.numel:
            raise pickle.UnpicklingError(
                f"storage holds {len(flat)} elements, the checkpoint declared {self.storage.numel}"
            )
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
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage record {pid[:5]!r}")
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


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    return int(os.environ.get("PTX_MAX_CHECKPOINT_BYTES", DEFAULT_MAX_BYTES))


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _zip_pickle(zf: zipfile.ZipFile, path: str) -> tuple[str, bytes]:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise ValueError(f"{path}: zip archive without data.pkl: not a torch checkpoint")
    info = zf.getinfo(pkl[0])
    if info.file_size > 64 << 20:
        raise ValueError(f"{path}: {pkl[0]} is {info.file_size} bytes; a state dict's index is far smaller")
    return pkl[0][: -len("data.pkl")], zf.read(pkl[0])


def _check_zip_storages(
    zf: zipfile.ZipFile, root: str, storages: Mapping[str, _Storage], path: str, budget: int
):
    """Every declared storage exists with exactly its declared byte size, and they fit the byte budget."""
    total = 0
    for key, storage in storages.items():
        if isinstance(storage, _ViewStorage):
            continue
        name = f"{root}data/{key}"
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise ValueError(f"{path}: storage {key!r} is referenced but {name} is missing") from None
        want = storage.numel * storage.dtype.itemsize
        if info.file_size != want:
            raise ValueError(
                f"{path}: storage {key!r} declares {storage.numel} x {storage.dtype} ({want} bytes) but {name} "
                f"holds {info.file_size} bytes: a corrupt or crafted checkpoint"
            )
        total += want
    if total > budget:
        raise ValueError(
            f"{path}: tensors total {_human(total)}, over the {_human(budget)} budget (set "
            "PTX_MAX_CHECKPOINT_BYTES to allow larger checkpoints)"
        )


def _index_zip(path: str, budget: int) -> Any:
    """The unpickled object with lazy tensors, every storage checked against the archive; no tensor data read."""
    with zipfile.ZipFile(path) as zf:
        root, pkl = _zip_pickle(zf, path)
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(pkl), storages).load()
        _check_zip_storages(zf, root, storages, path, budget)
    return obj


def _read_zip(path: str, budget: int) -> Any:
    with zipfile.ZipFile(path) as zf:
        root, pkl = _zip_pickle(zf, path)
        big = (
            zf.read(root + "byteorder").decode().strip() == "big"
            if root + "byteorder" in zf.namelist()
            else False
        )
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(pkl), storages).load()
        _check_zip_storages(zf, root, storages, path, budget)
        for key, storage in storages.items():
            if isinstance(storage, _ViewStorage):
                continue
            raw = zf.read(f"{root}data/{key}")
            dtype = storage.dtype
            storage.data = np.frombuffer(raw, dtype=dtype.newbyteorder(">" if big else "<")).astype(dtype)
        return _materialize(obj)


def _read_legacy(path: str, budget: int) -> Any:
    size = os.path.getsize(path)
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
        declared = sum(
            s.numel * s.dtype.itemsize for s in storages.values() if not isinstance(s, _ViewStorage)
        )
        if declared > min(budget, size):
            raise ValueError(
                f"{path}: tensors declare {declared} bytes; the file has {size} and the budget is {budget}"
            )
        for key in keys:
            if str(key) not in storages:
                raise ValueError(f"{path}: storage {key!r} has data but no tensor refers to it")
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                raise ValueError(f"{path}: storage {key!r} holds {numel} elements, declared {storage.numel}")
            raw = f.read(numel * storage.dtype.itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<")).astype(storage.dtype)
        return _materialize(obj)


def read_torch_file(path: str | os.PathLike, *, max_bytes: int | None = None) -> Any:
    """The unpickled object of a ``.pth`` file (tensors as numpy arrays), without torch."""
    path, budget = os.fspath(path), _max_bytes(max_bytes)
    return _read_zip(path, budget) if zipfile.is_zipfile(path) else _read_legacy(path, budget)


def inspect(
    path: str | os.PathLike, *, max_bytes: int | None = None
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of a zip-format ``.pth`` state dict, read and validated without loading any
    tensor data (wrappers and ``module.`` prefixes handled as in :func:`load_state_dict`)."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: inspect needs the zip format (torch >= 1.6); load the legacy file instead")
    tree = _index_zip(path, _max_bytes(max_bytes))
    return {k: (v.shape, v.dtype) for k, v in unwrap_state_dict(tree, path, leaf=_LazyTensor).items()}


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


def unwrap_state_dict(obj: Any, what: str = "checkpoint", *, leaf: type = np.ndarray) -> dict[str, Any]:
    """The tensor dict inside a checkpoint: unwraps ``{"state_dict": ...}``-style wrappers and strips
    DataParallel's ``module.`` prefix."""
    while isinstance(obj, Mapping) and not all(isinstance(v, leaf) for v in obj.values()):
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
    convert = np.asarray if leaf is np.ndarray else (lambda v: v)
    return {(k[len("module.") :] if k.startswith("module.") else k): convert(v) for k, v in obj.items()}


def load_state_dict(
    path: str | os.PathLike, *, use_torch: bool | None = None, max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` of an official ``.pth`` file. ``use_torch=None`` uses torch when it imports
    (after the torch-free validation of a zip archive: torch trusts the sizes a file declares)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if use_torch is None:
        try:
            import torch  # noqa: F401

            use_torch = True
        except ImportError:
            use_torch = False
    if use_torch:
        if zipfile.is_zipfile(path):
            _index_zip(path, _max_bytes(max_bytes))
        obj = _torch_load(path)
    else:
        obj = read_torch_file(path, max_bytes=max_bytes)
    return unwrap_state_dict(obj, path)
