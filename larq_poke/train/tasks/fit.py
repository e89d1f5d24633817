"""BiNeal's training recipe for any task model: :func:`fit_task`, the documented Python entry point
for the dense-prediction models of :mod:`larq_poke.zoo.bineal_tasks`.

```python
import tensorflow as tf
from larq_poke.train.tasks import fit_task
data = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(512, seed=0).batch(16)
history = fit_task(model, data, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   epochs=6, calibration_inputs=images[:32])
```

The recipe is the ``bineal`` recipe of ``larq-poke train`` (spec §3: "cosine LR and weight decay
1e-5"): AdamW with decay 1e-5 on conv and dense kernels only, linear warm-up over 5/512 of the run
then cosine to 0 (:func:`larq_poke.train.schedules.bineal_schedule`). The 8-bit layers' activation
bounds are calibrated once, at 7500/124800 of the run, on ``calibration_inputs`` (default: the
first batch's inputs; :class:`larq_poke.train.switches.PokeBNNSwitches` with the weights 8-bit
throughout). Real-valued counterparts (``precision="int8"``)
train with the same optimizer and schedule.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from larq_poke.train.distill import build_optimizer
from larq_poke.train.schedules import BINEAL_LR, BINEAL_WEIGHT_DECAY, bineal_schedule, check_learning_rate
from larq_poke.train.switches import PokeBNNSwitches

__all__ = ["bineal_optimizer", "fit_task"]


def _is_gain_term(variable) -> bool:
    """BiNeal's α (per pair or per element: 2-D or 4-D, but a scale, not a kernel)."""
    return variable.name.split("/")[-1].split(":")[0] == "alpha"


def bineal_optimizer(model, total_steps: int, lr: Optional[float] = None):
    """AdamW (decay 1e-5) on BiNeal's schedule, decaying only ``model``'s conv and dense kernels.

    The gain terms, thresholds and batch norms are scales and offsets whose pull towards 0 would
    move the thresholds, so they are excluded (a project choice; the paper says only "weight decay
    1e-5")."""
    check_learning_rate(lr)
    optimizer = tf.keras.optimizers.AdamW(bineal_schedule(total_steps, peak_lr=BINEAL_LR if lr is None else lr),
                                          weight_decay=BINEAL_WEIGHT_DECAY)
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) < 2 or _is_gain_term(v)])
    return optimizer


def fit_task(
    model: tf.keras.Model,
    data: tf.data.Dataset,
    *,
    loss,
    epochs: int,
    lr: Optional[float] = None,
    metrics: Optional[Sequence] = None,
    calibration_inputs=None,
    validation_data=None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> tf.keras.callbacks.History:
    """Compile ``model`` with BiNeal's optimizer and schedule and train it on ``data`` (a finite
    ``tf.data.Dataset`` of ``(inputs, targets)`` batches) for ``epochs``; returns the History.

    ``loss``: a Keras loss (``SparseCategoricalCrossentropy(from_logits=True)`` for
    segmentation, ``larq_poke.train.tasks.detection.CenterNetLoss``, ...). ``lr``: the peak rate
    (default :data:`~larq_poke.train.schedules.BINEAL_LR`), a positive number.
    ``calibration_inputs``: the images on which the 8-bit layers' input bounds are calibrated
    once, at 6 % of the run (default: the inputs of ``data``'s first batch, as
    ``larq-poke train`` does).
    """
    if not isinstance(data, tf.data.Dataset):
        raise TypeError(f"data must be a tf.data.Dataset of (inputs, targets) batches, got {type(data).__name__}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    steps_per_epoch = int(data.cardinality())
    if steps_per_epoch < 1:
        raise ValueError("data must be finite with a known number of batches (no .repeat(); "
                         f"cardinality {steps_per_epoch}).")
    total_steps = steps_per_epoch * epochs
    switches = PokeBNNSwitches(model, total_steps, weight_fraction=0.0)
    if calibration_inputs is None and switches.quantizers:  # 8-bit layers: their bounds need images
        calibration_inputs = next(iter(data))[0]
    if calibration_inputs is not None:
        switches.calibration_images = np.asarray(calibration_inputs, np.float32)
    model.compile(bineal_optimizer(model, total_steps, lr), loss=loss, metrics=list(metrics or []))
    build_optimizer(model)  # one trace of the step, not two
    callbacks = [switches, *callbacks] if switches.quantizers else list(callbacks)
    history = model.fit(data, epochs=epochs, validation_data=validation_data, callbacks=callbacks, verbose=verbose)
    return history
