"""Training and scoring the matching model (:func:`larq_poke.zoo.bineal_tasks.BiNealR2D2`) on
image pairs related by known homographies (:func:`larq_poke.data.homographies.homography_pairs`).

```python
from larq_poke.data.homographies import homography_pairs
from larq_poke.data.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photos
from larq_poke.train.tasks import fit_task
from larq_poke.train.tasks.matching import (MatchingLoss, matching_accuracy, pair_dataset, pair_inputs,
                                            pair_model, to_inputs)
from larq_poke.zoo.bineal_tasks import BiNealR2D2

images1, images2, H = homography_pairs(load_photos(TRAIN_PHOTOS), 512, size=32, seed=0)
network = BiNealR2D2(0.5, input_shape=(32, 32, 3))
fit_task(pair_model(network), pair_dataset(images1, images2, H, batch_size=16), loss=MatchingLoss(),
         epochs=8, calibration_inputs=pair_inputs(images1[:32], images2[:32]))
test1, test2, test_H = homography_pairs(load_photos(HELD_OUT_PHOTOS), 64, size=32, seed=1)
d1, d2 = (network.predict(to_inputs(images))[..., :128] for images in (test1, test2))
accuracy = matching_accuracy(d1, d2, test_H, threshold=3.0)   # fraction within 3 px
```

**Siamese training.** :func:`pair_model` wraps the network in a model that takes both images of
a pair stacked on the channel axis, (N, H, W, 6), runs the network once on all 2N images and
returns both outputs of each pair stacked on the channel axis, (N, H, W, 2·(D + 2)); :class:`MatchingLoss` takes the
homographies (N, 3, 3) as ``y_true``. Stacking on channels keeps ``fit_task``'s calibration of
the 8-bit input bounds working on ordinary arrays (:func:`pair_inputs`).

**The loss** (:class:`MatchingLoss`), per pair, with H mapping image 1 to image 2 (pixel
centres at integer (x, y); points of image 1 whose image leaves image 2's frame are left out):

* **descriptor** (InfoNCE over all of image 2): points p on a grid of image 1 (``step`` px apart,
  randomly offset each batch) are matched against every pixel of image 2. The positive is image
  2's descriptor bilinearly sampled at H(p) (renormalised); the negatives are image 2's pixels
  farther than ``ignore_radius`` px from H(p) (the pixels nearer are neither positive nor
  negative, as the metric accepts them); ``−log softmax`` of the positive at temperature τ.
  This is the metric's own question (is the nearest neighbour within a few pixels?) made
  differentiable.
* **reliability** (a documented proxy for R2D2's AP-based term, which ranks descriptors over
  many pairs): a per-pixel binary cross-entropy between the reliability R and "this point's
  descriptor is matched", i.e. the positive scores above every negative (held constant), so R
  estimates the probability that the pixel's nearest neighbour is right. Applied to image 1's
  reliability at p and image 2's at H(p).
* **repeatability** (R2D2's two terms): *cosim* = 1 − mean cosine similarity, over ``patch``-px
  patches (stride patch / 2), of image 1's repeatability map and image 2's map warped into image
  1 by H (bilinear), both masked to where H lands inside image 2; *peaky* = 1 − mean of (local
  max − local mean) of each map over (patch + 1)-px windows, which asks for peaks.

Total = descriptor + reliability + cosim + peaky (each weight 1, R2D2's weighting of its terms).

**The metric** (:func:`matching_accuracy`): for the grid points p of image 1 (``step`` px apart)
whose H(p) lies inside image 2, the nearest neighbour of p's descriptor among all pixels of image 2
(largest dot product, i.e. smallest L2 distance for unit descriptors); the accuracy is the
fraction of those points whose neighbour is within ``threshold`` px of H(p), over all pairs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from larq_poke.data.homographies import project

__all__ = ["MatchingLoss", "matching_accuracy", "pair_dataset", "pair_inputs", "pair_model", "to_inputs"]


def to_inputs(images) -> np.ndarray:
    """Images in [0, 1] → the networks' input range [-1, 1] (float32)."""
    return np.asarray(images, np.float32) * 2.0 - 1.0


