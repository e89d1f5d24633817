"""The quantization switches of the PokeBNN and BNext recipes, as Keras callbacks.

**PokeBNN.**
The official run binarizes activations from step 0, quantizes the conv weights from epoch 50 of
800 (before that the convs use their latent float weights) and sets the multi-bit activation
bounds of the stem, SE and head once, at step 7500 of about 124.8k, from the mean of the batches'
per-channel max|x| (until then the bounds are the −1 "pass through" sentinel). Scaled to a run:
weights from 50/800 of it, bounds at 7500/124800 of it.

**BNext.** The official run binarizes weights softly, clamp(w / T, -1, 1), with the temperature
T = 0.9^epoch over 512 epochs and plain sign once T < 1e-7 (epoch 153 on). Scaled to a run: at
step s of S, T = 0.9^floor(512 · s / S), so sign from 153/512 of the run.

```python
switches = PokeBNNSwitches(student, total_steps, calibration_images=first_batches)
distiller.fit(data, callbacks=[switches])
distiller.fit(data, callbacks=[BNextTemperature(student, total_steps)])
```
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from larq_poke.quantizers import PokeBinaryWeight, SignedWeightQuantizer

__all__ = ["BNextTemperature", "PokeBNNSwitches", "WEIGHT_SWITCH", "CALIBRATION_STEP", "BNEXT_EPOCHS"]

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
    bounds are model weights, so they come back with a checkpoint. The switch is a boolean
    variable the traced training step reads (:meth:`~larq_poke.quantizers.PokeBinaryWeight.set_switch`),
    so switching does not trace the step again.
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
        #: The weight switch the traced training step reads (a boolean variable, made in the
        #: model's distribution strategy when training begins; set before every step).
        self.switch = None

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _set_switch(self) -> None:
        self.switch.assign(self._step() >= self.weight_step)

    def on_train_begin(self, logs=None):
        if self.switch is None:
            with self.model.distribute_strategy.scope():
                self.switch = tf.Variable(False, trainable=False, dtype=tf.bool, name="pokebnn_weight_switch")
        self._set_switch()
        for quantizer in self.quantizers:
            quantizer.set_switch(self.switch)
        # A step traced before this callback was attached would not read the switch.
        self.model.train_function = self.model.make_train_function(force=True)

    def on_train_batch_end(self, batch, logs=None):
        self._set_switch()  # for the next step; the calibration below sees those weights too
        if self._step() == self.calibration_step and self.calibration_images is not None:
            from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

            calibrate_activation_bounds(self.student, np.asarray(self.calibration_images, np.float32))

    def on_train_end(self, logs=None):
        self.switch.assign(True)  # functions traced during fit (validation, predict) read it
        for quantizer in self.quantizers:  # a saved or converted model is always quantized
            quantizer.set_switch(None)
        self.model.train_function = self.model.test_function = self.model.predict_function = None


#: The official BNext run's length in epochs (the temperature's time scale).
BNEXT_EPOCHS = 512


class BNextTemperature(tf.keras.callbacks.Callback):
    """BNext's weight temperature, T = 0.9^floor(512 · step / total_steps), on every
    :class:`~larq_poke.layers.BNextWeightSign` of ``student``.

    One shared scalar variable, set before every step from the optimizer's step count (so a
    resumed run continues the schedule exactly); the binarizers go back to pure sign when
    training ends, so saved and converted models are binary.
    """

    def __init__(self, student, total_steps: int, decay: float = 0.9, epochs: int = BNEXT_EPOCHS):
        super().__init__()
        from larq_poke.keras_graph import walk_layers
        from larq_poke.layers.bnext import BNextWeightSign

        self.total_steps = int(total_steps)
        self.decay, self.epochs = float(decay), int(epochs)
        self.quantizers = [
            layer.kernel_quantizer for _, layer in walk_layers(student)
            if isinstance(getattr(layer, "kernel_quantizer", None), BNextWeightSign)
        ]
        #: The temperature the traced training step reads (a scalar variable, made in the model's
        #: distribution strategy when training begins; set before every step).
        self.variable = None

    def temperature(self, step: int) -> float:
        """T at optimizer step ``step``."""
        return self.decay ** math.floor(self.epochs * step / max(self.total_steps, 1))

    def on_train_begin(self, logs=None):
        if self.variable is None:
            with self.model.distribute_strategy.scope():
                self.variable = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="bnext_temperature")
        self.variable.assign(self.temperature(int(self.model.optimizer.iterations.numpy())))
        for quantizer in self.quantizers:
            quantizer.set_temperature(self.variable)
        self.model.train_function = self.model.make_train_function(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        self.variable.assign(self.temperature(int(self.model.optimizer.iterations.numpy())))

    def on_train_end(self, logs=None):
        self.variable.assign(0.0)  # pure sign for functions traced during fit (validation, predict)
        for quantizer in self.quantizers:
            quantizer.set_temperature(None)
        self.model.train_function = self.model.test_function = self.model.predict_function = None
