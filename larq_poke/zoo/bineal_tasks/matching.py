"""Matching on BiNeal: :func:`BiNealR2D2`, an R2D2-style dense descriptor network (spec §3, D9:
"R2D2 — most of the network binarized; the last two output layers unchanged; each pair of
consecutive convs is treated as a BasicBlock without skip").

R2D2 (Revaud et al., 2019) keeps the full image resolution: its L2-Net-like backbone replaces
strides by growing dilation, and it predicts, per pixel, an L2-normalised descriptor, a
reliability (how well that descriptor can be matched) and a repeatability (how likely the pixel is
a repeatable keypoint).

```python
from larq_poke.zoo.bineal_tasks import BiNealR2D2
model = BiNealR2D2(1.0, input_shape=(64, 64, 3))       # output (N, 64, 64, 128 + 2)
out = model(images)                                    # images in [-1, 1]
descriptors, reliability, repeatability = out[..., :128], out[..., 128], out[..., 129]
```

Train it on image pairs related by known homographies with
:mod:`larq_poke.train.tasks.matching` (``pair_model`` + ``MatchingLoss`` + ``fit_task``).
"""

from __future__ import annotations

import math
from typing import Optional

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.bineal import BN_EPSILON, BN_MOMENTUM, PACKING, BiNealSign, bineal_conv
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo.bineal_tasks.backbone import check_precision, check_weights_file
from larq_poke.zoo.loading import load_keras_weights
from larq_poke.zoo.zoo_model import ZooModel, model_input, width_label

__all__ = ["BiNealR2D2", "r2d2_widths"]


# R2D2's Quad_L2Net with dilation instead of stride: (base width, kernel, dilation) of conv1..conv9.
# conv1 is the 8-bit first layer, conv2..conv7 the three skip-less binary blocks (pairs), conv8 and
# conv9 the two 8-bit output layers (conv9's width is the descriptor size).
_LAYOUT = ((32, 3, 1), (32, 3, 1), (64, 3, 1), (64, 3, 2), (128, 3, 2), (128, 3, 4), (128, 2, 4), (128, 2, 8),
           (None, 2, 16))

NO_PRETRAINED_WEIGHTS = (
    "No pretrained BiNeal R2D2 weights exist (the BiNeal authors published neither code nor "
    "checkpoints): pass weights=None, or a path to a Keras weights file of this architecture."
)


def r2d2_widths(width_multiplier: float, descriptor_dim: int = 128):
    """The widths of conv1..conv9: R2D2's 32, 32, 64, 64, 128, 128, 128, 128 times m, each rounded
    up to a multiple of 32 (LCE's word), then ``descriptor_dim``."""
    widths = [PACKING * max(1, math.ceil(base * width_multiplier / PACKING - 1e-9)) for base, _, _ in _LAYOUT[:-1]]
    return widths + [int(descriptor_dim)]


