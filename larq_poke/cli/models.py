"""The command line's converter log: the converter's INFO progress on stderr.

```python
with converter_log("larq-poke convert"):
    convert(model)
```
"""

from __future__ import annotations

import contextlib
import logging
import sys

__all__ = ["converter_log"]


@contextlib.contextmanager
def converter_log(prefix: str):
    """Show the converter's INFO progress on stderr as ``prefix: message`` inside the block."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    logger = logging.getLogger("larq_poke.converters")
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # TensorFlow may have configured the root logger too
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
