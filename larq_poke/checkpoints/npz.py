"""Read NumPy ``.npz`` archives of named arrays, checking each header against its bytes.

``numpy.load`` allocates the array a ``.npy`` header describes before it reads the data, so a
corrupted shape could ask for terabytes. This reader parses each header itself (NumPy's own
header parser, pickles disallowed) and reads exactly the bytes that the shape and dtype need,
after checking that the record holds them.

```python
from larq_poke.checkpoints import read_npz
arrays = read_npz("pokebnn_small.npz")     # {'params/init_conv/kernel': array(...), ...}
```
"""

from __future__ import annotations

import io
import math
import os
from typing import Dict

import numpy as np

from larq_poke.checkpoints.errors import CheckpointError, reading
from larq_poke.checkpoints.zip_records import open_zip, read_record

__all__ = ["read_npz", "is_npz_names"]


def is_npz_names(names) -> bool:
    """Whether zip member ``names`` are those of an ``.npz`` (every one a ``.npy``)."""
    return bool(names) and all(n.endswith(".npy") for n in names)


def _read_npy(raw: bytes, name: str, source: str) -> np.ndarray:
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise CheckpointError(f"{source}: {name} has unsupported .npy version {version}")
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"{source}: {name} has the non-numeric dtype {dtype}")
    count = math.prod(shape)
    body = raw[stream.tell() :]
    if len(body) != count * dtype.itemsize:
        raise CheckpointError(
            f"{source}: {name} holds {len(body)} bytes but its header says {shape} {dtype} "
            f"({count * dtype.itemsize} bytes); the file is corrupted"
        )
    array = np.frombuffer(body, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_npz(path) -> Dict[str, np.ndarray]:
    """``{name: array}`` of an ``.npz`` file (``numpy.savez`` / ``savez_compressed``).

    # Raises
    CheckpointError: naming the file and the record, when the archive or a header is malformed,
        a dtype is not numeric (no pickled objects are ever loaded), or a record's bytes do not
        match its header.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise CheckpointError(f"cannot read checkpoint {source}: no such file")
    with reading(source, ".npz archive"), open_zip(source, source) as archive:
        names = archive.namelist()
        if not is_npz_names(names):
            raise CheckpointError(f"{source}: not an .npz archive (members {names[:4]!r:.200})")
        return {name[: -len(".npy")]: _read_npy(read_record(archive, name, source), name, source) for name in names}