def pair_inputs(images1, images2) -> np.ndarray:
    """Both images of each pair, in [-1, 1], stacked on the channel axis: (N, H, W, 6)."""
    return np.concatenate([to_inputs(images1), to_inputs(images2)], axis=-1)


@tf.autograph.experimental.do_not_convert
def _images_on_batch_axis(pairs):
    return tf.concat([pairs[..., :3], pairs[..., 3:]], axis=0)


@tf.autograph.experimental.do_not_convert
def _pairs_on_channel_axis(outputs):
    half = tf.shape(outputs)[0] // 2
    return tf.concat([outputs[:half], outputs[half:]], axis=-1)


def pair_model(network: tf.keras.Model) -> tf.keras.Model:
    """A siamese model around ``network`` (shared weights): input (N, H, W, 6) from
    :func:`pair_inputs`, output the network's outputs for image 1 and image 2 stacked on the
    channel axis. The network runs once on the 2N images (both images of every pair in one
    batch: one traced graph, batch-norm statistics over both)."""
    shape = tuple(network.input_shape[1:3])
    pairs = tf.keras.Input(shape + (6,), name="pair")
    images = tf.keras.layers.Lambda(_images_on_batch_axis, name="images")(pairs)
    outputs = tf.keras.layers.Lambda(_pairs_on_channel_axis, name="outputs")(network(images))
    return tf.keras.Model(pairs, outputs, name=f"{network.name}-pairs")


def pair_dataset(images1, images2, H, *, batch_size: int = 16, seed: int = 0, shuffle: bool = True) -> tf.data.Dataset:
    """A finite dataset of ``(pair_inputs, H)`` batches for :func:`fit_task`."""
    data = tf.data.Dataset.from_tensor_slices((pair_inputs(images1, images2), np.asarray(H, np.float32)))
    if shuffle:
        data = data.shuffle(len(H), seed=seed)
    return data.batch(batch_size)


# --- TF geometry ----------------------------------------------------------------------------------
def _project(H, points):
    """(N, P, 2) points through (N, 3, 3) homographies."""
    ones = tf.ones_like(points[..., :1])
    mapped = tf.linalg.matmul(tf.concat([points, ones], -1), H, transpose_b=True)
    return mapped[..., :2] / mapped[..., 2:]


def _inside(points, height, width):
    x, y = points[..., 0], points[..., 1]
    return tf.cast((x >= 0) & (x <= width - 1.0) & (y >= 0) & (y <= height - 1.0), tf.float32)


def _bilinear(maps, points):
    """``maps`` (N, H, W, C) sampled at (N, P, 2) (x, y) points (clamped to the frame): (N, P, C)."""
    height, width = tf.shape(maps)[1], tf.shape(maps)[2]
    x = tf.clip_by_value(points[..., 0], 0.0, tf.cast(width - 1, tf.float32))
    y = tf.clip_by_value(points[..., 1], 0.0, tf.cast(height - 1, tf.float32))
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)
    flat = tf.reshape(maps, [tf.shape(maps)[0], height * width, tf.shape(maps)[3]])

    def at(yy, xx):
        return tf.gather(flat, yy * width + xx, batch_dims=1)

    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def _masked_mean(values, mask):
    return tf.reduce_sum(values * mask, -1) / tf.maximum(tf.reduce_sum(mask, -1), 1.0)


