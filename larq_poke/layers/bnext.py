r"""BNext building blocks: binarizers, the binary conv, and the three unit types.

BNext (Guo et al., 2022) alternates two 3x3 binary "token mixers" — the ELM-Attention unit and the
FFN_3x3 unit — with 1x1 binary feed-forward units (FFN_1x1). All three share one binary conv
module, the *processor*:

\[ P = \mathrm{PReLU}_2(\mathrm{BN}_1(\mathrm{BinConv}(\mathrm{sign}(x + b_{move})))) \]

and one "mix-to-binary" attention: a real-valued squeeze-and-excitation (SE) on a per-channel mix
of the unit's input X and P, \( M = s \cdot X + (1 - s) \cdot P \), which rescales P:

* ELM-Attention: \( R = \mathrm{Pool}(\mathrm{PReLU}_1(x)) \),
  \( \mathrm{out} = \mathrm{BN}_2(\mathrm{SE}(M) \cdot P \cdot R) + R \);
* FFN_3x3 / FFN_1x1: \( \mathrm{out} = \mathrm{BN}_2(\mathrm{SE}(M) \cdot P) + \mathrm{Pool}(x) \).

The units are built functionally from small serializable layers (:class:`LearnableBias`,
:class:`BNextBinaryConv2D`, :class:`ScaleMix` and stock Keras layers), so that cost accounting,
``model.summary()`` and the LCE converter see every convolution. Layer names follow the official
PyTorch module paths (``feature.2.Attention.binary_conv``), which is what the checkpoint importer
relies on.

```python
import tensorflow as tf
from larq_poke.layers import bnext

x = tf.keras.Input((56, 56, 64))
y = bnext.elm_attention_unit(x, stride=2, name="feature.2.Attention")   # 28x28x64
y = bnext.ffn_1x1_unit(y, name="feature.2.FFN")                         # 28x28x64
```

**sign(0).** The official code binarizes with ``torch.sign``, which maps 0 to 0; Larq (and LCE's
bit-packed kernels) map 0 to +1. The binarizers here default to Larq's +1 (``zero_sign=1``) so that
models convert to LCE binary kernels; ``zero_sign=0`` reproduces ``torch.sign`` exactly. The two
differ only for binarizer inputs (or latent weights) that are exactly zero. Zero *padding* of the
binary 3x3 convs is applied after binarization in both modes, as in the official code.

# References
- Guo, Bethge, Meinel, Yang: Join the High Accuracy Club on ImageNet with A Binary Neural Network
  Ticket (arXiv:2211.12933, 2022); official code github.com/hpi-xnor/BNext.
"""

from __future__ import annotations

from typing import Optional

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.no_autograph import skip_autograph
from larq_poke.quantizers import Untracked
from larq_poke.serialization import register_serializable

__all__ = [
    "BNextSign",
    "BNextWeightSign",
    "LearnableBias",
    "BNextBinaryConv2D",
    "ScaleMix",
    "SymmetricMaxPool2D",
    "batch_norm",
    "prelu",
    "squeeze_excite",
    "elm_attention_unit",
    "ffn_3x3_unit",
    "ffn_1x1_unit",
    "bnext18_attention_unit",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "ACTIVATION_CLIP",
    "WEIGHT_CLIP",
    "SE_REDUCTION",
]

#: BatchNorm settings of the official code (torch defaults: eps 1e-5, momentum 0.1 -> Keras 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
#: The activation binarizer passes gradients for |x| <= 1.5 (HardSign range [-1.5, 1.5]).
ACTIVATION_CLIP = 1.5
#: Latent binary weights are kept in [-1.5, 1.5] during training.
WEIGHT_CLIP = 1.5
#: Channel reduction of the SE attention (C -> C // 8 -> C).
SE_REDUCTION = 8


def _register(cls):
    """Register ``cls`` as a Keras custom object, as ``larq_poke>Name`` and as plain ``Name``.

    The plain name is what Keras' legacy (h5) loader looks up for objects nested in a layer
    config, such as the quantizers of a binary conv; Larq registers its own quantizers that way.
    It also opts the class out of AutoGraph (no data-dependent Python control flow in ``call``),
    which makes building the large BNext models several times faster.
    """
    return register_serializable(skip_autograph(cls))


def _check_zero_sign(zero_sign) -> int:
    if zero_sign not in (0, 1):
        raise ValueError(
            f"`zero_sign` must be 1 (Larq/LCE: sign(0) = +1) or 0 (torch: sign(0) = 0), got {zero_sign!r}."
        )
    return int(zero_sign)


