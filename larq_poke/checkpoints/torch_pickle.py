"""Read PyTorch ``torch.save`` files without torch and without executing pickled code.

A ``.pth`` / ``.pth.tar`` file is a pickle whose tensors point at raw storages. Unpickling it with
:mod:`pickle` (or ``torch.load(weights_only=False)``) may call any importable function the file
names, e.g. ``os.system``. This reader uses a restricted unpickler instead: every global the file
references is looked up in a small allowlist of *local* stand-ins (tensor rebuilding, storage
types, ``collections.OrderedDict``, numeric NumPy scalars / arrays); nothing is ever imported, and
any other global raises :class:`UnsafeCheckpointError` naming it before anything is called.

Both serialization formats of ``torch.save`` are supported:

* the zip format (torch >= 1.6 default): ``<name>/data.pkl`` plus one zip record per storage;
* the legacy format (``_use_new_zipfile_serialization=False``): magic number, protocol version,
  system info, the object pickle, the storage keys and the raw storages, in one stream.

Tensors come back as NumPy arrays (a copy, in native byte order); containers as ``dict`` /
``OrderedDict`` / ``list`` / ``tuple``. ``bfloat16`` tensors are widened to ``float32``.

Untrusted bytes are checked before they are trusted: every length a pickle opcode declares is
checked against the bytes that follow it (a scan with :mod:`pickletools` before unpickling), every
zip record's size against the archive's, every tensor's shape, offset and stride against its
storage, so a corrupted file raises :class:`CheckpointError` instead of allocating what a size
field claims.

```python
from larq_poke.checkpoints import read_torch
state = read_torch("bnext_tiny.pth.tar")      # e.g. OrderedDict of np.ndarray
state["module.fc.weight"].shape                # (1000, 1024)
```
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import re
import struct
from typing import Any, Dict, Optional

import numpy as np

from larq_poke.checkpoints.errors import MALFORMED, CheckpointError, UnsafeCheckpointError, reading
from larq_poke.checkpoints.zip_records import open_zip, read_record

__all__ = ["read_torch", "torch_zip_prefix"]


# --------------------------------------------------------------------------------------------
# Local stand-ins for the globals a tensor checkpoint may reference.

# torch storage class name -> (numpy dtype, note). bfloat16 has no NumPy dtype: stored as uint16
# and widened to float32 when the tensor is built.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
    "UntypedStorage": np.uint8,
}

# torch dtype attribute name -> numpy dtype (used by _rebuild_tensor_v3 and typed storages).
_TORCH_DTYPES = {
    "float32": np.float32,
    "float": np.float32,
    "float64": np.float64,
    "double": np.float64,
    "float16": np.float16,
    "half": np.float16,
    "bfloat16": "bfloat16",
    "int64": np.int64,
    "long": np.int64,
    "int32": np.int32,
    "int": np.int32,
    "int16": np.int16,
    "short": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
    "complex64": np.complex64,
    "complex128": np.complex128,
}


class _Frozen:
    """Base of the shared stand-in objects: a pickle's BUILD step cannot modify them."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise UnsafeCheckpointError(f"the checkpoint tries to modify {self!r}")

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"the checkpoint tries to modify {self!r}")


