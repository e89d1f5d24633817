"""Zip archives from untrusted files: every record's sizes checked before it is read.

``torch.save`` archives and NumPy ``.npz`` files are zip archives. :mod:`zipfile` trusts the
sizes in the central directory; a corrupted size could make it read or inflate far more than the
file holds. :func:`read_record` first checks a record against the archive's real length (a stored
record cannot be larger than the file, a deflated one cannot expand more than deflate allows).

```python
with open_zip(path, path) as archive:
    payload = read_record(archive, "archive/data.pkl", path)
```
"""

from __future__ import annotations

import os
import zipfile
from typing import Optional

from larq_poke.checkpoints.errors import CheckpointError

__all__ = ["open_zip", "read_record", "MAX_DEFLATE_RATIO"]

#: Deflate cannot expand data more than about 1032-fold.
MAX_DEFLATE_RATIO = 1032


def open_zip(path: str, source: str) -> zipfile.ZipFile:
    """Open ``path`` as a zip archive; :class:`CheckpointError` naming ``source`` if it is not one."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise CheckpointError(
            f"{source}: not a valid zip archive ({err}); the file is truncated or corrupted"
        ) from err
    archive.larq_poke_size = os.path.getsize(path)
    return archive


def read_record(
    archive: zipfile.ZipFile, name: str, source: str, *, max_bytes: Optional[int] = None
) -> bytes:
    """The bytes of record ``name``, after checking its sizes against the archive's length.

    ``max_bytes`` is what the caller expects at most (e.g. a storage's declared size): a record
    claiming more is rejected before it is inflated.
    """
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{source}: record {name!r} is missing") from None
    total = getattr(archive, "larq_poke_size", None)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(
            f"{source}: record {name!r} uses zip compression method {info.compress_type}, "
            "which a checkpoint never uses; the file is corrupted"
        )
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{source}: record {name!r} is marked encrypted; the file is corrupted")
    if total is not None and info.header_offset + info.compress_size > total:
        raise CheckpointError(
            f"{source}: record {name!r} claims {info.compress_size} bytes at offset "
            f"{info.header_offset}, past the end of the {total}-byte file; it is truncated or corrupted"
        )
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else (
        info.compress_size * MAX_DEFLATE_RATIO + 1024
    )
    if info.file_size > limit:
        raise CheckpointError(
            f"{source}: record {name!r} claims to expand to {info.file_size} bytes from "
            f"{info.compress_size}; the file is corrupted"
        )
    if max_bytes is not None and info.file_size > max_bytes:
        raise CheckpointError(
            f"{source}: record {name!r} has {info.file_size} bytes, expected at most {max_bytes}; "
            "the file is corrupted"
        )
    return archive.read(name)