def _sign_ste(x, clip_value: Optional[float], zero_sign: int):
    if zero_sign == 1:
        return lq.quantizers.ste_sign(x, clip_value=clip_value)

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            if clip_value is None:
                return dy
            return tf.where(tf.abs(x) <= clip_value, dy, tf.zeros_like(dy))

        return tf.sign(x), grad

    return _call(x)


@_register
class BNextSign(lq.quantizers.Quantizer):
    r"""BNext's activation binarizer (official ``HardSign``, range [-1.5, 1.5]).

    \[ q(x) = \mathrm{sign}(x), \qquad
       \frac{\partial q}{\partial x} = 1_{|x| \le 1.5} \]

    No scaling factor. The learnable threshold shift of the official binarizer (``move``) is the
    separate :class:`LearnableBias` layer in front of the binary conv.

    ```python
    q = BNextSign()
    q(tf.constant([-0.3, 0.0, 2.0]))            # [-1, 1, 1]
    BNextSign(zero_sign=0)(tf.constant([0.0]))  # [0] as torch.sign
    ```

    # Arguments
    clip_value: gradient is passed for |x| <= clip_value (None: never clipped).
    zero_sign: value of sign(0): 1 (Larq / LCE, default) or 0 (torch, the official code).

    # References
    - Guo et al., arXiv:2211.12933 (2022).
    """

    precision = 1

    def __init__(self, clip_value: Optional[float] = ACTIVATION_CLIP, zero_sign: int = 1, **kwargs):
        self.clip_value = clip_value
        self.zero_sign = _check_zero_sign(zero_sign)
        super().__init__(**kwargs)

    def call(self, inputs):
        return _sign_ste(inputs, self.clip_value, self.zero_sign)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value, "zero_sign": self.zero_sign}


@_register
class BNextWeightSign(lq.quantizers.Quantizer):
    r"""BNext's weight binarizer (official ``HardBinaryConv``).

    \[ q(w) = \mathrm{sign}(w) \text{ if } T < 10^{-7}, \quad
       \mathrm{clip}(w / T, -1, 1) \text{ otherwise}; \qquad \frac{\partial q}{\partial w} = 1 \]

    Plain sign with no per-channel scaling factor (the following BatchNorm absorbs the scale) and
    an identity straight-through gradient. The latent weights are kept in [-1.5, 1.5] by the
    binary conv's ``kernel_constraint``. The official training starts with soft weights
    clamp(w / T, -1, 1), T = 0.9^epoch, and uses sign(w) once T < 1e-7 (epoch 153 on); the
    released checkpoints are past that point, so inference uses sign only. During training,
    :class:`larq_poke.train.BNextTemperature` sets :attr:`temperature` (a scalar variable shared
    by all the model's weight binarizers); it is ``None`` (pure sign) otherwise and never saved.

    # Arguments
    zero_sign: value of sign(0): 1 (Larq / LCE, default) or 0 (torch).
    """

    precision = 1
    #: Below this temperature the forward weight is sign(w) (the official threshold).
    SIGN_BELOW = 1e-7

    def __init__(self, zero_sign: int = 1, **kwargs):
        self.zero_sign = _check_zero_sign(zero_sign)
        super().__init__(**kwargs)
        self._temperature = Untracked(None)

    @property
    def temperature(self):
        """The training temperature (a scalar ``tf.Variable``) or ``None`` for pure sign."""
        return self._temperature.value

    def set_temperature(self, variable) -> None:
        """Use ``variable`` (a scalar ``tf.Variable``) as the temperature; ``None``: pure sign.
        Held outside Keras' tracking: not a weight, never saved or checkpointed."""
        self._temperature = Untracked(variable)

    def call(self, inputs):
        hard = _sign_ste(inputs, None, self.zero_sign)
        temperature = self.temperature
        if temperature is None:
            return hard
        t = tf.cast(temperature, inputs.dtype)
        soft = inputs + tf.stop_gradient(tf.clip_by_value(inputs / tf.maximum(t, 1e-8), -1.0, 1.0) - inputs)
        return tf.where(t < self.SIGN_BELOW, hard, soft)

    def get_config(self):
        return {**super().get_config(), "zero_sign": self.zero_sign}


