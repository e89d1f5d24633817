"""The one error family of the checkpoint readers.

Every malformed, truncated or unsafe file makes a reader raise :class:`CheckpointError` (a
``ValueError``) whose message starts with the file's path and says what is wrong; a pickle that
names a global outside the allowlist raises :class:`UnsafeCheckpointError`.

```python
from larq_poke.checkpoints import CheckpointError, read_checkpoint
try:
    read_checkpoint("download.pth")
except CheckpointError as err:
    print(err)        # "download.pth: not a valid zip archive (...); the file is truncated ..."
```
"""

from __future__ import annotations

import contextlib
import struct
import tokenize
import zipfile
import zlib

__all__ = ["CheckpointError", "UnsafeCheckpointError", "reading"]


class CheckpointError(ValueError):
    """The file is not a readable checkpoint (missing, truncated, corrupted or unsupported)."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle references a global that is not on the allowlist; nothing was executed."""


# What the standard library and NumPy raise on malformed bytes. Anything else that escapes a
# reader is a bug of the reader (the fuzz test and benchmarks/fuzz_checkpoints.py look for it).
MALFORMED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,  # includes UnicodeDecodeError
    TypeError,  # e.g. unhashable map keys
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,  # e.g. an unknown zip compression method
    RecursionError,  # absurdly deep nesting
    SyntaxError,  # a .npy header that is not a Python literal
    tokenize.TokenError,  # ... that NumPy's legacy header filter cannot tokenize
)


@contextlib.contextmanager
def reading(source: str, what: str):
    """Turn any malformed-input error raised inside the block into a :class:`CheckpointError`
    naming ``source``; a ``CheckpointError`` that does not name it yet gets it as a prefix.

    ```python
    with reading(path, "Flax msgpack checkpoint"):
        state = msgpack.unpackb(data)
    ```
    """
    try:
        yield
    except CheckpointError as err:
        if source in str(err):
            raise
        raise type(err)(f"{source}: {err}") from err
    except MALFORMED as err:
        detail = str(err) or type(err).__name__
        if len(detail) > 300:
            detail = detail[:300] + "..."
        raise CheckpointError(
            f"{source}: not a readable {what} ({type(err).__name__}: {detail}); the file is "
            "truncated, corrupted or of another format"
        ) from err