class _NamedDType(_Frozen):
    """A torch type name with the numpy element type it stands for."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __repr__(self):
        return f"torch.{self.name}"


class _StorageType(_NamedDType):
    """Stand-in for ``torch.FloatStorage`` & co.: only carries the element type."""

    __slots__ = ()


class _TorchDType(_NamedDType):
    """Stand-in for ``torch.float32`` & co."""

    __slots__ = ()


class _SafeCallable(_Frozen):
    """Wraps an allowlisted local function or class so the pickle cannot modify it."""

    __slots__ = ("target", "qualname")

    def __init__(self, target, qualname: str):
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "qualname", qualname)

    def __call__(self, *args, **kwargs):
        return self.target(*args, **kwargs)

    def __repr__(self):
        return self.qualname


def _itemsize(dtype) -> int:
    return 2 if isinstance(dtype, str) and dtype == "bfloat16" else np.dtype(dtype).itemsize


class _Storage:
    """A flat storage: ``data`` is a 1-D NumPy array, or ``None`` until the legacy reader fills it."""

    def __init__(self, key: str, dtype, numel: int, data: Optional[np.ndarray] = None):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data = data


class _StorageView:
    """A legacy-format view into another storage (offset and size in elements)."""

    def __init__(self, root: _Storage, offset: int, size: int):
        self.root = root
        self.offset = offset
        self.size = size


class _PendingTensor:
    """A tensor whose storage is not read yet (legacy format); resolved after unpickling."""

    def __init__(self, storage, offset, size, stride, dtype):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride
        self.dtype = dtype


def _as_index_tuple(value, what: str):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise CheckpointError(f"malformed tensor {what} {value!r}")
    return tuple(value)


def _materialize(storage, offset: int, size, stride, dtype) -> np.ndarray:
    """Build the array for a strided view of ``storage``; bounds-checked against its numel."""
    view_offset = 0
    if isinstance(storage, _StorageView):
        view_offset = storage.offset
        limit = storage.size
        root = storage.root
    else:
        limit = storage.numel
        root = storage
    if root.data is None:
        raise CheckpointError(f"storage {root.key!r} was never written to the file")
    numel = math.prod(size)
    # A dimension of size 1 never moves: its stride is irrelevant (and may be anything).
    stride = tuple(0 if n == 1 else s for n, s in zip(size, stride))
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or view_offset < 0 or last >= limit or view_offset + last >= root.data.size:
            raise CheckpointError(
                f"tensor of shape {tuple(size)} reads past the end of storage {root.key!r} "
                f"({limit} elements); the file is corrupted"
            )
        if numel > limit:
            raise CheckpointError(
                f"tensor of shape {tuple(size)} repeats the {limit} elements of storage "
                f"{root.key!r} (overlapping strides {stride}); not a weights tensor"
            )
    flat = root.data[view_offset + offset :]
    if numel == 0:
        array = np.zeros(size, dtype=flat.dtype)
    else:
        array = np.lib.stride_tricks.as_strided(
            flat, shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False
        )
        array = np.array(array)  # own, contiguous copy
    if isinstance(dtype, str) and dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, storage_offset, size, stride, dtype=None):
    if not isinstance(storage, (_Storage, _StorageView)):
        raise CheckpointError(f"tensor refers to {type(storage).__name__}, not a storage")
    if not isinstance(storage_offset, int):
        raise CheckpointError(f"malformed tensor offset {storage_offset!r}")
    size = _as_index_tuple(size, "size")
    stride = _as_index_tuple(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointError(f"tensor size {size} and stride {stride} do not match")
    root = storage.root if isinstance(storage, _StorageView) else storage
    dtype = dtype if dtype is not None else root.dtype
    if root.data is None:
        return _PendingTensor(storage, storage_offset, size, stride, dtype)
    return _materialize(storage, storage_offset, size, stride, dtype)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None
):
    if not isinstance(dtype, _TorchDType):
        raise CheckpointError(f"malformed tensor dtype {dtype!r}")
    if not isinstance(storage, (_Storage, _StorageView)):
        raise CheckpointError(f"tensor refers to {type(storage).__name__}, not a storage")
    root = storage.root if isinstance(storage, _StorageView) else storage
    if root.dtype is not np.uint8 and root.dtype != dtype.dtype:
        raise CheckpointError("tensor dtype does not match its storage")
    if root.dtype is np.uint8 and dtype.dtype is not np.uint8:
        # An untyped (byte) storage reinterpreted with the tensor's dtype.
        itemsize = _itemsize(dtype.dtype)
        if root.data is not None:
            if root.data.size % itemsize:
                raise CheckpointError(f"storage {root.key!r} size is not a multiple of {itemsize}")
            view_dtype = np.uint16 if dtype.dtype == "bfloat16" else dtype.dtype
            root = _Storage(root.key, dtype.dtype, root.numel // itemsize, root.data.view(view_dtype))
        else:
            raise CheckpointError("untyped storages are not supported in the legacy format")
        storage = root
    return _rebuild_tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _ParameterType:
    """Stand-in for ``torch.nn.Parameter`` (only used as a tag by ``_rebuild_from_type_v2``)."""


_SAFE_REBUILDERS = (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_parameter_with_state)


def _rebuild_from_type_v2(func, new_type, args, state):
    func = getattr(func, "target", None)
    new_type = getattr(new_type, "target", None)
    if func not in _SAFE_REBUILDERS or new_type is not _ParameterType or not isinstance(args, tuple):
        raise UnsafeCheckpointError("tensor subclass rebuild with an unexpected function or type")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, "latin1")``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


_NUMERIC_DTYPE = re.compile(r"^[<>=|]?(b1|[iu][1248]|f[248]|c(8|16)|\?)$")


class _NumpyDType:
    """Stand-in for ``numpy.dtype``: numeric dtypes only; the byte order comes from its state."""

    def __init__(self, name, align=False, copy=False):
        if not isinstance(name, str) or not _NUMERIC_DTYPE.match(name):
            raise UnsafeCheckpointError(f"numpy.dtype({name!r}) is not a plain numeric dtype")
        self.name = name
        self.byteorder = "="

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "=", "|"):
            self.byteorder = state[1]

    def resolve(self) -> np.dtype:
        dtype = np.dtype(self.name)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise UnsafeCheckpointError("numpy scalar with an unsupported dtype or payload")
    resolved = dtype.resolve()
    if len(data) != resolved.itemsize:
        raise CheckpointError("numpy scalar payload has the wrong size")
    return np.frombuffer(data, dtype=resolved)[0].astype(resolved.newbyteorder("="))


class _NumpyArrayBuilder:
    """Stand-in for ``numpy.core.multiarray._reconstruct``; filled by the pickle's BUILD step."""

    def __init__(self, cls=None, shape=None, typecode=None):
        if getattr(cls, "target", None) is not _NumpyNDArrayType:
            raise UnsafeCheckpointError("numpy array reconstruction of an unexpected class")
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise CheckpointError("malformed numpy array state")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _NumpyDType) or not isinstance(raw, bytes):
            raise UnsafeCheckpointError("numpy array with a non-numeric dtype")
        shape = _as_index_tuple(shape, "numpy shape")
        resolved = dtype.resolve()
        if len(raw) != math.prod(shape) * resolved.itemsize:
            raise CheckpointError("numpy array payload has the wrong size")
        array = np.frombuffer(raw, dtype=resolved).reshape(shape, order="F" if is_fortran else "C")
        self.array = np.array(array, dtype=resolved.newbyteorder("="))