@_register
class LearnableBias(tf.keras.layers.Layer):
    r"""Adds a learned per-channel bias: \( y = x + b \) (official ``LearnableBias``, ``move``).

    In BNext it shifts the binarization threshold of each channel in front of a binary conv
    (like ReActNet's RSign). The bias starts at 0.
    """

    def __init__(self, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known.")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer=self.bias_initializer)
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.bias

    def get_config(self):
        return {
            **super().get_config(),
            "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        }


@_register
class ScaleMix(tf.keras.layers.Layer):
    r"""Per-channel mix of two tensors: \( y = s \cdot a + (1 - s) \cdot b \), s initialised to 0.5.

    Called on ``[a, b]`` (a: the unit's input, b: the binary branch P). ``s`` is kept in [0, 1]
    by a constraint during training. With ``clamp=True`` it is also clipped to [0, 1] in the
    forward pass, as the official FFN_1x1 unit does in every call (the 3x3 units only clamp in
    training).
    """

    def __init__(self, clamp: bool = False, scale_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.clamp = bool(clamp)
        self.scale_initializer = tf.keras.initializers.get(
            scale_initializer or tf.keras.initializers.Constant(0.5)
        )

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"{self.name}: expects a list of two inputs [a, b].")
        channels = tf.TensorShape(input_shape[1])[-1]
        self.scale = self.add_weight(
            name="scale",
            shape=(channels,),
            initializer=self.scale_initializer,
            constraint=lambda s: tf.clip_by_value(s, 0.0, 1.0),
        )
        super().build(input_shape)

    def call(self, inputs):
        a, b = inputs
        scale = tf.clip_by_value(self.scale, 0.0, 1.0) if self.clamp else self.scale
        return scale * a + (1.0 - scale) * b

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "clamp": self.clamp,
            "scale_initializer": tf.keras.initializers.serialize(self.scale_initializer),
        }


@_register
class BNextBinaryConv2D(lq.layers.QuantConv2D):
    r"""Binary convolution with PyTorch-style zero padding applied after binarization.

    \[ y = \mathrm{conv}(\mathrm{pad}_0(\mathrm{sign}(x)), \mathrm{sign}(W)) \]

    Padding is ``kernel_size // 2`` zeros on all four sides, *after* the input binarizer, exactly
    like ``F.conv2d(sign(x), sign(W), padding=k // 2)`` in the official ``HardBinaryConv``. For
    stride 1 this is Larq's ``padding="same", pad_values=0``. For stride 2, TF's "same" would pad
    only bottom / right on even inputs, so the layer pads explicitly and convolves "valid".
    No bias.

    A :class:`larq.layers.QuantConv2D` with ``input_quantizer`` :class:`BNextSign` and
    ``kernel_quantizer`` :class:`BNextWeightSign` (both ``precision == 1``) and a
    ``WeightClip(1.5)`` kernel constraint; latent weights start at N(0, 0.001^2).

    # Arguments
    filters: output channels.
    kernel_size: odd square kernel size.
    strides: 1 or 2.
    zero_sign: value of sign(0) for inputs and weights (see module docstring).
    """

    def __init__(self, filters, kernel_size, strides=1, zero_sign: int = 1, **kwargs):
        kernel_size = _square(kernel_size, "kernel_size")
        strides = _square(strides, "strides")
        if kernel_size % 2 != 1:
            raise ValueError(f"BNextBinaryConv2D needs an odd kernel size, got {kernel_size}.")
        self.zero_sign = _check_zero_sign(zero_sign)
        # Recomputed from strides; accepted in **kwargs only so that get_config round-trips.
        kwargs.pop("padding", None)
        kwargs.pop("pad_values", None)
        kwargs.setdefault("input_quantizer", BNextSign(zero_sign=self.zero_sign))
        kwargs.setdefault("kernel_quantizer", BNextWeightSign(zero_sign=self.zero_sign))
        kwargs.setdefault("kernel_constraint", lq.constraints.WeightClip(WEIGHT_CLIP))
        kwargs.setdefault("kernel_initializer", tf.keras.initializers.RandomNormal(0.0, 0.001))
        kwargs["use_bias"] = False
        self.explicit_padding = kernel_size // 2 if strides > 1 else 0
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding="valid" if self.explicit_padding else "same",
            pad_values=0.0,
            **kwargs,
        )
        for attribute in ("input_quantizer", "kernel_quantizer"):
            if getattr(getattr(self, attribute), "precision", None) != 1:
                raise ValueError(f"{self.name}: `{attribute}` must be a binary (precision 1) quantizer.")

    @property
    def lce_binary_convertible(self) -> bool:
        """LCE fuses only sign -> conv; the explicit pad of strided convs sits in between."""
        return not self.explicit_padding and self.zero_sign == 1

    def _padding_spec(self):
        p = self.explicit_padding
        return [[0, 0], [p, p], [p, p], [0, 0]]

    def build(self, input_shape):
        if self.explicit_padding:
            input_shape = tf.TensorShape(input_shape)
            padded = [None if d is None else d + 2 * self.explicit_padding for d in input_shape[1:3]]
            input_shape = tf.TensorShape([input_shape[0], *padded, input_shape[3]])
        super().build(input_shape)

    def call(self, inputs):
        if not self.explicit_padding:
            return super().call(inputs)
        inputs = self.input_quantizer(inputs)
        inputs = tf.pad(inputs, self._padding_spec(), constant_values=0.0)
        with lq.context.quantized_scope(True):
            outputs = self.convolution_op(inputs, self.kernel)
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        if self.explicit_padding:
            input_shape = tf.TensorShape(input_shape)
            padded = [None if d is None else d + 2 * self.explicit_padding for d in input_shape[1:3]]
            input_shape = tf.TensorShape([input_shape[0], *padded, input_shape[3]])
        return tf.keras.layers.Conv2D.compute_output_shape(self, input_shape)

    def get_config(self):
        return {**super().get_config(), "zero_sign": self.zero_sign}