class MatchingLoss(tf.keras.losses.Loss):
    """The matching loss (module docstring): ``y_true`` the homographies (N, 3, 3) from image 1 to
    image 2, ``y_pred`` the :func:`pair_model` output (N, H, W, 2·(D + 2)).

    # Arguments
    step: grid spacing (px) of the descriptor points in image 1.
    temperature: InfoNCE temperature τ for the unit descriptors' dot products.
    ignore_radius: image-2 pixels nearer than this to the true position are not negatives.
    patch: the repeatability terms' patch size (px).
    """

    def __init__(self, *, step: int = 4, temperature: float = 0.1, ignore_radius: float = 3.0, patch: int = 8,
                 name: str = "matching_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if step < 1 or patch < 2 or temperature <= 0:
            raise ValueError(f"need step >= 1, patch >= 2 and temperature > 0 (got {step}, {patch}, {temperature}).")
        self.step, self.temperature, self.ignore_radius = int(step), float(temperature), float(ignore_radius)
        self.patch = int(patch)

    def get_config(self):
        return {**super().get_config(), "step": self.step, "temperature": self.temperature,
                "ignore_radius": self.ignore_radius, "patch": self.patch}

    @tf.autograph.experimental.do_not_convert
    def call(self, y_true, y_pred):
        terms = self.terms(y_true, y_pred)
        return terms["descriptor"] + terms["reliability"] + terms["cosim"] + terms["peaky"]

    @tf.autograph.experimental.do_not_convert
    def terms(self, y_true, y_pred) -> dict:
        """The four per-pair terms, {name: (N,)}."""
        H = tf.reshape(tf.cast(y_true, tf.float32), [-1, 3, 3])
        channels = y_pred.shape[-1] // 2
        out1, out2 = y_pred[..., :channels], y_pred[..., channels:]
        dim = channels - 2
        batch, height, width = tf.shape(y_pred)[0], tf.shape(y_pred)[1], tf.shape(y_pred)[2]
        fheight, fwidth = tf.cast(height, tf.float32), tf.cast(width, tf.float32)

        # --- descriptor: InfoNCE of grid points of image 1 against every pixel of image 2
        offset = tf.random.uniform([2], 0, self.step, dtype=tf.int32)
        xs = tf.range(offset[0], width, self.step)
        ys = tf.range(offset[1], height, self.step)
        gx, gy = tf.meshgrid(xs, ys)
        grid = tf.stack([tf.reshape(gx, [-1]), tf.reshape(gy, [-1])], -1)  # (P, 2) int (x, y)
        points = tf.tile(tf.cast(grid, tf.float32)[None], [batch, 1, 1])
        target = _project(H, points)  # (N, P, 2)
        valid = _inside(target, fheight, fwidth)
        flat1 = tf.reshape(out1, [batch, -1, channels])
        d1 = tf.gather(flat1[..., :dim], grid[:, 1] * width + grid[:, 0], axis=1)  # (N, P, D)
        flat2 = tf.reshape(out2, [batch, -1, channels])
        d2 = flat2[..., :dim]  # (N, HW, D)
        positive = tf.math.l2_normalize(_bilinear(out2[..., :dim], target), -1)
        pos_logit = tf.reduce_sum(d1 * positive, -1) / self.temperature  # (N, P)
        logits = tf.linalg.matmul(d1, d2, transpose_b=True) / self.temperature  # (N, P, HW)
        px, py = tf.meshgrid(tf.range(width), tf.range(height))
        pixels = tf.cast(tf.stack([tf.reshape(px, [-1]), tf.reshape(py, [-1])], -1), tf.float32)  # (HW, 2)
        distance = tf.norm(target[:, :, None, :] - pixels[None, None], axis=-1)  # (N, P, HW)
        negatives = tf.where(distance > self.ignore_radius, logits, tf.fill(tf.shape(logits), -1e9))
        all_logits = tf.concat([pos_logit[..., None], negatives], -1)
        log_q = pos_logit - tf.reduce_logsumexp(all_logits, -1)  # (N, P)
        descriptor = _masked_mean(-log_q, valid)

        # --- reliability: the probability that the pixel's descriptor is matched (its nearest
        # neighbour in image 2 is within ignore_radius), fitted by binary cross-entropy
        matched = tf.stop_gradient(tf.cast(pos_logit >= tf.reduce_max(negatives, -1), tf.float32))
        r1 = tf.gather(flat1[..., dim], grid[:, 1] * width + grid[:, 0], axis=1)
        r2 = _bilinear(out2[..., dim:dim + 1], target)[..., 0]
        bce = lambda r: -(matched * tf.math.log(r + 1e-6) + (1 - matched) * tf.math.log(1 - r + 1e-6))  # noqa: E731
        reliability = _masked_mean(0.5 * (bce(r1) + bce(r2)), valid)

        # --- repeatability: cosine similarity over patches with the warped map, and peakiness
        s1 = out1[..., dim + 1:dim + 2]
        s2 = out2[..., dim + 1:dim + 2]
        everywhere = tf.tile(pixels[None], [batch, 1, 1])
        landing = _project(H, everywhere)
        mask = tf.reshape(_inside(landing, fheight, fwidth), [batch, height, width, 1])
        warped = tf.reshape(_bilinear(s2, landing), [batch, height, width, 1]) * mask
        a = s1 * mask
        pool = lambda t: tf.nn.avg_pool2d(t, self.patch, self.patch // 2, "VALID")  # noqa: E731
        cos = pool(a * warped) / tf.sqrt(pool(a * a) * pool(warped * warped) + 1e-8)
        weight = pool(mask)
        cosim = 1.0 - tf.reduce_sum(cos * weight, [1, 2, 3]) / tf.maximum(tf.reduce_sum(weight, [1, 2, 3]), 1e-6)

        def peakiness(s):
            window = self.patch + 1
            local_max = tf.nn.max_pool2d(s, window, 1, "SAME")
            local_mean = tf.nn.avg_pool2d(s, window, 1, "SAME")
            return tf.reduce_mean(local_max - local_mean, [1, 2, 3])

        peaky = 1.0 - 0.5 * (peakiness(s1) + peakiness(s2))
        return {"descriptor": descriptor, "reliability": reliability, "cosim": cosim, "peaky": peaky}


# --- the metric -----------------------------------------------------------------------------------
def matching_accuracy(desc1, desc2, H, threshold: float = 3.0, *, step: int = 4) -> float:
    """Fraction of image-1 grid points whose nearest image-2 descriptor lies within
    ``threshold`` px of the true position (module docstring).

    ``desc1``, ``desc2``: (N, h, w, D) descriptors of images 1 and 2 (or one pair (h, w, D)),
    unit-norm for an L2 nearest neighbour; ``H``: (N, 3, 3) (or (3, 3)) from image 1 to image 2.
    Grid points are ``step // 2 + k · step`` on both axes; points landing outside image 2 do not
    count. Raises ValueError when no point lands inside.
    """
    desc1, desc2 = np.asarray(desc1, np.float32), np.asarray(desc2, np.float32)
    H = np.asarray(H, np.float64)
    if desc1.ndim == 3:
        desc1, desc2, H = desc1[None], desc2[None], H[None]
    if desc1.shape != desc2.shape or desc1.ndim != 4 or H.shape != (desc1.shape[0], 3, 3):
        raise ValueError(f"need desc1, desc2 of equal shape (N, h, w, D) and H (N, 3, 3); got {desc1.shape}, "
                         f"{desc2.shape}, {H.shape}.")
    _, height, width, dim = desc1.shape
    coords = np.arange(step // 2, min(height, width), step)
    gx, gy = np.meshgrid(coords[coords < width], coords[coords < height])
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    correct = total = 0
    for d1, d2, h in zip(desc1, desc2, H):
        target = project(h, grid)
        keep = (target[:, 0] >= 0) & (target[:, 0] <= width - 1) & (target[:, 1] >= 0) & (target[:, 1] <= height - 1)
        if not keep.any():
            continue
        queries = d1[grid[keep, 1], grid[keep, 0]]  # (P, D)
        nearest = np.argmax(queries @ d2.reshape(-1, dim).T, axis=1)
        found = np.stack([nearest % width, nearest // width], -1)
        correct += int(np.sum(np.linalg.norm(found - target[keep], axis=-1) <= threshold))
        total += int(keep.sum())
    if total == 0:
        raise ValueError("no grid point of image 1 lands inside image 2.")
    return correct / total