def _bn(name):
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _quant_conv(x, filters, kernel, dilation, *, input_bits: bool, use_bias: bool, name: str):
    """An 8-bit conv: 8-bit weights per output channel, 8-bit input (one learned bound per tensor) or none."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(
            filters, kernel, dilation_rate=dilation, padding="same", use_bias=use_bias,
            input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False) if input_bits else None,
            kernel_quantizer=SignedWeightQuantizer(bits=8),
            kernel_initializer="he_normal", name=name,
        )
    return without_autograph(conv)(x)


def _float_conv(x, filters, kernel, dilation, *, use_bias: bool, name: str):
    return tf.keras.layers.Conv2D(filters, kernel, dilation_rate=dilation, padding="same", use_bias=use_bias,
                                  kernel_initializer="he_normal", name=name)(x)


def _check(width_multiplier, descriptor_dim, precision, weights):
    check_precision(precision)
    if isinstance(width_multiplier, bool) or not (isinstance(width_multiplier, (int, float)) and width_multiplier > 0):
        raise ValueError(f"width_multiplier must be a positive number, got {width_multiplier!r}.")
    if isinstance(descriptor_dim, bool) or not isinstance(descriptor_dim, int) or descriptor_dim < 2:
        raise ValueError(f"descriptor_dim must be an integer >= 2, got {descriptor_dim!r}.")
    if weights == "imagenet":
        raise ValueError(NO_PRETRAINED_WEIGHTS)
    check_weights_file(weights)


def BiNealR2D2(
    width_multiplier: float = 1.0,
    *,
    descriptor_dim: int = 128,
    input_shape=(None, None, 3),
    input_tensor=None,
    weights=None,
    precision: str = "binary",
    name: Optional[str] = None,
) -> tf.keras.Model:
    """R2D2-style dense descriptors, reliability and repeatability on BiNeal (training form;
    deploy with :func:`larq_poke.converters.convert`, which folds it).

    **Layout** (R2D2's Quad_L2Net at full resolution; widths from :func:`r2d2_widths`, dilation
    d, SAME padding everywhere, so the output has the input's height and width):

    * ``conv1`` (3×3, 32m): the **8-bit first layer**, ``QuantConv2D`` with an 8-bit input
      quantizer (learned bounds) and 8-bit weights → BN → :class:`BiNealSign` (BiNeal's stem
      without stride or pool): the first ±1 map.
    * ``block1`` (conv2 3×3 32m, conv3 3×3 64m, d = 1), ``block2`` (3×3 64m, 3×3 128m, d = 2),
      ``block3`` (3×3 128m, 2×2 128m, d = 4): R2D2's consecutive conv pairs as **skip-less binary
      blocks**, each conv ``bineal_conv`` (±1 input and weights, +1 padding) → BN → BiNealSign,
      so every activation of the body is 1 bit.
    * ``conv8`` (2×2, 128m, d = 8) and ``conv9`` (2×2, ``descriptor_dim``, d = 16): R2D2's **last
      two output layers, not binarized**: 8-bit weights; conv8 reads the ±1 map (exact in int8)
      and has a bias instead of a BN (so conv + bias + ReLU is one int8 op), conv9 has an 8-bit
      input quantizer and a bias and gives the raw descriptor x.
    * heads, float (R2D2's): ``descriptor.l2`` = x / ‖x‖; one 1×1 conv on x² (elementwise) with
      two sigmoid outputs, reliability and repeatability (R2D2's 2-way softmax for reliability
      is a sigmoid of a logit difference, the same family).

    **Output**: one tensor (N, H, W, descriptor_dim + 2): channels ``[0, descriptor_dim)`` the
    unit-norm descriptors, channel ``descriptor_dim`` the reliability, ``descriptor_dim + 1`` the
    repeatability, both in [0, 1]. Inputs are RGB scaled to [-1, 1].

    ``precision="int8"``: the real-valued counterpart of the same layout, float convs → BN →
    ReLU where the binary model has binary convs → BN → BiNealSign, and plain float conv1, conv8
    and conv9 (deployed with :func:`larq_poke.converters.int8.convert_int8`).

    # Arguments
    width_multiplier: m > 0; widths are R2D2's times m rounded up to multiples of 32 (m = 1:
        R2D2's widths; the paper's tasks use m = 2).
    descriptor_dim: descriptor size (R2D2: 128), at least 2.
    input_shape: (H, W, 3); H and W may be None (fully convolutional).
    input_tensor: optional Keras tensor to build on.
    weights: None or a path to a Keras weights file of this architecture (no pretrained ones).
    precision: ``"binary"`` or ``"int8"``.
    name: model name (default ``bineal-r2d2-{m}x``, ``-int8`` for the counterpart).
    """
    _check(width_multiplier, descriptor_dim, precision, weights)
    inputs, x = model_input(input_shape=input_shape, input_tensor=input_tensor, include_top=False,
                            weights=weights, min_size=1)
    widths = r2d2_widths(width_multiplier, descriptor_dim)
    binary = precision == "binary"
    (w1, k1, d1), body, (w8, k8, d8), (w9, k9, d9) = (
        (widths[0],) + _LAYOUT[0][1:], [(w,) + spec[1:] for w, spec in zip(widths[1:7], _LAYOUT[1:7])],
        (widths[7],) + _LAYOUT[7][1:], (widths[8],) + _LAYOUT[8][1:])
    if binary:
        x = _quant_conv(x, w1, k1, d1, input_bits=True, use_bias=False, name="conv1")
        x = BiNealSign(name="conv1.act")(_bn("conv1.bn")(x))
    else:
        x = tf.keras.layers.ReLU(name="conv1.act")(_bn("conv1.bn")(_float_conv(x, w1, k1, d1, use_bias=False,
                                                                             name="conv1")))
    for index, (filters, kernel, dilation) in enumerate(body):
        block, part = index // 2 + 1, index % 2 + 1
        prefix = f"block{block}.conv{part}"
        if binary:
            x = bineal_conv(x, filters, kernel, dilation_rate=dilation, name=prefix)
            x = BiNealSign(name=f"block{block}.sign{part}")(_bn(f"block{block}.bn{part}")(x))
        else:
            x = _float_conv(x, filters, kernel, dilation, use_bias=False, name=prefix)
            x = tf.keras.layers.ReLU(name=f"block{block}.relu{part}")(_bn(f"block{block}.bn{part}")(x))
    if binary:
        x = _quant_conv(x, w8, k8, d8, input_bits=False, use_bias=True, name="conv8")
        x = tf.keras.layers.ReLU(name="conv8.relu")(x)
        x = _quant_conv(x, w9, k9, d9, input_bits=True, use_bias=True, name="conv9")
    else:
        x = tf.keras.layers.ReLU(name="conv8.relu")(_float_conv(x, w8, k8, d8, use_bias=True, name="conv8"))
        x = _float_conv(x, w9, k9, d9, use_bias=True, name="conv9")
    descriptors = tf.keras.layers.UnitNormalization(axis=-1, name="descriptor.l2")(x)
    squared = tf.keras.layers.Multiply(name="descriptor.square")([x, x])
    maps = tf.keras.layers.Conv2D(2, 1, activation="sigmoid", name="heads")(squared)
    outputs = tf.keras.layers.Concatenate(axis=-1, name="output")([descriptors, maps])
    suffix = "" if binary else "-int8"
    model = ZooModel(inputs, outputs, name=name or f"bineal-r2d2-{width_label(width_multiplier)}x{suffix}")
    if weights is not None:
        load_keras_weights(model, weights)
    return model
