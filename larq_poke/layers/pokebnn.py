"""PokeBNN building blocks: DPReLU, the 4-bit SE unit, PokeConv and the PokeInit stem.

Each layer reproduces the official AQT/Flax PokeBNN code (float32 variant) operation by
operation; see ``docs/pokebnn.md`` for the spec they follow.

```python
import tensorflow as tf
from larq_poke.layers import PokeInit, PokeConv

x = tf.keras.Input((224, 224, 3))
y = PokeInit()(x)                                  # 56x56x64
r1 = y
y = PokeConv(64, 1, name="resblock0-1")(y)
y = PokeConv(64, 3, name="resblock0-2")(y)
y = PokeConv(256, 1, zero_init_bn=True, name="resblock0-3")([y, r1])  # with block shortcut
```

# References
- Zhang, Zhang, Lew: PokeBNN: A Binary Pursuit of Lightweight Accuracy (CVPR 2022).
"""

from __future__ import annotations


import larq as lq
import tensorflow as tf

from larq_poke.serialization import register_serializable

from larq_poke.keras_graph import quiet_larq_warnings, same_output_size
from larq_poke.layers.base import GraphLayer
from larq_poke.no_autograph import without_autograph
from larq_poke.layers.shortcuts import shortcut_layers
from larq_poke.quantizers import (
    PokeBinaryActivation,
    PokeBinaryWeight,
    SignedActivationQuantizer,
    SignedWeightQuantizer,
    UnsignedActivationQuantizer,
)

__all__ = ["DPReLU", "PokeSqueezeExcite", "PokeConv", "PokeInit", "batch_norm"]

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
class PokeSqueezeExcite(GraphLayer):
    r"""PokeBNN's 4-bit squeeze-and-excitation: per-channel gates for ``channels`` outputs.

    \(s = \mathrm{hsig}(W_2\, q_{u4}(\mathrm{ReLU}(W_1\, q_{s4}(\bar{x}) + b_1)) + b_2)\) with
    \(\bar{x}\) the spatial mean of the input, int4 weights, a signed int4 input for fc1, an
    unsigned int4 input for fc2, and \(\mathrm{hsig}(v) = \mathrm{clip}(v + 3, 0, 6) / 6\).
    Output shape (N, 1, 1, channels).

    # Arguments
    channels: number of gates (the PokeConv's output channels).
    reduction: fc1 has ``Cin // reduction`` filters (8 officially).
    """

    def __init__(self, channels: int, reduction: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.reduction = int(reduction)

    def build(self, input_shape):
        cin = int(tf.TensorShape(input_shape)[-1])
        hidden = cin // self.reduction
        if hidden < 1:
            raise ValueError(
                f"{self.name}: SE needs at least {self.reduction} input channels, got {cin} "
                "(the width multiplier is too small)."
            )
        self.fc1 = without_autograph(lq.layers.QuantConv2D(
            hidden,
            1,
            use_bias=True,
            input_quantizer=SignedActivationQuantizer(bits=4),
            kernel_quantizer=SignedWeightQuantizer(bits=4),
            kernel_initializer="lecun_normal",
            name="fc1",
        ))
        self.fc2 = without_autograph(lq.layers.QuantConv2D(
            self.channels,
            1,
            use_bias=True,
            input_quantizer=UnsignedActivationQuantizer(bits=4),
            kernel_quantizer=SignedWeightQuantizer(bits=4),
            kernel_initializer="lecun_normal",
            name="fc2",
        ))
        super().build(input_shape)

    def call(self, inputs):
        squeezed = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
        hidden = tf.nn.relu(self.fc1(squeezed))
        return tf.clip_by_value(self.fc2(hidden) + 3.0, 0.0, 6.0) / 6.0

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "reduction": self.reduction}


