"""BiNeal (Nie et al., DJI, arXiv 2202.03716) in the keras.applications / larq-zoo style.

"Binary weights and no real-valued activations": a ResNet-18 layout of binary blocks that take
and emit 1-bit maps, with an 8-bit stem and classifier. The authors publish no code and no
weights; this is the project's reconstruction (``../specs/bineal.md``, decisions D1–D5, stated
in :mod:`larq_poke.layers.bineal`).

| model | top-1 (ImageNet) | source |
|---|---|---|
| BiNeal-1.0x | 65.0 % | the paper's value as recorded by a third-party results registry |
| BiNeal-1.5x | 69.7 % | same registry |
| BiNeal-2.0x | not published (m = 2 is the width of the paper's dense-prediction tasks) | — |

A third-party re-implementation reached only 52.5 % (m = 1) and 59.5 % (m = 1.5). No weights are
published, so ``weights="imagenet"`` raises an error; train one with ``larq-poke train bineal``.

```python
from larq_poke.zoo import BiNeal
model = BiNeal(1.0)                                   # random init, 224x224, 1000 classes
model.summary()                                       # + ACE / BOPs cost table
small = BiNeal(0.5, input_shape=(32, 32, 3), num_classes=10)
features = BiNeal(2.0, include_top=False, input_shape=(448, 672, 3))
```
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.bineal import ALPHA_GRANULARITIES, BN_EPSILON, BN_MOMENTUM, PACKING, BiNealSign, bineal_block
from larq_poke.layers.pokebnn import eight_bit_classifier
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo.loading import load_keras_weights
from larq_poke.zoo.zoo_model import ZooModel, model_input, width_label, width_variant

__all__ = ["BiNeal", "MODELS", "NO_IMAGENET_WEIGHTS", "stage_plan"]

# (blocks, base width) of the four stages: the ResNet-18 pattern (D2).
_STAGES = ((2, 64), (2, 128), (2, 256), (2, 512))

NO_IMAGENET_WEIGHTS = (
    "No ImageNet-trained BiNeal weights are published: the DJI authors released neither code nor "
    "checkpoints, so weights='imagenet' is not available. Train one with `larq-poke train bineal` "
    "(larq_poke.train), or pass weights=<path> to a Keras weights file of this architecture."
)


def _channels(base: int, width_multiplier: float):
    """base × m, as an int when it is one up to float rounding (m = 0.1 * 15 gives 96)."""
    value = base * width_multiplier
    return round(value) if abs(value - round(value)) < 1e-6 else value


def stage_plan(width_multiplier: float):
    """The 8 blocks as ``(stage, block, filters, stride)``; filters = base × m."""
    plan = []
    for stage, (blocks, base) in enumerate(_STAGES):
        for block in range(blocks):
            filters = _channels(base, width_multiplier)
            strides = 2 if stage > 0 and block == 0 else 1
            plan.append((stage + 1, block + 1, filters, strides))
    return plan


def _check_width(width_multiplier: float) -> None:
    number = isinstance(width_multiplier, numbers.Real) and not isinstance(width_multiplier, bool)
    if not (number and math.isfinite(width_multiplier) and width_multiplier > 0):
        raise ValueError(f"width_multiplier must be a positive finite number, got {width_multiplier!r}.")
    for stage, _block, filters, _ in stage_plan(width_multiplier):
        if filters != int(filters) or int(filters) % PACKING:
            raise ValueError(
                f"width_multiplier={width_multiplier} gives {filters:g} channels in stage {stage}; "
                f"binary convs pack {PACKING} channels per word, so every width must be a multiple "
                f"of {PACKING} (m a multiple of 0.5: 0.5, 1.0, 1.5, 2.0, ...)."
            )


def _stem(x, channels: int):
    """8-bit 7×7 stride-2 conv (D3: 8-bit weights per output channel, 8-bit inputs with one
    learned bound, the int8 TFLite grid) → BN → 3×3 stride-2 max pool → BiNealSign: the first
    ±1 map."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(
            channels,
            7,
            strides=2,
            padding="same",
            use_bias=False,
            input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
            kernel_quantizer=SignedWeightQuantizer(bits=8),
            kernel_initializer="he_normal",
            name="stem.conv",
        )
    x = without_autograph(conv)(x)
    x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="stem.bn")(x)
    x = tf.keras.layers.MaxPool2D(3, 2, padding="same", name="stem.pool")(x)
    return BiNealSign(name="stem.act")(x)


