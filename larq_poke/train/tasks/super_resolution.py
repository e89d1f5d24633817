"""Training and scoring :func:`larq_poke.zoo.bineal_tasks.BiNealEDSR`: the L1 loss, PSNR and SSIM.

```python
import tensorflow as tf
from larq_poke.train.tasks import fit_task
from larq_poke.train.tasks.super_resolution import SR_LR, l1_loss, psnr, psnr_metric
data = tf.data.Dataset.from_tensor_slices((lr, hr)).shuffle(1024, seed=0).batch(16)
fit_task(model, data, loss=l1_loss(), epochs=6, lr=SR_LR["binary"], metrics=[psnr_metric(2)],
         calibration_inputs=lr[:32])
print(psnr(hr_test, model.predict(lr_test), border=2))        # mean dB over the images
```

Peak learning rates (:data:`SR_LR`, a project choice from a short sweep on the photographs of
:mod:`larq_poke.data.photos`, m = 1, 2 blocks, 6 epochs of 1024 16-px crops): the binary model
1e-2 (its latent binary weights and BN-normalised head need large Adam steps; its tail is
fan-in-normalised, so the tail's own steps stay small), the real-valued counterpart 1e-3 (the
BiNeal default; at 1e-2 it lands 0.7 dB lower).

Scoring choices (the usual SR protocol, except the colour space): predictions are clipped to
[0, 1] (the range of the images) and a border of ``border`` pixels (the scale factor, by
convention) is cropped before scoring, because a resize has no data beyond the image edge.
PSNR and SSIM are computed on RGB (``tf.image.psnr`` / ``tf.image.ssim`` with ``max_val=1``;
not on the luma channel as many SR tables do) and averaged over images (mean of per-image dB).
Held-out scores in the tests and benchmark are per photograph (``groups``: the photograph of
each tile of :func:`larq_poke.data.sr_pairs.photo_tiles`), as SR benchmarks score whole
images; a mean over small crops is dominated by near-flat crops at ~49 dB, where every method's
error is tiny.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from larq_poke.data.sr_pairs import bicubic_upscale

__all__ = ["SR_LR", "bicubic_psnr", "l1_loss", "psnr", "psnr_metric", "ssim"]

#: Peak learning rate for :func:`~larq_poke.train.tasks.fit_task` per ``precision``.
SR_LR = {"binary": 1e-2, "int8": 1e-3}


def l1_loss() -> tf.keras.losses.Loss:
    """EDSR's loss: the mean absolute error between the upscaled image and the target
    (``tf.keras.losses.MeanAbsoluteError``)."""
    return tf.keras.losses.MeanAbsoluteError(name="l1")


def _prepare(y_true, y_pred, border: int):
    y_true = tf.convert_to_tensor(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.convert_to_tensor(y_pred, tf.float32), 0.0, 1.0)
    if y_true.shape.rank != 4:
        raise ValueError(f"images must be batches (N, H, W, C), got shape {y_true.shape}.")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}.")
    if border:
        y_true = y_true[:, border:-border, border:-border]
        y_pred = y_pred[:, border:-border, border:-border]
    return y_true, y_pred


def psnr(y_true, y_pred, *, border: int = 0, groups=None) -> float:
    """Mean PSNR in dB over the images of a batch (prediction clipped to [0, 1], ``border``
    pixels cropped on every side; see the module docstring).

    ``groups``: one label per image (e.g. the photograph a tile comes from,
    :func:`larq_poke.data.sr_pairs.photo_tiles`): the PSNR of each group from the mean squared
    error over all its pixels, then the mean over groups (PSNR per photograph)."""
    y_true, y_pred = _prepare(y_true, y_pred, border)
    if groups is None:
        return float(np.mean(tf.image.psnr(y_true, y_pred, max_val=1.0).numpy()))
    groups = np.asarray(groups)
    if groups.shape != (int(y_true.shape[0]),):
        raise ValueError(f"groups needs one label per image ({int(y_true.shape[0])}), got shape {groups.shape}.")
    errors = np.mean(np.square(y_true.numpy() - y_pred.numpy(), dtype=np.float64), axis=(1, 2, 3))
    return float(np.mean([10 * np.log10(1.0 / np.mean(errors[groups == g])) for g in np.unique(groups)]))


def ssim(y_true, y_pred, *, border: int = 0) -> float:
    """Mean SSIM over the images of a batch (``tf.image.ssim``: 11×11 Gaussian window, σ = 1.5;
    same clipping and cropping as :func:`psnr`)."""
    y_true, y_pred = _prepare(y_true, y_pred, border)
    return float(np.mean(tf.image.ssim(y_true, y_pred, max_val=1.0).numpy()))


def psnr_metric(border: int = 0):
    """A Keras metric function (``metrics=[psnr_metric(scale)]``): per-image PSNR, as
    :func:`psnr` computes it."""

    def psnr_db(y_true, y_pred):
        y_true, y_pred = _prepare(y_true, y_pred, border)
        return tf.image.psnr(y_true, y_pred, max_val=1.0)

    return psnr_db


def bicubic_psnr(lr, hr, scale: int, groups=None) -> float:
    """The bicubic baseline's PSNR (:func:`larq_poke.data.sr_pairs.bicubic_upscale`; border =
    ``scale``; ``groups`` as :func:`psnr`)."""
    return psnr(hr, bicubic_upscale(lr, scale), border=scale, groups=groups)
