"""Readers for weights files, with no TensorFlow and no code execution.

Format readers only: they turn a file's bytes into NumPy arrays in plain containers and raise
:class:`CheckpointError` (naming the file and what is wrong) for anything malformed. What the
arrays mean for a model is the zoo family's business (:func:`larq_poke.zoo.load_weights`).
This package imports neither TensorFlow nor any other ``larq_poke`` module.

```python
from larq_poke.checkpoints import detect_format, read_checkpoint, read_torch
detect_format("bnext_tiny_checkpoint.pth.tar")             # 'torch'
state = read_torch("bnext_tiny_checkpoint.pth.tar")        # OrderedDict of numpy arrays
```
"""

from larq_poke.checkpoints.errors import CheckpointError, UnsafeCheckpointError
from larq_poke.checkpoints.flax_msgpack import read_flax
from larq_poke.checkpoints.formats import FORMATS, detect_format, read_checkpoint
from larq_poke.checkpoints.npz import read_npz
from larq_poke.checkpoints.torch_pickle import read_torch

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "FORMATS",
    "detect_format",
    "read_checkpoint",
    "read_flax",
    "read_npz",
    "read_torch",
]