def BiNeal(
    width_multiplier: float = 1.0,
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: Optional[int] = None,
    weights=None,
    skip_kernel: int = 1,
    alpha: str = "channel",
    branch_bits: Optional[int] = None,
    multiscale: bool = False,
    name: Optional[str] = None,
) -> tf.keras.Model:
    """Build BiNeal with width multiplier m (training form; deploy with
    :func:`larq_poke.converters.convert`, which folds it).

    # Arguments
    width_multiplier: m; stage widths 64m, 128m, 256m, 512m (multiples of 32: m = 0.5, 1, 1.5,
        2, ...). The paper's classifiers use m = 1 and 1.5, its dense-prediction tasks m = 2.
    input_shape: (height, width, 3); default (224, 224, 3) with the top, (None, None, 3)
        without. The network downsamples 32×: at least 32×32.
    input_tensor: optional Keras tensor to build on.
    include_top: global mean of the last ±1 map + 8-bit dense classifier (logits); without it
        the model returns the last ±1 feature map (512m channels).
    num_classes: classifier outputs (default 1000); only with ``include_top=True``.
    weights: None (random init), "imagenet" (not published: raises) or a path to a Keras
        ``.h5`` weights file of this architecture and options, e.g. the ``weights.h5`` of
        ``larq-poke train bineal`` (:func:`~larq_poke.zoo.loading.load_keras_weights`). A
        classifier's file also fills a model built with ``include_top=False`` (by layer name).
    skip_kernel: 1 (BiNeal, default) or 3 (the "BOLD"-like variant) for every block's skip conv.
    alpha: granularity of the weight term α: "channel", "pair" or "element".
    branch_bits: None (float branch add, default) or 4: the paper's INT4 add, as a learned
        fake quant of both branch outputs (D6; deployed exactly with float ops, LCE has no INT4).
    multiscale: with ``include_top=False``, return the four stage outputs (±1 maps at strides 4,
        8, 16 and 32 with 64m, 128m, 256m, 512m channels) for dense-prediction heads; the input
        height and width must then be multiples of 32.
    """
    if not include_top and num_classes is not None:
        raise ValueError(
            f"num_classes={num_classes} has no effect with include_top=False (the model returns "
            "features); leave it out or set include_top=True."
        )
    for flag, value in (("include_top", include_top), ("multiscale", multiscale)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{flag} must be True or False, got {value!r}.")
    if multiscale and include_top:
        raise ValueError("multiscale=True returns backbone features: use it with include_top=False.")
    num_classes = 1000 if num_classes is None else num_classes
    if alpha not in ALPHA_GRANULARITIES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_GRANULARITIES)}, got {alpha!r}.")
    if weights == "imagenet":
        raise ValueError(NO_IMAGENET_WEIGHTS)
    _check_width(width_multiplier)
    inputs, x = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        min_size=32,
    )
    if multiscale:
        bad = [size for size in tuple(x.shape)[1:3] if size is not None and size % 32]
        if bad:
            raise ValueError(
                f"multiscale features need an input height and width divisible by 32 (the stride of "
                f"the last stage), got an input of {tuple(x.shape)[1:3]}."
            )
    x = _stem(x, _channels(_STAGES[0][1], width_multiplier))
    features = []
    plan = stage_plan(width_multiplier)
    for index, (stage, block, filters, strides) in enumerate(plan):
        x = bineal_block(
            x, int(filters), strides, skip_kernel=skip_kernel, alpha=alpha, branch_bits=branch_bits,
            name=f"stage{stage}.block{block}",
        )
        if index + 1 == len(plan) or plan[index + 1][0] != stage:
            features.append(x)
    if multiscale:
        x = features
    if include_top:
        x = eight_bit_classifier(x, num_classes, name="classifier", per_channel=False)
    model = ZooModel(inputs, x, name=name or f"bineal-{width_label(width_multiplier)}x")
    if weights is not None:
        load_keras_weights(model, weights, allow_missing_head=not include_top)
    return model


#: zoo names → constructors taking BiNeal's keyword arguments.
MODELS = {f"bineal-{width_label(w)}x": width_variant("BiNeal", BiNeal, w) for w in (1.0, 1.5, 2.0)}
