"""CenterNet training and scoring: targets from boxes, the loss, mAP@0.5.

```python
from larq_poke.train.tasks.detection import CenterNetLoss, centernet_targets, mean_average_precision
targets = centernet_targets(boxes, num_classes=3, output_size=(16, 16))   # (N, 16, 16, 3 + 5)
fit_task(model, tf.data.Dataset.from_tensor_slices((images, targets)).batch(16),
         loss=CenterNetLoss(num_classes=3), epochs=20)
score = mean_average_precision(decode_centernet(model.predict(test_images), 3), test_boxes, 3)
```

Boxes are ``(class, x0, y0, x1, y1)`` in input pixels with ``class`` 1-based (0 is the
background, as :func:`larq_poke.data.shapes.generate_shapes` gives them) and x1 / y1 exclusive;
detections are ``(class, score, x0, y0, x1, y1)`` with ``class`` 0-based (the heatmap channel), as
:func:`larq_poke.zoo.bineal_tasks.decode_centernet` gives them.

**Targets** (CenterNet, Zhou et al. 2019): per class a heatmap with a Gaussian peak of 1 at each
object's centre cell, σ = (2r + 1) / 6 with r the largest radius at which a box whose corners
are shifted by r still overlaps the true box with IoU ≥ 0.7 (CornerNet's three cases); the size
(w, h) and the centre's sub-cell offset, in output cells, at the centre cell; and a mask of
centre cells. Layout of the target tensor: ``[heatmap C | size 2 | offset 2 | mask 1]``.

**Loss**: the penalty-reduced pixel-wise focal loss on the heatmap (α = 2, β = 4), plus L1 on
the size (weight 0.1) and the offset (weight 1) at the centre cells, each divided by the number
of objects.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

__all__ = ["CenterNetLoss", "box_iou", "centernet_targets", "fixed_box_detections", "gaussian_radius", "mean_average_precision"]


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """The largest corner shift r keeping IoU ≥ ``min_overlap`` with an (h, w) box: the smallest
    root of CornerNet's three cases (both corners inside, both outside, one of each)."""
    roots = []
    for a, b, c in (
        (1.0, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)),
        (4.0, 2 * (height + width), (1 - min_overlap) * width * height),
        (4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height),
    ):
        roots.append((b + math.sqrt(b * b - 4 * a * c)) / 2)
    return min(roots)


def centernet_targets(boxes: Sequence[Sequence[tuple]], num_classes: int, output_size: Tuple[int, int],
                      stride: int = 4) -> np.ndarray:
    """The target tensor (N, h, w, C + 5) for per-image box lists (see the module docstring)."""
    h, w = output_size
    targets = np.zeros((len(boxes), h, w, num_classes + 5), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, image_boxes in enumerate(boxes):
        for kind, x0, y0, x1, y1 in image_boxes:
            if not 1 <= kind <= num_classes:
                raise ValueError(f"box class {kind} outside 1..{num_classes} (0 is the background); does "
                                 "num_classes match the data?")
            bw, bh = (x1 - x0) / stride, (y1 - y0) / stride
            if bw <= 0 or bh <= 0:
                raise ValueError(f"empty box {(x0, y0, x1, y1)} in image {i}")
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            col, row = min(int(cx), w - 1), min(int(cy), h - 1)
            sigma = (2 * max(0, int(gaussian_radius(bh, bw))) + 1) / 6
            peak = np.exp(-((xx - col) ** 2 + (yy - row) ** 2) / (2 * sigma * sigma))
            channel = targets[i, :, :, kind - 1]
            np.maximum(channel, peak, out=channel)
            targets[i, row, col, num_classes:] = (bw, bh, cx - col, cy - row, 1.0)
    return targets


class CenterNetLoss(tf.keras.losses.Loss):
    """Focal loss on the heatmap + 0.1 × L1 size + 1 × L1 offset (CenterNet's weights), for
    outputs (N, h, w, C + 4) and targets from :func:`centernet_targets`."""

    def __init__(self, num_classes: int, size_weight: float = 0.1, offset_weight: float = 1.0,
                 name: str = "centernet_loss", **kwargs):
        super().__init__(name=name, reduction=tf.keras.losses.Reduction.SUM, **kwargs)
        self.num_classes, self.size_weight, self.offset_weight = int(num_classes), float(size_weight), float(offset_weight)

    def call(self, y_true, y_pred):
        c = self.num_classes
        tf.debugging.assert_equal(tf.shape(y_pred)[-1], c + 4, message="outputs must have num_classes + 4 channels")
        tf.debugging.assert_equal(tf.shape(y_true)[-1], c + 5, message="targets must have num_classes + 5 channels")
        heat = tf.cast(y_true[..., :c], tf.float32)
        logits = tf.cast(y_pred[..., :c], tf.float32)
        p = tf.clip_by_value(tf.sigmoid(logits), 1e-4, 1 - 1e-4)
        positive = tf.cast(heat >= 1.0, tf.float32)
        focal = -(positive * (1 - p) ** 2 * tf.math.log(p)
                  + (1 - positive) * (1 - heat) ** 4 * p ** 2 * tf.math.log(1 - p))
        mask = tf.cast(y_true[..., c + 4:c + 5], tf.float32)
        objects = tf.maximum(tf.reduce_sum(mask), 1.0)
        size = tf.reduce_sum(mask * tf.abs(y_pred[..., c:c + 2] - y_true[..., c:c + 2]))
        offset = tf.reduce_sum(mask * tf.abs(y_pred[..., c + 2:c + 4] - y_true[..., c + 2:c + 4]))
        return (tf.reduce_sum(focal) + self.size_weight * size + self.offset_weight * offset) / objects

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "size_weight": self.size_weight,
                "offset_weight": self.offset_weight}