@register_serializable
class PokeConv(GraphLayer):
    r"""PokeBNN's PokeConv: binary conv with local (and optional block) shortcut, DPReLU and SE.

    For input ``x`` (and block-shortcut input ``r1`` when called with ``[x, r1]``):

    1. ``y = BN_a(BinaryConv(x))`` — inputs binarized to ±1.5 (bound 3), weights to
       ±max|w|/2 per output channel, zero padding applied after binarization;
    2. ``y += shortcut(x)`` — zero-pad / shrink channels, 3×3/2 counting average pool if strided;
    3. ``y += shortcut(r1)`` — tiled channels (only when ``r1`` is given);
    4. ``y = DPReLU(y) * SE(x)`` — the SE reads the PokeConv *input*;
    5. ``return BN_b(y)``.

    ```python
    y = PokeConv(128, 3, strides=2)(x)
    ```

    # Arguments
    filters: output channels.
    kernel_size: 1 or 3.
    strides: stride of the binary conv (the local shortcut is pooled when > 1).
    zero_init_bn: initialise BN_a's gamma to 0 (the third conv of each block).
    block_strides: stride the block shortcut ``r1`` must be pooled by (the block's stride).
    activation_bound: clipping bound of the binary activation (3.0 officially).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        zero_init_bn: bool = False,
        block_strides: int = 1,
        activation_bound: float = 3.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.zero_init_bn = bool(zero_init_bn)
        self.block_strides = int(block_strides)
        self.activation_bound = float(activation_bound)

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
            input_shape[0], (list, tuple, tf.TensorShape)
        ):
            x_shape, r1_shape = (tf.TensorShape(s) for s in input_shape)
        else:
            x_shape, r1_shape = tf.TensorShape(input_shape), None
        cin = int(x_shape[-1])
        with quiet_larq_warnings():
            self.conv = without_autograph(lq.layers.QuantConv2D(
                self.filters,
                self.kernel_size,
                strides=self.strides,
                padding="same",
                pad_values=0.0,
                use_bias=False,
                input_quantizer=PokeBinaryActivation(self.activation_bound),
                kernel_quantizer=PokeBinaryWeight(),
                kernel_initializer="lecun_normal",
                name="conv",
            ))
        self.bn = batch_norm("bn", zero_gamma=self.zero_init_bn)
        self.local_shortcut = shortcut_layers(
            cin, self.filters, "zeropad", self.strides > 1, name="local"
        )
        self.block_shortcut = None
        if r1_shape is not None:
            self.block_shortcut = shortcut_layers(
                int(r1_shape[-1]), self.filters, "tile", self.block_strides > 1, name="block"
            )
        self.dprelu = DPReLU(name="dprelu")
        self.se = PokeSqueezeExcite(self.filters, name="se")
        self.bn_split = batch_norm("bn_split")
        super().build(input_shape)

    @staticmethod
    def _apply(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            x, r1 = inputs
        else:
            x, r1 = inputs, None
        if (r1 is None) != (self.block_shortcut is None):
            raise ValueError(f"{self.name} was built {'with' if r1 is None else 'without'} a block shortcut input.")
        y = self.bn(self.conv(x), training=training)
        y = y + self._apply(self.local_shortcut, x)
        if r1 is not None:
            y = y + self._apply(self.block_shortcut, r1)
        y = self.dprelu(y) * self.se(x)
        return self.bn_split(y, training=training)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple, tf.TensorShape)
        ) else input_shape
        shape = tf.TensorShape(shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = same_output_size(shape[axis], self.strides)
        return tf.TensorShape(shape[:-1] + [self.filters])

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "zero_init_bn": self.zero_init_bn,
            "block_strides": self.block_strides,
            "activation_bound": self.activation_bound,
        }


@register_serializable
class PokeInit(GraphLayer):
    """PokeBNN's 8-bit stem: 4×4/4 VALID conv → BN → DPReLU → grouped 3×3 conv → BN → DPReLU.

    Both convs have int8 weights (per output channel) and int8 inputs with learned
    per-input-channel bounds. The grouped conv has one input channel per group and two outputs
    per group (output channel 2g + t reads input channel g); it is a depthwise conv with depth
    multiplier ``filters // groups``. The stem does not scale with the width multiplier.

    ```python
    y = PokeInit()(tf.keras.Input((224, 224, 3)))   # (None, 56, 56, 64)
    ```

    # Arguments
    filters: output channels of the grouped conv (64); the first conv has ``groups`` filters.
    groups: groups of the second conv (32, the official ``init_group``).
    """

    def __init__(self, filters: int = 64, groups: int = 32, **kwargs):
        super().__init__(**kwargs)
        if filters % groups:
            raise ValueError(f"PokeInit: filters ({filters}) must be a multiple of groups ({groups}).")
        self.filters = int(filters)
        self.groups = int(groups)

    def build(self, input_shape):
        self.conv = without_autograph(lq.layers.QuantConv2D(
            self.groups,
            4,
            strides=4,
            padding="valid",
            use_bias=False,
            input_quantizer=SignedActivationQuantizer(bits=8),
            kernel_quantizer=SignedWeightQuantizer(bits=8),
            kernel_initializer="lecun_normal",
            name="conv",
        ))
        self.bn = batch_norm("bn")
        self.dprelu = DPReLU(name="dprelu")
        self.conv_group = without_autograph(lq.layers.QuantDepthwiseConv2D(
            3,
            depth_multiplier=self.filters // self.groups,
            padding="same",
            use_bias=False,
            input_quantizer=SignedActivationQuantizer(bits=8),
            depthwise_quantizer=SignedWeightQuantizer(bits=8, channel_axes=2),
            depthwise_initializer="lecun_normal",
            name="conv_group",
        ))
        self.bn_group = batch_norm("bn_group")
        self.dprelu_group = DPReLU(name="dprelu_group")
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = self.dprelu(self.bn(self.conv(inputs), training=training))
        return self.dprelu_group(self.bn_group(self.conv_group(y), training=training))

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = shape[axis] // 4
        return tf.TensorShape(shape[:-1] + [self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}
