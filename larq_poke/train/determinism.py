"""Repeatable training: the same seed and data give bit-identical weights in every process.

```python
from larq_poke.train import make_deterministic
make_deterministic(seed=0)      # before building the model and its training step
```

Seeding (Python, NumPy, TensorFlow) and TensorFlow's deterministic kernels are not enough on
their own. Grappler's arithmetic optimizer rewrites the sums of gradients that meet at a tensor
with several consumers (BNext's blocks feed one tensor to six), and the rewritten sums came out
different from one call of the same training step to the next: BNext-T's gradients differed in
15 to 52 of 384 variables between identical calls, and two ``--deterministic`` runs of
``larq-poke train bnext`` ended with different weights. With that one optimizer off the same
steps agree bit for bit (``tests/test_train.py``); the other Grappler passes stay on.
"""

from __future__ import annotations

__all__ = ["make_deterministic"]


def make_deterministic(seed: int = 0) -> None:
    """Seed every random generator with ``seed``, select deterministic TensorFlow kernels and turn
    off Grappler's arithmetic optimizer for the rest of the process. Call it before the model and
    its ``tf.function``s are built."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