@_register
class SymmetricMaxPool2D(tf.keras.layers.Layer):
    """Max pooling with PyTorch's symmetric implicit padding (``nn.MaxPool2d(k, s, padding=p)``).

    Pads ``padding`` pixels of -inf on every side, then max-pools "valid". TF's "same" pooling
    pads only bottom / right for stride 2 on even inputs, which shifts the sampling grid.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        if p:
            inputs = tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=float("-inf"))
        return tf.nn.max_pool2d(inputs, self.pool_size, self.strides, "VALID")

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        spatial = [
            None if d is None else (d + 2 * self.padding - self.pool_size) // self.strides + 1
            for d in input_shape[1:3]
        ]
        return tf.TensorShape([input_shape[0], *spatial, input_shape[3]])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


def _square(value, what: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"BNextBinaryConv2D needs a square {what}, got {value}.")
        value = value[0]
    return int(value)


# ------------------------------------------------------------------------------------------------
# Stock layers with the official settings.


def batch_norm(name: str) -> tf.keras.layers.BatchNormalization:
    """BatchNorm with torch's defaults: epsilon 1e-5, momentum 0.1 (Keras 0.9)."""
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def prelu(name: str) -> tf.keras.layers.PReLU:
    """Per-channel PReLU, f(x) = max(0, x) + a * min(0, x), a initialised to 0.25."""
    return tf.keras.layers.PReLU(
        alpha_initializer=tf.keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name
    )


def squeeze_excite(x, name: str, channels: Optional[int] = None):
    """The mix-to-binary attention: GAP -> 1x1 conv C/8 (+bias) -> ReLU -> 1x1 conv C -> sigmoid.

    Real-valued. Returns the [N, 1, 1, C] attention map. Layer names follow the official
    ``<unit>.se.se.1`` / ``<unit>.se.se.3`` convs.
    """
    in_channels = x.shape[-1]
    channels = channels or in_channels
    hidden = in_channels // SE_REDUCTION
    if hidden < 1:
        raise ValueError(
            f"{name}: the SE attention needs at least {SE_REDUCTION} channels (C // {SE_REDUCTION} "
            f">= 1), got {in_channels}."
        )
    y = tf.keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
    y = tf.keras.layers.Conv2D(hidden, 1, use_bias=True, name=f"{name}.se.1")(y)
    y = tf.keras.layers.ReLU(name=f"{name}.relu")(y)
    y = tf.keras.layers.Conv2D(channels, 1, use_bias=True, name=f"{name}.se.3")(y)
    return tf.keras.layers.Activation("sigmoid", name=f"{name}.sigmoid")(y)


def _processor(x, filters: int, kernel_size: int, stride: int, name: str, zero_sign: int):
    """P = PReLU_2(BN_1(BinConv(sign(x + move))))."""
    y = LearnableBias(name=f"{name}.move")(x)
    with quiet_larq_warnings():
        y = BNextBinaryConv2D(
            filters, kernel_size, strides=stride, zero_sign=zero_sign, name=f"{name}.binary_conv"
        )(y)
    y = batch_norm(f"{name}.norm1")(y)
    return prelu(f"{name}.activation2")(y)


def _pool(x, stride: int, name: str):
    if stride == 1:
        return x
    if stride != 2:
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}.")
    return tf.keras.layers.AveragePooling2D(2, 2, padding="valid", name=name)(x)


