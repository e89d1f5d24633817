"""Check that a path is a TFLite flatbuffer before benchmarking it, and list its custom ops.

```python
data = read_tflite("model.tflite")   # bytes; FileNotFoundError / ValueError with the reason
custom_ops(data)                      # e.g. ["LceQuantize", "LceBconv2d"]
```
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Union

from larq_poke.converters.flatbuffer import LCE_OPS

__all__ = ["TFLITE_IDENTIFIER", "check_tflite", "read_tflite", "custom_ops", "LCE_OPS"]

# A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8 (after the root offset).
TFLITE_IDENTIFIER = b"TFL3"


def check_tflite(path: Union[str, Path]) -> Path:
    """Return ``path`` as a :class:`Path` if it is a TFLite flatbuffer; raise otherwise.

    # Raises
        FileNotFoundError: nothing at ``path``.
        ValueError: ``path`` is a directory, or the file lacks the ``TFL3`` identifier.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file (expected a .tflite flatbuffer)")
    with path.open("rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(
            f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at bytes 4..8); "
            "convert the model first, e.g. with `larq-poke convert`"
        )
    return path


def read_tflite(path: Union[str, Path]) -> bytes:
    """The bytes of the TFLite flatbuffer at ``path`` (checked with :func:`check_tflite`)."""
    return check_tflite(path).read_bytes()


def custom_ops(flatbuffer: bytes) -> List[str]:
    """Names of the custom op codes the model uses (``LceBconv2d`` etc.), in op-code order."""
    import tflite  # the maintained generated schema reader

    model = tflite.Model.GetRootAsModel(flatbuffer, 0)
    names = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index).CustomCode()
        if code:
            names.append(code.decode("utf-8", "replace"))
    return names
