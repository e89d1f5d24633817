"""BiNeal beyond classification: dense-prediction models on the BiNeal backbone (spec D9).

So far: segmentation, :func:`BiNealFCN`, an FCN-8s head on the binary backbone.

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

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedWeightQuantizer
from larq_poke.zoo.bineal import BiNeal
from larq_poke.zoo.zoo_model import ZooModel, width_label

__all__ = ["BiNealFCN"]


def _score(x, num_classes: int, name: str):
    """8-bit 1×1 classifier conv on a ±1 map (±1 inputs are exact in int8)."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(num_classes, 1, kernel_quantizer=SignedWeightQuantizer(bits=8),
                                     kernel_initializer="zeros" if name != "score32" else "lecun_normal",
                                     name=name)
    return without_autograph(conv)(x)


def BiNealFCN(
    num_classes: int,
    width_multiplier: float = 2.0,
    *,
    input_shape=(512, 1024, 3),
    input_tensor=None,
    weights=None,
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
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (background included), got {num_classes!r}.")
    if "include_top" in backbone_options or "num_classes" in backbone_options:
        raise ValueError("BiNealFCN builds its own head: include_top / a classifier num_classes do not apply.")
    if input_shape is None or None in tuple(input_shape)[:2]:
        raise ValueError(f"BiNealFCN needs a fixed input size (multiples of 32), got {input_shape}.")
    backbone = BiNeal(width_multiplier, input_shape=input_shape, input_tensor=input_tensor, include_top=False,
                      multiscale=True, **backbone_options)
    _, stride8, stride16, stride32 = backbone.outputs
    up = tf.keras.layers.UpSampling2D
    x = _score(stride32, num_classes, "score32")
    x = up(2, interpolation="bilinear", name="up32")(x)
    x = tf.keras.layers.Add(name="fuse16")([x, _score(stride16, num_classes, "score16")])
    x = up(2, interpolation="bilinear", name="up16")(x)
    x = tf.keras.layers.Add(name="fuse8")([x, _score(stride8, num_classes, "score8")])
    x = up(8, interpolation="bilinear", name="up8")(x)
    model = ZooModel(backbone.inputs, x, name=name or f"bineal-fcn-{width_label(width_multiplier)}x")
    if weights is not None:
        model.load_weights(weights)
    return model