def elm_attention_unit(x, *, stride: int = 1, name: str, zero_sign: int = 1):
    """The ELM-Attention unit (official ``Attention``; even blocks). Keeps the channel count.

    R = Pool(PReLU_1(x)); P = processor(x) (3x3, stride); M = s * Pool(x) + (1 - s) * P;
    out = BN_2(SE(M) * P * R) + R.
    """
    channels = x.shape[-1]
    residual = prelu(f"{name}.activation1")(x)
    residual = _pool(residual, stride, f"{name}.pool_residual")
    p = _processor(x, channels, 3, stride, name, zero_sign)
    pooled = _pool(x, stride, f"{name}.pool_input")
    mix = ScaleMix(name=f"{name}.scale")([pooled, p])
    attention = squeeze_excite(mix, f"{name}.se")
    y = tf.keras.layers.Multiply(name=f"{name}.se_mul")([attention, p])
    y = tf.keras.layers.Multiply(name=f"{name}.elm_mul")([y, residual])
    y = batch_norm(f"{name}.norm2")(y)
    return tf.keras.layers.Add(name=f"{name}.add")([y, residual])


def ffn_3x3_unit(x, *, stride: int = 1, name: str, zero_sign: int = 1, clamp_scale: bool = False):
    """The FFN_3x3 unit (official ``FFN_3x3``; block 1 and odd blocks). Keeps the channel count.

    P = processor(x) (3x3, stride); X = Pool(x); out = BN_2(SE(s * X + (1 - s) * P) * P) + X.
    ``clamp_scale`` clips s to [0, 1] in the forward pass (BNext-18's FFN_3x3 does; BNext's only
    in training).
    """
    channels = x.shape[-1]
    p = _processor(x, channels, 3, stride, name, zero_sign)
    pooled = _pool(x, stride, f"{name}.pool_input")
    mix = ScaleMix(clamp=clamp_scale, name=f"{name}.scale")([pooled, p])
    attention = squeeze_excite(mix, f"{name}.se")
    y = tf.keras.layers.Multiply(name=f"{name}.se_mul")([attention, p])
    y = batch_norm(f"{name}.norm2")(y)
    return tf.keras.layers.Add(name=f"{name}.add")([y, pooled])


def ffn_1x1_unit(x, *, name: str, zero_sign: int = 1):
    """The binary feed-forward unit (official ``FFN_1x1``): FFN_3x3 with a 1x1 binary conv.

    out = BN_2(SE(s * x + (1 - s) * P) * P) + x, with s clipped to [0, 1] in the forward pass as
    the official unit does.
    """
    channels = x.shape[-1]
    p = _processor(x, channels, 1, 1, name, zero_sign)
    mix = ScaleMix(clamp=True, name=f"{name}.scale")([x, p])
    attention = squeeze_excite(mix, f"{name}.se")
    y = tf.keras.layers.Multiply(name=f"{name}.se_mul")([attention, p])
    y = batch_norm(f"{name}.norm2")(y)
    return tf.keras.layers.Add(name=f"{name}.add")([y, x])


# ------------------------------------------------------------------------------------------------
# BNext-18 units (official ``birealnet.py``): the 3x3 binary conv maps in -> out channels itself.


def bnext18_attention_unit(x, filters: int, *, stride: int = 1, name: str, zero_sign: int = 1):
    """BNext-18's ``Attention`` unit.

    R = PReLU_1(x), followed when the shape changes by the downsample shortcut
    AvgPool(2, stride) -> real 1x1 conv (no bias) -> BN; P = processor(x) (3x3, in -> filters,
    stride); M = s * R + (1 - s) * P; out = BN_2(SE(M) * P * R) + R.
    ``name`` is the unit's path, e.g. ``layer1.0.Attention``; the downsample layers are named
    ``layer1.0.Attention.downsample.{0,1,2}`` (the checkpoint keeps them under the unit).
    """
    in_channels = x.shape[-1]
    residual = prelu(f"{name}.activation1")(x)
    if stride != 1 or in_channels != filters:
        residual = tf.keras.layers.AveragePooling2D(
            stride, stride, padding="valid", name=f"{name}.downsample.0"
        )(residual)
        residual = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}.downsample.1")(residual)
        residual = batch_norm(f"{name}.downsample.2")(residual)
    p = _processor(x, filters, 3, stride, name, zero_sign)
    mix = ScaleMix(name=f"{name}.scale")([residual, p])
    attention = squeeze_excite(mix, f"{name}.se")
    y = tf.keras.layers.Multiply(name=f"{name}.se_mul")([attention, p])
    y = tf.keras.layers.Multiply(name=f"{name}.elm_mul")([y, residual])
    y = batch_norm(f"{name}.norm2")(y)
    return tf.keras.layers.Add(name=f"{name}.add")([y, residual])
