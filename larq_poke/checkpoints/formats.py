"""Which format a weights file is in, from its bytes, and one call that reads any of them.

| format | file | read by |
|---|---|---|
| ``"keras_h5"`` | Keras HDF5 weights (``model.save_weights("w.h5")``) | Keras (not here) |
| ``"torch"`` | ``torch.save`` zip or legacy pickle (``.pth``, ``.pth.tar``) | :func:`read_torch` |
| ``"flax_msgpack"`` | ``flax.training.checkpoints`` file | :func:`read_flax` |
| ``"npz"`` | NumPy ``savez`` archive of named arrays | :func:`read_npz` |

```python
from larq_poke.checkpoints import detect_format, read_checkpoint
detect_format("bnext_tiny_checkpoint.pth.tar")      # 'torch'
content = read_checkpoint("checkpoint_125000")      # nested dict of NumPy arrays
```
"""

from __future__ import annotations

import os
from typing import Any, Optional

from larq_poke.checkpoints.errors import CheckpointError, reading
from larq_poke.checkpoints.flax_msgpack import read_flax
from larq_poke.checkpoints.npz import is_npz_names, read_npz
from larq_poke.checkpoints.torch_pickle import read_torch, torch_zip_prefix
from larq_poke.checkpoints.zip_records import open_zip

__all__ = ["FORMATS", "detect_format", "read_checkpoint"]

FORMATS = ("keras_h5", "torch", "flax_msgpack", "npz")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect_format(path) -> str:
    """One of :data:`FORMATS` for the file at ``path``, from its first bytes (and, for zip
    archives, its member names). :class:`CheckpointError` naming the file otherwise.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise CheckpointError(f"cannot read weights file {source}: {err}") from err
    if head.startswith(_HDF5_MAGIC):
        return "keras_h5"
    if head.startswith(b"PK"):
        with reading(source, "zip archive"), open_zip(source, source) as archive:
            names = archive.namelist()
        if torch_zip_prefix(names) is not None:
            return "torch"
        if is_npz_names(names):
            return "npz"
        raise CheckpointError(
            f"{source}: a zip archive that is neither a PyTorch checkpoint (one '<name>/data.pkl') "
            f"nor an .npz (only .npy members); members: {names[:4]!r:.200}"
        )
    # A pickle starts with PROTO (0x80) and a protocol number; a msgpack map with 1..15 entries
    # starts with 0x81..0x8f, a larger one with 0xde / 0xdf.
    if len(head) >= 2 and head[0] == 0x80 and head[1] in (2, 3, 4, 5):
        return "torch"
    if head[:1] and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return "flax_msgpack"
    raise CheckpointError(
        f"{source}: unknown weights file format (starts with {head!r}). Expected a Keras .h5 "
        "weights file, a PyTorch checkpoint (.pth / .pth.tar), a Flax msgpack checkpoint or an .npz."
    )


def read_checkpoint(path, format: Optional[str] = None) -> Any:
    """The content of a torch, Flax or ``.npz`` file as NumPy arrays in plain containers.

    ``format`` (one of :data:`FORMATS`) skips detection and reads the file as that format, so
    that a damaged file's error speaks of the format the caller expects. A Keras ``.h5`` file
    raises :class:`CheckpointError` (Keras reads those itself).
    """
    fmt = format or detect_format(path)
    readers = {"torch": read_torch, "flax_msgpack": read_flax, "npz": read_npz}
    if fmt not in readers:
        raise CheckpointError(f"{os.fspath(path)}: a {fmt} file is not read as a checkpoint (Keras reads .h5)")
    return readers[fmt](path)