class _NumpyNDArrayType:
    """Stand-in for ``numpy.ndarray`` (only used as a tag)."""


def _torch_size(*args):
    return tuple(*args)


_ALLOWED_GLOBALS: Dict[tuple, Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): _ParameterType,
    ("torch", "Size"): _torch_size,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy", "ndarray"): _NumpyNDArrayType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _NumpyArrayBuilder,
    ("numpy._core.multiarray", "_reconstruct"): _NumpyArrayBuilder,
}
_ALLOWED_GLOBALS = {key: _SafeCallable(value, ".".join(key)) for key, value in _ALLOWED_GLOBALS.items()}
for _name, _dtype in _STORAGE_DTYPES.items():
    _ALLOWED_GLOBALS[("torch", _name)] = _StorageType(_name, _dtype)
for _name, _dtype in _TORCH_DTYPES.items():
    _ALLOWED_GLOBALS[("torch", _name)] = _TorchDType(_name, _dtype)


# --------------------------------------------------------------------------------------------
# The restricted unpickler.


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only from ``_ALLOWED_GLOBALS``; storages through ``load_storage``."""

    def __init__(self, stream, load_storage, source: str):
        super().__init__(stream)
        self._load_storage = load_storage
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"{self._source}: refusing to load the global '{module}.{name}'. Only tensors, "
                "storages, OrderedDict and numeric NumPy values are allowed in a weights "
                "checkpoint; this file may contain code. Nothing was executed."
            ) from None

    def persistent_load(self, pid):
        return self._load_storage(pid)


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_opcodes(payload: bytes, start: int, source: str) -> int:
    """Walk the pickle starting at ``start`` without building anything; return where it ends.

    :mod:`pickletools` reads every length-prefixed argument (bytes, strings, longs, frames) and
    fails when fewer bytes follow than the length claims. The C unpickler would allocate the
    claimed length first, so a corrupted size field must be caught here.
    """
    stream = io.BytesIO(payload)
    stream.seek(start)
    end = None
    try:
        for count, (opcode, arg, _position) in enumerate(pickletools.genops(stream)):
            if opcode.name == "STOP":
                end = stream.tell()
                break
            # The C unpickler grows its memo table to the largest index a PUT names; a real
            # pickle numbers its memo entries 0, 1, 2, ... so an index is below the op count.
            if opcode.name in _MEMO_PUTS and not (isinstance(arg, int) and 0 <= arg <= count):
                raise CheckpointError(f"{source}: corrupted pickle (memo index {arg!r:.40} at op {count})")
    except (ValueError, EOFError, struct.error, OverflowError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{source}: corrupted or truncated pickle ({err})") from err
    if end is None:
        raise CheckpointError(f"{source}: truncated pickle (no STOP opcode)")
    return end


def _unpickle(payload: bytes, start: int, load_storage, source: str):
    """Unpickle the pickle at ``payload[start:]``; returns ``(object, end offset)``."""
    end = _check_opcodes(payload, start, source)
    stream = io.BytesIO(payload)
    stream.seek(start)
    try:
        obj = _RestrictedUnpickler(stream, load_storage, source).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, *MALFORMED) as err:
        raise CheckpointError(
            f"{source}: corrupted or truncated pickle ({type(err).__name__}: {err})"
        ) from err
    return obj, end


def _resolve(obj, memo=None):
    """Replace pending tensors / NumPy builders inside nested containers by arrays."""
    if memo is None:
        memo = {}
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _PendingTensor):
        result = _materialize(obj.storage, obj.offset, obj.size, obj.stride, obj.dtype)
    elif isinstance(obj, _NumpyArrayBuilder):
        if obj.array is None:
            raise CheckpointError("numpy array without data")
        result = obj.array
    elif isinstance(obj, (_Storage, _StorageView, _StorageType, _TorchDType, _NumpyDType)):
        raise CheckpointError(f"bare {type(obj).__name__.strip('_')} objects are not supported")
    elif isinstance(obj, dict):
        result = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        memo[id(obj)] = result
        for key, value in obj.items():
            result[_resolve(key, memo)] = _resolve(value, memo)
        if hasattr(obj, "__dict__") and isinstance(obj, collections.OrderedDict):
            result.__dict__.update(obj.__dict__)  # e.g. torch's state_dict `_metadata`
        return result
    elif isinstance(obj, list):
        result = []
        memo[id(obj)] = result
        result.extend(_resolve(v, memo) for v in obj)
        return result
    elif isinstance(obj, tuple):
        result = tuple(_resolve(v, memo) for v in obj)
    else:
        result = obj
    memo[id(obj)] = result
    return result


# --------------------------------------------------------------------------------------------
# Zip format.


def torch_zip_prefix(names) -> Optional[str]:
    """``"<name>/"`` when the zip member ``names`` are those of a ``torch.save`` archive."""
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return pickles[0][: -len("data.pkl")] if len(pickles) == 1 else None


def _storage_dtype(dtype, little: bool) -> np.dtype:
    np_dtype = np.dtype(np.uint16 if isinstance(dtype, str) and dtype == "bfloat16" else dtype)
    return np_dtype.newbyteorder("<" if little else ">")


def _load_zip(path: str, source: str):
    with open_zip(path, source) as archive:
        names = archive.namelist()
        prefix = torch_zip_prefix(names)
        if prefix is None:
            found = sum(n.endswith("/data.pkl") and n.count("/") == 1 for n in names)
            raise CheckpointError(
                f"{source}: not a PyTorch checkpoint (expected one '<name>/data.pkl' record, "
                f"found {found})"
            )
        byteorder = "little"
        if prefix + "byteorder" in names:
            raw_order = read_record(archive, prefix + "byteorder", source, max_bytes=16)
            byteorder = raw_order.decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"{source}: unknown byte order {byteorder!r}")
        storages: Dict[str, _Storage] = {}

        def load_storage(pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise CheckpointError(f"{source}: unexpected persistent id {pid!r:.200}")
            _, storage_type, key, _location, numel = pid
            if (
                not isinstance(storage_type, _StorageType)
                or not isinstance(key, str)
                or not isinstance(numel, int)
                or numel < 0
            ):
                raise CheckpointError(f"{source}: malformed storage reference {pid!r:.200}")
            if key in storages:
                return storages[key]
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointError(f"{source}: storage record {name!r} is missing")
            itemsize = _itemsize(storage_type.dtype)
            raw = read_record(archive, name, source, max_bytes=numel * itemsize)
            if len(raw) != numel * itemsize:
                raise CheckpointError(
                    f"{source}: storage {key!r} has {len(raw)} bytes, expected {numel * itemsize}; "
                    "the file is truncated or corrupted"
                )
            np_dtype = _storage_dtype(storage_type.dtype, byteorder == "little")
            data = np.frombuffer(raw, dtype=np_dtype).astype(np_dtype.newbyteorder("="))
            storages[key] = _Storage(key, storage_type.dtype, numel, data)
            return storages[key]

        payload = read_record(archive, prefix + "data.pkl", source)
        obj, _ = _unpickle(payload, 0, load_storage, source)
        return _resolve(obj)


# --------------------------------------------------------------------------------------------
# Legacy (pre-1.6) format.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _no_storages(pid):
    raise CheckpointError(f"unexpected persistent id {pid!r:.200} outside the object pickle")


def _load_legacy(path: str, source: str):
    with open(path, "rb") as f:
        data = f.read()
    magic, pos = _unpickle(data, 0, _no_storages, source)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (bad magic number)")
    protocol, pos = _unpickle(data, pos, _no_storages, source)
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{source}: unsupported legacy protocol version {protocol!r:.100}")
    sys_info, pos = _unpickle(data, pos, _no_storages, source)
    little = not isinstance(sys_info, dict) or bool(sys_info.get("little_endian", True))
    storages: Dict[str, _Storage] = {}

    def load_storage(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"{source}: unexpected persistent id {pid!r:.200}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{source}: malformed storage reference {pid!r:.200}")
        key = str(key)
        if key not in storages:
            storages[key] = _Storage(key, storage_type.dtype, numel)
        root = storages[key]
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3):
            raise CheckpointError(f"{source}: malformed storage view {view_metadata!r:.200}")
        _view_key, offset, view_size = view_metadata
        if not (isinstance(offset, int) and isinstance(view_size, int)) or offset < 0 or view_size < 0:
            raise CheckpointError(f"{source}: malformed storage view {view_metadata!r:.200}")
        return _StorageView(root, offset, view_size)

    obj, pos = _unpickle(data, pos, load_storage, source)
    keys, pos = _unpickle(data, pos, _no_storages, source)
    if not isinstance(keys, list):
        raise CheckpointError(f"{source}: malformed storage key list")
    for key in keys:
        key = str(key)
        if key not in storages:
            raise CheckpointError(f"{source}: storage {key!r:.100} is listed but never referenced")
        storage = storages[key]
        if storage.data is not None:
            raise CheckpointError(f"{source}: storage {key!r:.100} is listed twice")
        header = data[pos : pos + 8]
        if len(header) != 8:
            raise CheckpointError(f"{source}: truncated before storage {key!r:.100}")
        (numel,) = struct.unpack("<q" if little else ">q", header)
        pos += 8
        if numel != storage.numel:
            raise CheckpointError(
                f"{source}: storage {key!r:.100} has {numel} elements, expected {storage.numel}"
            )
        nbytes = numel * _itemsize(storage.dtype)
        if pos + nbytes > len(data):
            raise CheckpointError(f"{source}: storage {key!r:.100} is truncated; the file is incomplete")
        np_dtype = _storage_dtype(storage.dtype, little)
        storage.data = np.frombuffer(data, dtype=np_dtype, count=numel, offset=pos).astype(
            np_dtype.newbyteorder("=")
        )
        pos += nbytes
    return _resolve(obj)


# --------------------------------------------------------------------------------------------
# Public API.


def read_torch(path) -> Any:
    """Read a ``torch.save`` file into NumPy arrays and plain containers, safely.

    # Arguments
    path: a ``.pth`` / ``.pth.tar`` / ``.pt`` file in the zip or the legacy format.

    # Returns
    The saved object with every tensor replaced by a ``numpy.ndarray`` (bfloat16 as float32).

    # Raises
    UnsafeCheckpointError: the pickle references a global outside the allowlist (e.g.
        ``os.system``); raised before anything is called.
    CheckpointError: the file is missing, truncated, corrupted or not a PyTorch checkpoint.

    ```python
    state = read_torch("bnext_tiny_checkpoint.pth.tar")["state_dict"]
    ```
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {source}: {err}") from err
    if not head:
        raise CheckpointError(f"{source}: the file is empty")
    with reading(source, "PyTorch checkpoint"):
        if head.startswith(b"PK"):
            return _load_zip(source, source)
        if head[:1] == b"\x80":
            return _load_legacy(source, source)
    raise CheckpointError(
        f"{source}: not a PyTorch checkpoint (neither a zip archive nor a pickle; starts with {head!r})"
    )