def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mean_average_precision(detections: Sequence[List[tuple]], ground_truth: Sequence[List[tuple]],
                           num_classes: int, iou_threshold: float = 0.5) -> float:
    """mAP at ``iou_threshold`` (PASCAL VOC's all-point interpolated AP, averaged over the classes
    that have ground truth).

    Per class, detections of all images are ranked by score; each is a true positive if its IoU
    with a not-yet-matched ground-truth box of its class in its image is ≥ the threshold (the
    best-overlapping box), else a false positive. AP is the area under the precision-recall curve
    with precision made monotonically decreasing."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    aps = []
    for c in range(num_classes):
        truths = [[box[1:] for box in image if box[0] == c + 1] for image in ground_truth]
        total = sum(len(t) for t in truths)
        if total == 0:
            continue
        ranked = sorted(((det[1], i, det[2:]) for i, image in enumerate(detections) for det in image if det[0] == c),
                        key=lambda item: -item[0])
        matched = [np.zeros(len(t), bool) for t in truths]
        hits = np.zeros(len(ranked))
        for k, (_, i, box) in enumerate(ranked):
            ious = [box_iou(box, truth) for truth in truths[i]]
            if ious:
                j = int(np.argmax(ious))
                if ious[j] >= iou_threshold and not matched[i][j]:
                    matched[i][j] = True
                    hits[k] = 1
        tp = np.cumsum(hits)
        recall = np.concatenate([[0.0], tp / total, [1.0]])
        precision = np.concatenate([[0.0], tp / np.maximum(np.arange(1, len(ranked) + 1), 1), [0.0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.nonzero(recall[1:] != recall[:-1])[0]
        aps.append(float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1])))
    if not aps:
        raise ValueError("no ground-truth boxes of any class: mAP is undefined")
    return float(np.mean(aps))


def fixed_box_detections(train_boxes: Sequence[List[tuple]], count: int, image_size: Tuple[int, int],
                         num_classes: int) -> List[List[tuple]]:
    """The trivial detector a model must beat: for every one of ``count`` images and every class,
    the class's mean training box (width, height) centred in the image, score 1."""
    height, width = image_size
    guesses = []
    for kind in range(1, num_classes + 1):
        sizes = np.array([(b[3] - b[1], b[4] - b[2]) for image in train_boxes for b in image if b[0] == kind])
        if sizes.size == 0:
            continue
        w, h = sizes.mean(0)
        guesses.append((kind - 1, 1.0, width / 2 - w / 2, height / 2 - h / 2, width / 2 + w / 2, height / 2 + h / 2))
    return [list(guesses) for _ in range(count)]

