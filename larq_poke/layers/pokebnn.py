"""PokeBNN building blocks: DPReLU, and the 4-bit SE unit, PokeConv and the PokeInit stem as
functional units.

A unit is a function that adds named Keras layers to a functional graph (the keras.applications
style, as BNext's units): ``poke_conv(x, 64, 3, name="resblock0-2")`` adds
``resblock0-2.conv``, ``.bn``, ``.local_*``, ``.add_local``, ``.dprelu``, ``.se.*``, ``.gate``
and ``.bn_split``. Every op reproduces the official AQT/Flax PokeBNN code (float32 variant); see
``docs/pokebnn.md`` for the spec they follow. :func:`pokeconv_parts` and :func:`pokeinit_parts`
find a unit's layers in a built model again (for the official-name mapping and the deployable
rewrite).

```python
import tensorflow as tf
from larq_poke.layers.pokebnn import poke_conv, poke_init

x = tf.keras.Input((224, 224, 3))
y = poke_init(x)                                            # 56x56x64
r1 = y
y = poke_conv(y, 64, 1, name="resblock0-1")
y = poke_conv(y, 64, 3, name="resblock0-2")
y = poke_conv(y, 256, 1, zero_init_bn=True, block_input=r1, name="resblock0-3")
```

# References
- Zhang, Zhang, Lew: PokeBNN: A Binary Pursuit of Lightweight Accuracy (CVPR 2022).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.base import GraphLayer
from larq_poke.layers.shortcuts import shortcut_layers
from larq_poke.no_autograph import without_autograph
from larq_poke.serialization import register_serializable
from larq_poke.quantizers import (
    PokeBinaryActivation,
    PokeBinaryWeight,
    SignedActivationQuantizer,
    SignedWeightQuantizer,
    UnsignedActivationQuantizer,
)

__all__ = [
    "DPReLU",
    "HardSigmoid",
    "batch_norm",
    "poke_squeeze_excite",
    "poke_conv",
    "poke_init",
    "PokeConvParts",
    "PokeInitParts",
    "pokeconv_names",
    "pokeconv_parts",
    "pokeinit_parts",
    "eight_bit_classifier",
]

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(name: str, zero_gamma: bool = False) -> tf.keras.layers.BatchNormalization:
    """BatchNorm with the official Flax settings (epsilon 1e-5, momentum 0.9)."""
    return tf.keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )


@register_serializable
class DPReLU(GraphLayer):
    r"""Dynamic PReLU: a per-channel PReLU with learned input and output shifts.

    \(z = x - b_x\), \(y = (z \ge 0\ ?\ \alpha_+ : \alpha_-) \cdot z - b_y\) per channel
    (note the minus in front of \(b_y\)). Initialised to \(b_x = b_y = 0\), \(\alpha_+ = 1\),
    \(\alpha_- = 0.25\). All four parameters are trainable.

    ```python
    DPReLU()(tf.zeros((1, 8, 8, 16)))
    ```
    """

    def build(self, input_shape):
        channels = int(tf.TensorShape(input_shape)[-1])
        init = tf.keras.initializers.Constant
        self.bias_x = self.add_weight(name="bias_x", shape=(channels,), initializer="zeros")
        self.bias_y = self.add_weight(name="bias_y", shape=(channels,), initializer="zeros")
        self.pos_slope = self.add_weight(name="pos_slope", shape=(channels,), initializer=init(1.0))
        self.neg_slope = self.add_weight(name="neg_slope", shape=(channels,), initializer=init(0.25))
        super().build(input_shape)

    def call(self, inputs):
        z = inputs - self.bias_x
        slope = tf.where(z >= 0, self.pos_slope, self.neg_slope)
        return slope * z - self.bias_y


@register_serializable
class HardSigmoid(GraphLayer):
    r"""The SE's hard sigmoid \(\mathrm{clip}(v + 3, 0, 6) / 6\) (Keras 2's ``hard_sigmoid`` is
    another function)."""

    def call(self, inputs):
        return tf.clip_by_value(inputs + 3.0, 0.0, 6.0) / 6.0


def _quant_conv(*args, **kwargs):
    with quiet_larq_warnings():
        return without_autograph(lq.layers.QuantConv2D(*args, **kwargs))


def poke_squeeze_excite(x, channels: int, *, name: str, reduction: int = 8):
    r"""PokeBNN's 4-bit squeeze-and-excitation: per-channel gates (N, 1, 1, ``channels``).

    \(s = \mathrm{hsig}(W_2\, q_{u4}(\mathrm{ReLU}(W_1\, q_{s4}(\bar{x}) + b_1)) + b_2)\) with
    \(\bar{x}\) the spatial mean of ``x``, int4 weights, a signed int4 input for fc1 and an
    unsigned int4 input for fc2. Layers ``{name}.mean``, ``.fc1``, ``.relu``, ``.fc2``, ``.hsig``;
    fc1 has ``Cin // reduction`` filters (8 officially).
    """
    cin = int(x.shape[-1])
    hidden = cin // reduction
    if hidden < 1:
        raise ValueError(
            f"{name}: SE needs at least {reduction} input channels, got {cin} "
            "(the width multiplier is too small)."
        )
    def fc(filters, input_quantizer, part):
        return _quant_conv(
            filters,
            1,
            use_bias=True,
            input_quantizer=input_quantizer,
            kernel_quantizer=SignedWeightQuantizer(bits=4),
            kernel_initializer="lecun_normal",
            name=f"{name}.{part}",
        )

    s = tf.keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.mean")(x)
    s = fc(hidden, SignedActivationQuantizer(bits=4), "fc1")(s)
    s = tf.keras.layers.ReLU(name=f"{name}.relu")(s)
    s = fc(channels, UnsignedActivationQuantizer(bits=4), "fc2")(s)
    return HardSigmoid(name=f"{name}.hsig")(s)


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def poke_conv(
    x,
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    block_input=None,
    block_strides: int = 1,
    zero_init_bn: bool = False,
    activation_bound: float = 3.0,
    name: str,
):
    r"""PokeBNN's PokeConv: binary conv with local (and optional block) shortcut, DPReLU and SE.

    For input ``x`` (and ``block_input`` r1, when given):

    1. ``y = BN_a(BinaryConv(x))`` — inputs binarized to ±1.5 (bound 3), weights to
       ±max|w|/2 per output channel, zero padding applied after binarization;
    2. ``y += shortcut(x)`` — zero-pad / shrink channels, 3×3/2 counting average pool if strided;
    3. ``y += shortcut(r1)`` — tiled channels, pooled by ``block_strides`` (only with r1);
    4. ``y = DPReLU(y) * SE(x)`` — the SE reads the PokeConv *input*;
    5. ``return BN_b(y)``.

    # Arguments
    filters: output channels. kernel_size: 1 or 3. strides: of the binary conv (the local
    shortcut is pooled when > 1). zero_init_bn: BN_a's gamma starts at 0 (third conv of a block).
    activation_bound: clipping bound of the binary activation (3.0 officially).
    """
    cin = int(x.shape[-1])
    y = _quant_conv(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        pad_values=0.0,
        use_bias=False,
        input_quantizer=PokeBinaryActivation(activation_bound),
        kernel_quantizer=PokeBinaryWeight(),
        kernel_initializer="lecun_normal",
        name=f"{name}.conv",
    )(x)
    y = batch_norm(f"{name}.bn", zero_gamma=zero_init_bn)(y)
    local = _apply(shortcut_layers(cin, filters, "zeropad", strides > 1, name=f"{name}.local"), x)
    y = tf.keras.layers.Add(name=f"{name}.add_local")([y, local])
    if block_input is not None:
        r1 = shortcut_layers(int(block_input.shape[-1]), filters, "tile", block_strides > 1, name=f"{name}.block")
        y = tf.keras.layers.Add(name=f"{name}.add_block")([y, _apply(r1, block_input)])
    y = DPReLU(name=f"{name}.dprelu")(y)
    gate = poke_squeeze_excite(x, filters, name=f"{name}.se")
    y = tf.keras.layers.Multiply(name=f"{name}.gate")([y, gate])
    return batch_norm(f"{name}.bn_split")(y)


def poke_init(x, *, filters: int = 64, groups: int = 32, name: str = "init"):
    """PokeBNN's 8-bit stem: 4×4/4 VALID conv → BN → DPReLU → grouped 3×3 conv → BN → DPReLU.

    Both convs have int8 weights (per output channel) and int8 inputs with learned
    per-input-channel bounds. The grouped conv has one input channel per group and two outputs
    per group (output channel 2g + t reads input channel g): a depthwise conv with depth
    multiplier ``filters // groups``. Layers ``{name}.conv``, ``.bn``, ``.dprelu``,
    ``.conv_group``, ``.bn_group``, ``.dprelu_group``.
    """
    if filters % groups:
        raise ValueError(f"{name}: filters ({filters}) must be a multiple of groups ({groups}).")
    y = _quant_conv(
        groups,
        4,
        strides=4,
        padding="valid",
        use_bias=False,
        input_quantizer=SignedActivationQuantizer(bits=8),
        kernel_quantizer=SignedWeightQuantizer(bits=8),
        kernel_initializer="lecun_normal",
        name=f"{name}.conv",
    )(x)
    y = batch_norm(f"{name}.bn")(y)
    y = DPReLU(name=f"{name}.dprelu")(y)
    y = without_autograph(lq.layers.QuantDepthwiseConv2D(
        3,
        depth_multiplier=filters // groups,
        padding="same",
        use_bias=False,
        input_quantizer=SignedActivationQuantizer(bits=8),
        depthwise_quantizer=SignedWeightQuantizer(bits=8, channel_axes=2),
        depthwise_initializer="lecun_normal",
        name=f"{name}.conv_group",
    ))(y)
    y = batch_norm(f"{name}.bn_group")(y)
    return DPReLU(name=f"{name}.dprelu_group")(y)


# ------------------------------------------------------------------------------------------------
# Finding a unit's layers in a built model.


@dataclasses.dataclass
class PokeConvParts:
    """The layers of one PokeConv unit of a built model (see :func:`poke_conv`)."""

    name: str
    conv: object
    bn: object
    local_shortcut: List
    block_shortcut: Optional[List]
    dprelu: object
    se_fc1: object
    se_fc2: object
    bn_split: object

    @property
    def activation_bound(self) -> float:
        return float(self.conv.input_quantizer.bound)


@dataclasses.dataclass
class PokeInitParts:
    """The layers of the PokeInit stem of a built model (see :func:`poke_init`)."""

    name: str
    conv: object
    bn: object
    dprelu: object
    conv_group: object
    bn_group: object
    dprelu_group: object


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _shortcut(model, prefix: str) -> List:
    found = [_layer(model, f"{prefix}_{kind}") for kind in ("shrink", "zeropad", "tile", "pool")]
    return [layer for layer in found if layer is not None]


def pokeconv_names(model) -> List[str]:
    """Names of the PokeConv units of ``model``, in layer order."""
    names = []
    for layer in model.layers:
        if layer.name.endswith(".bn_split"):
            unit = layer.name[: -len(".bn_split")]
            conv = _layer(model, f"{unit}.conv")
            if conv is not None and isinstance(getattr(conv, "input_quantizer", None), PokeBinaryActivation):
                names.append(unit)
    return names


def pokeconv_parts(model, name: str) -> PokeConvParts:
    """The layers of PokeConv unit ``name`` in ``model``; ``ValueError`` if one is missing."""
    has_block = _layer(model, f"{name}.add_block") is not None
    parts = PokeConvParts(
        name=name,
        conv=_layer(model, f"{name}.conv"),
        bn=_layer(model, f"{name}.bn"),
        local_shortcut=_shortcut(model, f"{name}.local"),
        block_shortcut=_shortcut(model, f"{name}.block") if has_block else None,
        dprelu=_layer(model, f"{name}.dprelu"),
        se_fc1=_layer(model, f"{name}.se.fc1"),
        se_fc2=_layer(model, f"{name}.se.fc2"),
        bn_split=_layer(model, f"{name}.bn_split"),
    )
    missing = [f.name for f in dataclasses.fields(parts) if getattr(parts, f.name) is None and f.name != "block_shortcut"]
    if missing:
        raise ValueError(f"{model.name}: PokeConv unit {name!r} has no layer(s) {missing}.")
    return parts


def pokeinit_parts(model, name: str = "init") -> Optional[PokeInitParts]:
    """The layers of the PokeInit stem ``name`` of ``model``, or ``None`` when it has none."""
    layers = {
        part: _layer(model, f"{name}.{part}")
        for part in ("conv", "bn", "dprelu", "conv_group", "bn_group", "dprelu_group")
    }
    if any(layer is None for layer in layers.values()):
        return None
    return PokeInitParts(name=name, **layers)


def eight_bit_classifier(x, num_classes: int, *, name: str, per_channel: bool = True):
    """PokeBNN's classifier, which BiNeal shares: global mean of the map, then a dense layer with
    8-bit inputs (learned bounds: per feature, PokeBNN's; one, BiNeal's, with
    ``per_channel=False``) and 8-bit weights, giving logits. Adds ``global_pool`` and ``name``."""
    x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    dense = lq.layers.QuantDense(
        num_classes,
        input_quantizer=SignedActivationQuantizer(bits=8, per_channel=per_channel),
        kernel_quantizer=SignedWeightQuantizer(bits=8),
        kernel_initializer="lecun_normal",
        name=name,
    )
    return without_autograph(dense)(x)

