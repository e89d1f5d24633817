"""The quantization switches of the PokeBNN recipe, as a Keras callback.

The official run binarizes activations from step 0, quantizes the conv weights from epoch 50 of
800 (before that the convs use their latent float weights) and sets the multi-bit activation
bounds of the stem, SE and head once, at step 7500 of about 124.8k, from the mean of the batches'
per-channel max|x| (until then the bounds are the −1 "pass through" sentinel). Scaled to a run:
weights from 50/800 of it, bounds at 7500/124800 of it.

```python
switches = PokeBNNSwitches(total_steps, calibration_images=first_batches)
distiller.fit(data, callbacks=[switches])
```
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from larq_poke.quantizers import PokeBinaryWeight, SignedWeightQuantizer

__all__ = ["PokeBNNSwitches", "WEIGHT_SWITCH", "CALIBRATION_STEP"]

WEIGHT_SWITCH = 50 / 800
CALIBRATION_STEP = 7500 / 124_800


def _weight_quantizers(model):
    from larq_poke.keras_graph import walk_layers

    for _, layer in walk_layers(model):
        for attribute in ("kernel_quantizer", "depthwise_quantizer"):
            quantizer = getattr(layer, attribute, None)
            if isinstance(quantizer, (PokeBinaryWeight, SignedWeightQuantizer)):
                yield quantizer


class PokeBNNSwitches(tf.keras.callbacks.Callback):
    """Switch the student's weight quantizers on at ``weight_fraction`` of ``total_steps`` and
    calibrate its activation bounds once at ``calibration_fraction`` (on ``calibration_images``).

    Works on the step count of the optimizer, so a resumed run switches at the same step; the
    bounds are model weights, so they come back with a checkpoint.
    """

    def __init__(
        self,
        student,
        total_steps: int,
        calibration_images=None,
        weight_fraction: float = WEIGHT_SWITCH,
        calibration_fraction: float = CALIBRATION_STEP,
    ):
        super().__init__()
        self.student = student
        self.weight_step = int(round(weight_fraction * total_steps))
        self.calibration_step = max(1, int(round(calibration_fraction * total_steps)))
        self.calibration_images = calibration_images
        self.quantizers = list(_weight_quantizers(student))

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _set_weights_active(self, active: bool) -> None:
        if all(q.active == active for q in self.quantizers):
            return
        for quantizer in self.quantizers:
            quantizer.active = active
        # The traced training step holds the old Python branch: trace it again.
        self.model.train_function = self.model.make_train_function(force=True)

    def on_train_begin(self, logs=None):
        self._set_weights_active(self._step() >= self.weight_step)

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step >= self.weight_step:
            self._set_weights_active(True)
        if step == self.calibration_step and self.calibration_images is not None:
            from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

            calibrate_activation_bounds(self.student, np.asarray(self.calibration_images, np.float32))

    def on_train_end(self, logs=None):
        for quantizer in self.quantizers:  # a saved or converted model is always quantized
            quantizer.active = True
