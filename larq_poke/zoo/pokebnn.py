"""PokeBNN (Zhang, Zhang & Lew, CVPR 2022) in the keras.applications / larq-zoo style.

| model | top-1 (ImageNet) | ACE (10^9, 224×224) | params |
|---|---|---|---|
| PokeBNN-0.5x | 65.2 % | 1.410 | 7.21 M |
| PokeBNN-0.75x | 70.5 % ("small PokeBNN", abstract) | 2.588 | 15.37 M |
| PokeBNN-1.0x | 73.4 % | 4.223 | 26.57 M |
| PokeBNN-2.0x | not published in an available source | 15.331 | 101.7 M |

Top-1 values are the published ones (paper abstract, paperswithcode); ACE and parameter counts
are computed from the official code. **No ImageNet-trained PokeBNN weights are published by its
authors**: ``weights="imagenet"`` raises an error naming the alternatives.

```python
from larq_poke.zoo import PokeBNN
model = PokeBNN(1.0)                                   # random init, 224x224, 1000 classes
model.summary()                                        # + ACE / BOPs cost table
features = PokeBNN(0.5, include_top=False, input_shape=(160, 160, 3))
model = PokeBNN(0.5, weights="checkpoint_125000")      # an official Flax training checkpoint
```
"""

from __future__ import annotations

import os

import larq as lq
import tensorflow as tf

from larq_poke.layers.pokebnn import PokeConv, PokeInit
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo.zoo_model import ZooModel, model_input

__all__ = ["PokeBNN", "MODELS", "stage_plan"]

# (number of blocks, base width) of the four stages: the ResNet-50 pattern.
_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
_STEM_CHANNELS = 64

NO_IMAGENET_WEIGHTS = (
    "No ImageNet-trained PokeBNN weights are published by its authors (google/aqt releases code "
    "and a training recipe, not checkpoints), so weights='imagenet' is not available. "
    "Alternatives: pass weights=<path> with a checkpoint you trained with the official code "
    "(flax.training.checkpoints file, or an .npz of its variables) or a Keras weights file, or "
    "train one with larq_poke's PokeBNN recipe."
)


def width_label(width_multiplier: float) -> str:
    """``0.5 -> "0.5"``, ``1 -> "1.0"``: the width as written in zoo names (``pokebnn-1.0x``)."""
    label = f"{float(width_multiplier):g}"
    return label if "." in label or "e" in label else label + ".0"


def stage_plan(width_multiplier: float):
    """The 16 blocks as ``(index, filters F, stride)``; F = int(base × width_multiplier)."""
    plan = []
    index = 0
    for stage, (blocks, base) in enumerate(_STAGES):
        filters = int(base * width_multiplier)
        for b in range(blocks):
            strides = 2 if stage > 0 and b == 0 else 1
            plan.append((index, filters, strides))
            index += 1
    return plan


def _check_width(width_multiplier: float) -> None:
    """Reject widths PokeBNN's shortcut and SE rules cannot build, naming the problem."""
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}.")
    cin = _STEM_CHANNELS
    for index, filters, _ in stage_plan(width_multiplier):
        if filters < 8:
            raise ValueError(
                f"width_multiplier={width_multiplier} gives {filters} filters in block {index}; "
                "PokeBNN's SE needs at least 8 input channels per PokeConv."
            )
        if (4 * filters) % cin:
            raise ValueError(
                f"width_multiplier={width_multiplier} is not supported: block {index}'s shortcut "
                f"would tile {cin} channels to {4 * filters}, which is not a multiple."
            )
        cin = 4 * filters


def _load_weights(model, weights) -> None:
    path = os.fspath(weights)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF"):
        try:
            model.load_weights(path)
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"{path} is a Keras weights file that does not fit {model.name}: {err}"
            ) from err
        return
    from larq_poke.converters.pokebnn_flax import load_pokebnn_flax

    load_pokebnn_flax(model, path)


def PokeBNN(
    width_multiplier: float = 1.0,
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights=None,
    name: str | None = None,
) -> tf.keras.Model:
    """Build PokeBNN with the given width multiplier.

    # Arguments
    width_multiplier: scales the stage widths 64/128/256/512 (the stem stays at 64 channels);
        0.5, 0.75, 1.0, 1.5 and 2.0 are the documented widths, others work when the
        shortcut rules allow them (ValueError otherwise).
    input_shape: (height, width, 3); default (224, 224, 3) with the top, (None, None, 3)
        without. The network downsamples 32×; at least 32×32.
    input_tensor: optional Keras tensor to build on.
    include_top: add the global mean + 8-bit dense classifier; without it the model returns
        the last feature map (2048·m channels).
    num_classes: classifier outputs (logits, no softmax).
    weights: None (random init), "imagenet" (not published: raises), or a path to a Keras
        ``.h5`` weights file, an official Flax checkpoint, or an ``.npz`` of official variables.
    """
    if weights == "imagenet":
        # Validate the arguments first so that the most specific error is raised.
        model_input(include_top=include_top, weights=weights, num_classes=num_classes,
                    input_shape=input_shape, input_tensor=input_tensor)
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
    x = PokeInit(filters=_STEM_CHANNELS, groups=32, name="init")(x)
    for index, filters, strides in stage_plan(width_multiplier):
        block_input = x
        x = PokeConv(filters, 1, name=f"resblock{index}-1")(x)
        x = PokeConv(filters, 3, strides=strides, name=f"resblock{index}-2")(x)
        x = PokeConv(
            4 * filters,
            1,
            zero_init_bn=True,
            block_strides=strides,
            name=f"resblock{index}-3",
        )([x, block_input])
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        dense = lq.layers.QuantDense(
            num_classes,
            input_quantizer=SignedActivationQuantizer(bits=8),
            kernel_quantizer=SignedWeightQuantizer(bits=8),
            kernel_initializer="lecun_normal",
            name="dense",
        )
        x = without_autograph(dense)(x)
    model = ZooModel(inputs, x, name=name or f"pokebnn-{width_label(width_multiplier)}x")
    if weights is not None:
        _load_weights(model, weights)
    return model


def _variant(width):
    def build(**kwargs):
        return PokeBNN(width, **kwargs)

    build.__doc__ = f"PokeBNN-{width_label(width)}x; keyword arguments as :func:`PokeBNN`."
    return build


#: zoo names → constructors taking PokeBNN's keyword arguments.
MODELS = {f"pokebnn-{width_label(w)}x": _variant(w) for w in (0.5, 0.75, 1.0, 1.5, 2.0)}
