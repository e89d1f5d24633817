"""Segmentation on BiNeal: :func:`BiNealFCN`, an FCN-8s head on the binary backbone (spec D9).

```python
import tensorflow as tf
from larq_poke.zoo.bineal_tasks import BiNealFCN
model = BiNealFCN(num_classes=4, input_shape=(64, 64, 3))      # logits (N, 64, 64, 4)
model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=[tf.keras.metrics.MeanIoU(4, sparse_y_pred=False)])
```
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from larq_poke.zoo.bineal_tasks.backbone import check_weights_file, output_conv, task_backbone
from larq_poke.zoo.loading import load_keras_weights
from larq_poke.zoo.zoo_model import ZooModel, check_num_classes, width_label

__all__ = ["BiNealFCN"]


def BiNealFCN(
    num_classes: int,
    width_multiplier: float = 2.0,
    *,
    input_shape=(512, 1024, 3),
    input_tensor=None,
    weights=None,
    backbone_weights=None,
    precision: str = "binary",
    name: Optional[str] = None,
    **backbone_options,
) -> tf.keras.Model:
    """FCN-8s segmentation on BiNeal (m = 2 and 512×1024 inputs by default, as the paper's).

    The backbone's ±1 stage outputs at strides 8, 16 and 32 each get an 8-bit 1×1 score conv
    (the skip scores start at zero, as in FCN); the stride-32 scores are upsampled ×2 (bilinear)
    and added to the stride-16 ones, again to the stride-8 ones, and the sum is upsampled ×8 to
    the input resolution. Output: per-pixel logits (N, H, W, num_classes); train with a
    per-pixel ``SparseCategoricalCrossentropy(from_logits=True)`` and score with
    ``tf.keras.metrics.MeanIoU(num_classes, sparse_y_pred=False)``.

    # Arguments
    num_classes: classes per pixel (background included), at least 2.
    width_multiplier, backbone_options: as :func:`larq_poke.zoo.BiNeal` (``skip_kernel``,
        ``alpha``, ``branch_bits``).
    input_shape: (H, W, 3) with H and W multiples of 32.
    weights: None or a Keras weights file of this model.
    backbone_weights: None or a Keras weights file of a BiNeal classifier of the same width and
        options (e.g. ``larq-poke train bineal``'s ``weights.h5``): the backbone starts from it,
        as the paper's (D9); the score convs keep their initialisation.
    precision: "binary" (BiNeal backbone, 8-bit score convs) or "int8": the real-valued
        counterpart (ResNet-18 backbone, float score convs) for full-int8 deployment with
        :func:`larq_poke.converters.int8.convert_int8`.
    """
    check_num_classes(num_classes, 2, counted="background included")
    check_weights_file(weights)
    inputs, (_, stride8, stride16, stride32) = task_backbone(
        precision, width_multiplier, input_shape=input_shape, input_tensor=input_tensor,
        backbone_weights=backbone_weights, **backbone_options)
    up = tf.keras.layers.UpSampling2D
    x = output_conv(stride32, num_classes, 1, precision, name="score32")
    x = up(2, interpolation="bilinear", name="up32")(x)
    x = tf.keras.layers.Add(name="fuse16")([x, output_conv(stride16, num_classes, 1, precision, name="score16", zero_init=True)])
    x = up(2, interpolation="bilinear", name="up16")(x)
    x = tf.keras.layers.Add(name="fuse8")([x, output_conv(stride8, num_classes, 1, precision, name="score8", zero_init=True)])
    x = up(8, interpolation="bilinear", name="up8")(x)
    default = f"bineal-fcn-{width_label(width_multiplier)}x" if precision == "binary" else "resnet18-fcn-int8"
    model = ZooModel(inputs, x, name=name or default)
    if weights is not None:
        load_keras_weights(model, weights)
    return model
