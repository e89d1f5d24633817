"""The recipes' learning-rate schedules as Keras ``LearningRateSchedule`` objects, scaled to the
length of a run (the official runs: PokeBNN 800 epochs, BNext 512).

* :class:`PokeBNNSchedule`: linear decay from the base LR to 0 at 750/800 of the run, then 0
  (optax "piecewise", no warm-up). The official base LR is 2e-5 · batch / 256.
* :class:`BNextSchedule`: timm's ``CosineLRScheduler`` stepped once per epoch: a linear warm-up from
  1e-5 over 5/512 of the run, then cosine from the peak (1e-3) towards 1e-7 over the whole run
  (``warmup_prefix``: the cosine starts after the warm-up, so the last epoch sits at 506/512).
* :func:`bineal_schedule`: BiNeal's only published recipe facts are a cosine-annealed learning rate
  and weight decay 1e-5; the rest is the project's choice: AdamW at peak 1e-3, a linear warm-up from
  0 over the first 5/512 of the run (as BNext), then cosine to 0 per step.

```python
schedule = BNextSchedule(steps_per_epoch=100, epochs=20)
optimizer = tf.keras.optimizers.AdamW(schedule, weight_decay=1e-3)
```
"""

from __future__ import annotations

import math
import numbers

import tensorflow as tf

__all__ = ["BINEAL_LR", "BINEAL_WEIGHT_DECAY", "PokeBNNSchedule", "BNextSchedule", "bineal_schedule", "check_learning_rate",
           "pokebnn_base_lr"]

#: BiNeal: weight decay 1e-5 (published, for its task recipes); peak LR 1e-3 (project choice).
BINEAL_WEIGHT_DECAY = 1e-5
BINEAL_LR = 1e-3


def check_learning_rate(lr) -> None:
    """ValueError unless ``lr`` is None (the recipe's default) or a positive finite number.

    ```python
    check_learning_rate(2e-3)   # fine; 0, -1e-3, nan and "1e-3" raise
    ```
    """
    number = isinstance(lr, numbers.Real) and not isinstance(lr, bool)
    if lr is not None and not (number and math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive number (or None for the recipe's), got {lr!r}.")


def pokebnn_base_lr(batch_size: int) -> float:
    """The official base LR 2e-5 · batch / 256 (6.4e-4 at batch 8192)."""
    return 2e-5 * batch_size / 256


class PokeBNNSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear decay to 0 at ``knee`` (750/800) of ``total_steps``, then 0."""

    def __init__(self, base_lr: float, total_steps: int, knee: float = 750 / 800):
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}.")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.knee = float(knee)

    def __call__(self, step):
        end = self.knee * self.total_steps
        fraction = tf.cast(step, tf.float32) / end
        return self.base_lr * tf.maximum(1.0 - fraction, 0.0)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "knee": self.knee}


class BNextSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """timm's per-epoch cosine with warm-up, for a run of ``epochs`` epochs of ``steps_per_epoch``."""

    def __init__(
        self,
        steps_per_epoch: int,
        epochs: int,
        peak_lr: float = 1e-3,
        warmup_lr: float = 1e-5,
        min_lr: float = 1e-7,
        warmup_fraction: float = 5 / 512,
    ):
        if steps_per_epoch < 1 or epochs < 1:
            raise ValueError(f"steps_per_epoch and epochs must be positive, got {steps_per_epoch}, {epochs}.")
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.peak_lr, self.warmup_lr, self.min_lr = float(peak_lr), float(warmup_lr), float(min_lr)
        self.warmup_fraction = float(warmup_fraction)

    @property
    def warmup_epochs(self) -> float:
        return self.warmup_fraction * self.epochs

    def lr_at_epoch(self, epoch):
        """The LR of (integer) ``epoch``, as timm computes it."""
        epoch = tf.cast(epoch, tf.float32)
        warmup = self.warmup_epochs
        if warmup > 0:
            rising = self.warmup_lr + epoch * (self.peak_lr - self.warmup_lr) / warmup
        else:
            rising = tf.constant(self.peak_lr)
        t = epoch - warmup
        cosine = self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + tf.cos(math.pi * t / self.epochs))
        return tf.where(epoch < warmup, rising, cosine)

    def __call__(self, step):
        epoch = tf.math.floordiv(tf.cast(step, tf.int64), self.steps_per_epoch)
        return self.lr_at_epoch(epoch)

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "peak_lr": self.peak_lr,
            "warmup_lr": self.warmup_lr,
            "min_lr": self.min_lr,
            "warmup_fraction": self.warmup_fraction,
        }


def bineal_schedule(total_steps: int, peak_lr: float = BINEAL_LR, warmup_fraction: float = 5 / 512):
    """Linear warm-up from 0 to ``peak_lr`` over ``warmup_fraction`` of the run, then cosine to 0
    at ``total_steps`` (Keras' ``CosineDecay`` with its warm-up)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    warmup = int(round(warmup_fraction * total_steps))
    return tf.keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak_lr, max(total_steps - warmup, 1), warmup_target=peak_lr if warmup else None,
        warmup_steps=warmup,
    )
