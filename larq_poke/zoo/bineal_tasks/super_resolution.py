"""Super-resolution on BiNeal: :func:`BiNealEDSR`, a shrunk EDSR whose body is BiNeal blocks
(spec D9: "shrunk EDSR body binarized, first and last layers 8-bit").

```python
import tensorflow as tf
from larq_poke.zoo.bineal_tasks import BiNealEDSR
model = BiNealEDSR(scale=2, input_shape=(64, 64, 3))   # (N, 64, 64, 3) in [0, 1] -> (N, 128, 128, 3)
model.compile("adam", tf.keras.losses.MeanAbsoluteError())
```

Train with :func:`larq_poke.train.tasks.fit_task` and the L1 loss / PSNR / SSIM of
:mod:`larq_poke.train.tasks.super_resolution`; make pairs with :mod:`larq_poke.data.sr_pairs`.
"""

from __future__ import annotations

from typing import Optional

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.bineal import BN_EPSILON, BN_MOMENTUM, PACKING, BiNealSign, bineal_block
from larq_poke.layers.pixel_shuffle import PixelShuffle
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import FanInWeightQuantizer, SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo.bineal_tasks.backbone import check_precision, check_weights_file
from larq_poke.zoo.loading import load_keras_weights
from larq_poke.zoo.zoo_model import ZooModel, model_input, width_label

__all__ = ["BiNealEDSR", "SR_SCALES"]

#: Upscaling factors the model builds.
SR_SCALES = (2, 4)
#: Body width at m = 1 (m = 2, the paper's task width, gives EDSR-baseline's 64 channels).
BASE_WIDTH = 32


def _bn(name):
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _binary_head(x, channels: int):
    """8-bit 3×3 conv (8-bit inputs and weights) → BN → BiNealSign: BiNeal's stem at stride 1
    without a pool; its ±1 map enters the body."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(channels, 3, padding="same", use_bias=False,
                                     input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
                                     kernel_quantizer=SignedWeightQuantizer(bits=8),
                                     kernel_initializer="he_normal", name="head.conv")
    x = without_autograph(conv)(x)
    return BiNealSign(name="head.act")(_bn("head.bn")(x))


def _binary_tail(x, channels: int, name: str, use_bias: bool):
    """8-bit-weight 3×3 conv on a ±1 map (±1 are exact in int8), fan-in-normalised weights."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(channels, 3, padding="same", use_bias=use_bias,
                                     kernel_quantizer=FanInWeightQuantizer(bits=8),
                                     kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.1),
                                     name=name)
    return without_autograph(conv)(x)


def _float_block(x, filters: int, name: str):
    """The real-valued counterpart of :func:`~larq_poke.layers.bineal.bineal_block` (stride 1):
    3×3 conv → BN → ReLU → 3×3 conv → BN, plus 1×1 conv → BN; add → BN → ReLU."""
    conv = tf.keras.layers.Conv2D
    h = conv(filters, 3, padding="same", use_bias=False, name=f"{name}.conv1")(x)
    h = tf.keras.layers.ReLU(name=f"{name}.act1")(_bn(f"{name}.bn1")(h))
    h = _bn(f"{name}.bn2")(conv(filters, 3, padding="same", use_bias=False, name=f"{name}.conv2")(h))
    s = _bn(f"{name}.skip_bn")(conv(filters, 1, use_bias=False, name=f"{name}.skip")(x))
    y = tf.keras.layers.Add(name=f"{name}.add")([h, s])
    return tf.keras.layers.ReLU(name=f"{name}.act2")(_bn(f"{name}.bn3")(y))


