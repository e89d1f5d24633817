"""The backbones and output convs the dense-prediction models share: BiNeal's four ±1 stage maps
(``precision="binary"``) or the real-valued ResNet-18's (``precision="int8"``, the 8-bit
counterpart), and the 8-bit output conv on a ±1 map.

```python
from larq_poke.zoo.bineal_tasks.backbone import task_backbone
inputs, (s4, s8, s16, s32) = task_backbone("binary", 2.0, input_shape=(448, 672, 3))
```
"""

from __future__ import annotations

import os

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedWeightQuantizer
from larq_poke.zoo.bineal import BiNeal
from larq_poke.zoo.loading import existing_weights_file
from larq_poke.zoo.references import ResNet18

__all__ = ["BACKBONE_OPTIONS", "PRECISIONS", "check_precision", "check_weights_file", "output_conv", "task_backbone"]

#: "binary": BiNeal blocks with 8-bit first and last layers; "int8": the real-valued counterpart
#: of the same layout, deployed with full-int8 post-training quantization.
PRECISIONS = ("binary", "int8")
#: The :func:`larq_poke.zoo.BiNeal` arguments a task model passes on to its binary backbone.
BACKBONE_OPTIONS = ("skip_kernel", "alpha", "branch_bits")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}.")


def check_weights_file(weights, argument: str = "weights", *, of: str = "this model") -> None:
    """``weights`` is None or a path to an existing file (no task or ImageNet weights are
    published, so "imagenet" is an error); ValueError naming ``argument`` otherwise."""
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)) or weights == "imagenet":
        raise ValueError(f"{argument} must be None or a path to a Keras weights file of {of} (none are "
                         f"published), got {weights!r}.")
    existing_weights_file(weights, f"{argument} file")


def task_backbone(precision: str, width_multiplier: float, *, input_shape, input_tensor=None, backbone_weights=None,
                  **options):
    """``(inputs, [stride-4, 8, 16, 32 maps])``: BiNeal(m) for "binary" (±1 maps; ``options`` as
    :func:`larq_poke.zoo.BiNeal`), torchvision's ResNet-18 layout (real-valued, 64–512 channels:
    the paper's 8-bit baselines are ResNet-18 models) for "int8".

    ``backbone_weights``: a Keras ``.h5`` weights file of a BiNeal classifier of the same width
    and options (e.g. the ``weights.h5`` of ``larq-poke train bineal``) to start the backbone
    from, as the paper's task models start from its ImageNet classifier (D9); binary only."""
    check_precision(precision)
    if input_shape is None or len(tuple(input_shape)) != 3 or None in tuple(input_shape)[:2]:
        raise ValueError(f"dense-prediction models need a fixed input (height, width, 3), got input_shape={input_shape}.")
    bad = [size for size in tuple(input_shape)[:2] if size % 32]
    if bad:
        raise ValueError(f"input height and width must be divisible by 32 (the backbone's stride), got "
                         f"input_shape={tuple(input_shape)}.")
    if "include_top" in options or "num_classes" in options:
        raise ValueError("task models build their own heads: include_top / a classifier num_classes do not apply.")
    unknown = sorted(set(options) - set(BACKBONE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(map(repr, unknown))}: besides its own arguments a task model "
                         f"takes only BiNeal's backbone options {', '.join(map(repr, BACKBONE_OPTIONS))}.")
    if backbone_weights is not None:
        if precision != "binary":
            raise ValueError("backbone_weights are a BiNeal classifier's: they apply to precision='binary' only.")
        check_weights_file(backbone_weights, "backbone_weights", of="a BiNeal classifier")
    if precision == "binary":
        backbone = BiNeal(width_multiplier, input_shape=input_shape, input_tensor=input_tensor, include_top=False,
                          multiscale=True, weights=backbone_weights, **options)
    else:
        if options:
            raise ValueError(f"{', '.join(options)} apply to the binary backbone only (precision='binary').")
        backbone = ResNet18(input_shape=input_shape, input_tensor=input_tensor, include_top=False, multiscale=True)
    return backbone.inputs, list(backbone.outputs)


def output_conv(x, filters: int, kernel_size: int, precision: str, *, name: str, zero_init: bool = False):
    """A task's last layer: an 8-bit conv on a ±1 map ("binary"; ±1 inputs are exact in int8) or
    a float conv ("int8" counterpart). ``zero_init``: start at zero (FCN's skip scores)."""
    initializer = "zeros" if zero_init else "lecun_normal"
    if precision == "int8":
        return tf.keras.layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer=initializer, name=name)(x)
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(filters, kernel_size, padding="same", kernel_quantizer=SignedWeightQuantizer(bits=8),
                                     kernel_initializer=initializer, name=name)
    return without_autograph(conv)(x)
