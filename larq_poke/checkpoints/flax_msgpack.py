"""Read ``flax.training.checkpoints`` files (msgpack) without JAX or Flax.

Flax serializes a state dict as a msgpack map whose arrays are msgpack extensions (code 1:
shape, dtype name, raw bytes; code 3: a NumPy scalar; code 2: a complex number) and whose large
arrays may be split into ``__msgpack_chunked_array__`` maps. Only numeric dtypes are accepted,
and every array's byte count is checked against its shape before it is built.

```python
from larq_poke.checkpoints import read_flax
state = read_flax("checkpoint_125000")     # {'params': {...}, 'mutable_vars': {...}, 'step': ...}
```
"""

from __future__ import annotations

import math
import os

import msgpack
import numpy as np

from larq_poke.checkpoints.errors import CheckpointError, reading

__all__ = ["read_flax", "FLAX_EXT_NDARRAY", "FLAX_EXT_NATIVE_COMPLEX", "FLAX_EXT_NPSCALAR", "FLAX_CHUNKED"]

# flax.serialization msgpack extension codes.
FLAX_EXT_NDARRAY = 1
FLAX_EXT_NATIVE_COMPLEX = 2
FLAX_EXT_NPSCALAR = 3
FLAX_CHUNKED = "__msgpack_chunked_array__"


def _numeric_dtype(name) -> np.dtype:
    if isinstance(name, bytes):
        name = name.decode("ascii")
    if not isinstance(name, str):
        raise CheckpointError(f"array dtype {name!r:.60} is not a dtype name")
    dtype = np.dtype(name)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"array dtype {name!r:.60} is not a plain numeric dtype")
    return dtype


def _shape(value) -> tuple:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    ):
        raise CheckpointError(f"malformed array shape {value!r:.100}")
    return tuple(value)


def _decode_ext(code: int, data: bytes):
    if code == FLAX_EXT_NDARRAY:
        shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
        shape, dtype = _shape(shape), _numeric_dtype(dtype_name)
        if not isinstance(buffer, bytes) or len(buffer) != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(f"array of shape {shape} and dtype {dtype} has the wrong byte count")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)
    if code == FLAX_EXT_NPSCALAR:
        dtype_name, buffer = msgpack.unpackb(data, raw=True)
        dtype = _numeric_dtype(dtype_name)
        if not isinstance(buffer, bytes) or len(buffer) != dtype.itemsize:
            raise CheckpointError(f"scalar of dtype {dtype} has the wrong byte count")
        return np.frombuffer(buffer, dtype=dtype)[0]
    if code == FLAX_EXT_NATIVE_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    raise CheckpointError(f"unknown msgpack extension type {code}")


def _unchunk(tree):
    if isinstance(tree, dict):
        if tree.get(FLAX_CHUNKED):
            chunks_map, shape = tree.get("chunks"), _shape(tree.get("shape"))
            if not isinstance(chunks_map, dict):
                raise CheckpointError("malformed chunked array (no 'chunks' map)")
            chunks = [chunks_map[str(i)] for i in range(len(chunks_map))]
            if not all(isinstance(c, np.ndarray) for c in chunks):
                raise CheckpointError("malformed chunked array (a chunk is not an array)")
            flat = np.concatenate([np.ravel(c) for c in chunks]) if chunks else np.zeros(0)
            if flat.size != math.prod(shape):
                raise CheckpointError(f"chunked array has {flat.size} values for shape {shape}")
            return flat.reshape(shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_flax(path) -> dict:
    """The nested state dict of a ``flax.training.checkpoints`` file, arrays as NumPy.

    # Raises
    CheckpointError: naming the file, when it is missing, truncated, not msgpack, or holds a
        non-numeric array or an array whose bytes do not match its shape.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {source}: {err}") from err
    with reading(source, "Flax msgpack checkpoint"):
        try:
            state = msgpack.unpackb(data, ext_hook=_decode_ext, raw=False, strict_map_key=False)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as err:
            raise CheckpointError(f"{source}: not a readable Flax msgpack checkpoint: {err}") from err
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{source}: not a readable Flax msgpack checkpoint (top level is {type(state).__name__})"
            )
        return _unchunk(state)