def BiNealEDSR(
    scale: int = 2,
    width_multiplier: float = 2.0,
    *,
    blocks: int = 8,
    input_shape=(None, None, 3),
    input_tensor=None,
    weights=None,
    precision: str = "binary",
    name: Optional[str] = None,
) -> tf.keras.Model:
    """A shrunk EDSR with a BiNeal body: low-resolution RGB in [0, 1] → the ``scale``-fold
    upscaled image (N, scale·H, scale·W, 3) in the same range (not clipped).

    Layout (``precision="binary"``):

    * head: 8-bit 3×3 conv (8-bit input quantizer and weights) → BN → BiNealSign, at full
      resolution (BiNeal's stem with stride 1 and no pool);
    * body: ``blocks`` × :func:`~larq_poke.layers.bineal.bineal_block` at stride 1 with 32·m
      channels (3 binary convs each: two 3×3 main, one 1×1 skip). EDSR-baseline has 16 blocks ×
      64 channels; the default m = 2, 8 blocks keeps its width and halves its depth;
    * tail: EDSR's long skip (head features + body output, then the last conv) cannot add two
      ±1 maps and stay 1-bit, so the last layer reads their concatenation instead, written as two
      8-bit-weight 3×3 convs on ±1 maps whose outputs are added: ``tail.conv`` (with bias) on the
      body's last map and ``tail.skip`` on the head's map, 3·scale² channels each. Without this
      path the tail sees only the body's output, and every binary block remixes its input.
      Their kernels are fan-in-normalised (:class:`~larq_poke.quantizers.FanInWeightQuantizer`). Then
      :class:`~larq_poke.layers.pixel_shuffle.PixelShuffle` (``DEPTH_TO_SPACE``). ×4 is one shuffle of 4 (48 channels), not
      EDSR's two ×2 stages: those need a conv between the stages on a real-valued map, a third
      multi-bit layer where the paper keeps only the first and last at 8 bits;
    * global residual: the result is added to a **bilinear** upsampling of the input
      (``UpSampling2D``, TFLite ``RESIZE_BILINEAR``). TFLite has no bicubic resize, so the
      network also learns the step from bilinear to bicubic (about 1 dB on the held-out
      photographs) and beyond; the bicubic baseline is computed outside the model.

    Deployment (:func:`larq_poke.converters.convert`): 3 ``LceBconv2d`` per block; with
    ``int8=True`` the head and both tail convs are int8 ``CONV_2D``; the shuffle, the two adds
    and the resize stay float ops.

    ``precision="int8"``: the real-valued counterpart of the same layout for full-int8
    deployment (:func:`larq_poke.converters.int8.convert_int8`): float 3×3 head conv → BN →
    ReLU, ``blocks`` blocks of the BiNeal shape with float convs and ReLU in place of binary
    convs and BiNealSign (3×3 → BN → ReLU → 3×3 → BN, 1×1 skip → BN, add → BN → ReLU) at the
    same width 32·m, the two float 3×3 tail convs (body and head features), the same shuffle and
    bilinear residual.

    # Arguments
    scale: 2 or 4.
    width_multiplier: m; body width 32·m channels, a multiple of 32 (m = 1, 2, 3, ...).
    blocks: body blocks, at least 1.
    input_shape: (H, W, 3); H and W may be None (any size).
    input_tensor: optional Keras tensor to build on.
    weights: None or a Keras weights file of this model (no pretrained weights exist).
    precision: "binary" or "int8" (see above).
    """
    if isinstance(scale, bool) or scale not in SR_SCALES:
        raise ValueError(f"scale must be one of {SR_SCALES}, got {scale!r}.")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive integer, got {blocks!r}.")
    check_precision(precision)
    if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float)) or width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be a positive number, got {width_multiplier!r}.")
    channels = BASE_WIDTH * width_multiplier
    if channels != int(channels) or int(channels) % PACKING:
        raise ValueError(
            f"width_multiplier={width_multiplier} gives {channels:g} body channels; binary convs pack "
            f"{PACKING} channels per word, so 32·m must be a multiple of {PACKING} (m = 1, 2, 3, ...)."
        )
    check_weights_file(weights)
    if input_shape is not None and len(tuple(input_shape)) == 3 and tuple(input_shape)[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3) (RGB), got {tuple(input_shape)}.")
    inputs, x = model_input(input_shape=input_shape, input_tensor=input_tensor, include_top=False,
                            weights=weights, min_size=1)
    channels = int(channels)
    outputs = 3 * scale * scale
    image = x
    if precision == "binary":
        head = x = _binary_head(x, channels)
        for index in range(blocks):
            x = bineal_block(x, channels, 1, name=f"body.block{index + 1}")
        x = _binary_tail(x, outputs, "tail.conv", use_bias=True)
        skip = _binary_tail(head, outputs, "tail.skip", use_bias=False)
    else:
        x = tf.keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name="head.conv")(x)
        head = x = tf.keras.layers.ReLU(name="head.act")(_bn("head.bn")(x))
        for index in range(blocks):
            x = _float_block(x, channels, name=f"body.block{index + 1}")
        def small():
            return tf.keras.initializers.RandomNormal(stddev=1e-3)

        x = tf.keras.layers.Conv2D(outputs, 3, padding="same", kernel_initializer=small(), name="tail.conv")(x)
        skip = tf.keras.layers.Conv2D(outputs, 3, padding="same", use_bias=False, kernel_initializer=small(),
                                      name="tail.skip")(head)
    x = tf.keras.layers.Add(name="tail.add")([x, skip])
    x = PixelShuffle(scale, name="tail.shuffle")(x)
    upsampled = tf.keras.layers.UpSampling2D(scale, interpolation="bilinear", name="upsample")(image)
    x = tf.keras.layers.Add(name="residual")([x, upsampled])
    label = "bineal-edsr" if precision == "binary" else "edsr-int8"
    model = ZooModel(inputs, x, name=name or f"{label}-x{scale}-{width_label(width_multiplier)}x")
    if weights is not None:
        load_keras_weights(model, weights)
    return model
