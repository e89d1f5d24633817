"""PokeBNN's quantizers, exactly as the official AQT code computes them, as Larq quantizers.

All quantizers are fake-quant: they scale, quantize and scale back, so outputs stay real-valued.
They share the official conventions:

* ``eps = 2**-23`` (float32 machine epsilon) is added to every clipping bound before dividing.
* Scales are constants for the gradient (stop-gradient).
* Rounding is ``floor(v + 0.5)`` (round half **up**, not ``tf.round``'s half to even).
* Gradients are straight-through for ``floor``; clipping passes gradient only inside its range.

Each quantizer has a ``precision`` attribute (1, 4 or 8) that `larq.models.summary` and
:func:`larq_poke.cost.profile` read. Activation quantizers with learned bounds hold them as a
non-trainable per-input-channel weight ``bounds`` initialised to ``-1``, the official sentinel
for "do not quantize this channel yet" (pass-through).

```python
import tensorflow as tf
import larq as lq
from larq_poke.quantizers import PokeBinaryActivation, PokeBinaryWeight

conv = lq.layers.QuantConv2D(
    64, 3, padding="same", use_bias=False,
    input_quantizer=PokeBinaryActivation(),   # +-1.5, zero maps to +1.5
    kernel_quantizer=PokeBinaryWeight(),      # +-max|w|/2 per output channel
    kernel_constraint=None,
)
```

# References
- Zhang, Zhang, Lew: PokeBNN: A Binary Pursuit of Lightweight Accuracy (CVPR 2022).
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.serialization import register_serializable

from larq_poke.no_autograph import keep_autograph_out_of_tf_keras, skip_autograph

keep_autograph_out_of_tf_keras()

__all__ = [
    "EPS",
    "PokeBinaryActivation",
    "PokeBinaryWeight",
    "SignedWeightQuantizer",
    "FanInWeightQuantizer",
    "SignedActivationQuantizer",
    "UnsignedActivationQuantizer",
]

#: float32 machine epsilon, added to every clipping bound (official ``eps``).
EPS = float(np.finfo(np.float32).eps)

# The binary quantizer clips x / (bound + eps) to +-(1 - 2^-7) before flooring.
_BINARY_CLIP = 1.0 - 2.0**-7


def _floor_ste(x):
    """floor(x) forward, identity gradient."""
    return x + tf.stop_gradient(tf.floor(x) - x)


def _binary_fake_quant(x, bound):
    """Official precision-1 ``half_shift`` quantizer: +-(bound + eps) / 2, zero maps to +."""
    scale = tf.stop_gradient(1.0 / (bound + EPS))
    clipped = tf.clip_by_value(x * scale, -_BINARY_CLIP, _BINARY_CLIP)
    return (_floor_ste(clipped) + 0.5) / scale


def _signed_fake_quant(x, bound, bits, full_range: bool = False):
    """Official signed quantizer: round(clip(x * s, -B, B)) / s with s = B / (bound + eps);
    ``full_range`` lowers the clip to -B - 1 (two's complement, TFLite's int8 activation grid)."""
    levels = 2.0 ** (bits - 1) - 1.0
    scale = tf.stop_gradient(levels / (bound + EPS))
    clipped = tf.clip_by_value(x * scale, -levels - 1.0 if full_range else -levels, levels)
    return _floor_ste(clipped + 0.5) / scale


def _unsigned_fake_quant(x, bound, bits):
    """Official unsigned quantizer: clip(floor(x * s), 0, 2^p - 1) / s with s = 2^p / (bound + eps)."""
    scale = tf.stop_gradient(2.0**bits / (bound + EPS))
    return tf.clip_by_value(_floor_ste(x * scale), 0.0, 2.0**bits - 1.0) / scale


def _per_output_channel_max(w, channel_axes):
    """max|w| over every axis except the trailing ``channel_axes`` (the output-channel axes)."""
    reduce_axes = list(range(w.shape.rank - channel_axes))
    return tf.stop_gradient(tf.reduce_max(tf.abs(w), axis=reduce_axes, keepdims=True))


class Untracked:
    """A holder Keras does not track: a ``tf.Variable`` set on a layer directly would become one
    of its weights (saved, checkpointed, counted); one held here is only read by ``call``."""

    __slots__ = ("value",)

    def __init__(self, value=None):
        self.value = value


@skip_autograph
class _PokeQuantizer(lq.quantizers.Quantizer):
    """Base class: registered, serializable, no metrics."""

    def get_config(self):
        config = super().get_config()
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config


class _SwitchableWeightQuantizer(_PokeQuantizer):
    """A weight quantizer that can pass the latent weights through (the PokeBNN recipe quantizes
    weights only from 50/800 of the run).

    While training, :class:`larq_poke.train.switches.PokeBNNSwitches` hands it a boolean
    ``tf.Variable`` with :meth:`set_switch`; the traced training step reads it, so it need not be
    traced again when the weights switch on. Without a switch it always quantizes.
    """

    _switch = Untracked()  # replaced, never mutated: instances do not share state

    def set_switch(self, variable) -> None:
        """Quantize when the scalar boolean ``variable`` is True, pass through when False;
        ``None``: always quantize. Not a weight: never saved or checkpointed."""
        self._switch = Untracked(variable)

    def quantize(self, inputs):
        raise NotImplementedError

    def call(self, inputs):
        if self._switch.value is None:
            return self.quantize(inputs)
        return tf.where(self._switch.value, self.quantize(inputs), inputs)


@register_serializable
class PokeBinaryActivation(_PokeQuantizer):
    r"""Binary activation quantizer of PokeBNN: \(\pm\frac{b + \epsilon}{2}\), zero maps to +.

    With the default bound ``b = 3`` the output is ``+1.5`` for ``x >= 0`` and ``-1.5`` otherwise.

    Forward: \(q(x) = (\lfloor \mathrm{clip}(x s, -c, c) \rfloor + 0.5) / s\),
    \(s = 1/(b + \epsilon)\), \(c = 1 - 2^{-7}\).
    Gradient: 1 for \(|x| \le c (b + \epsilon)\) (about 2.977 for b = 3), else 0.

    ```python
    q = PokeBinaryActivation()
    q(tf.constant([-0.2, 0.0, 4.0]))  # [-1.5, 1.5, 1.5]
    ```

    # Arguments
    bound: the clipping bound ``b`` (the paper's tuned hyper-parameter; 3.0 officially).
    """

    precision = 1

    def __init__(self, bound: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        if not bound > 0:
            raise ValueError(f"PokeBinaryActivation bound must be positive, got {bound}.")
        self.bound = float(bound)

    def call(self, inputs):
        return _binary_fake_quant(inputs, tf.constant(self.bound, inputs.dtype))

    def get_config(self):
        return {**super().get_config(), "bound": self.bound}


@register_serializable
class PokeBinaryWeight(_SwitchableWeightQuantizer):
    r"""Binary weight quantizer of PokeBNN: \(\mathrm{sign}(w) \cdot \frac{\max_c|w| + \epsilon}{2}\).

    The scale is per output channel (max over all other axes); zero maps to +. Gradient: 1, except
    0 for the weights whose magnitude equals the channel maximum (they hit the clip).

    ```python
    q = PokeBinaryWeight()
    q(tf.constant([[0.5, -2.0], [-1.0, 0.0]]))  # [[0.5, -1.0], [-0.5, 1.0]] (+ eps/2)
    ```

    # Arguments
    channel_axes: how many trailing axes index output channels: 1 for conv / dense kernels,
        2 for depthwise kernels ``(kh, kw, C, multiplier)``.
    """

    precision = 1

    def __init__(self, channel_axes: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channel_axes = int(channel_axes)

    def quantize(self, inputs):
        return _binary_fake_quant(inputs, _per_output_channel_max(inputs, self.channel_axes))

    def get_config(self):
        return {**super().get_config(), "channel_axes": self.channel_axes}


@register_serializable
class SignedWeightQuantizer(_SwitchableWeightQuantizer):
    r"""Symmetric ``bits``-bit weight quantizer, per output channel (official AQT weights).

    \(q(w) = \lfloor \mathrm{clip}(w s, -B, B) + 0.5 \rfloor / s\), \(B = 2^{p-1} - 1\),
    \(s = B / (\max_c|w| + \epsilon)\). Used at 8 bits for the PokeBNN stem and head, BiNeal's
    stem and classifier and the 8-bit layers of its task models, and at 4 bits for PokeBNN's SE
    convolutions.

    ```python
    q = SignedWeightQuantizer(bits=4)
    ```

    # Arguments
    bits: precision ``p`` (2..16).
    channel_axes: trailing axes indexing output channels (1 for conv / dense, 2 for depthwise).
    """

    def __init__(self, bits: int = 8, channel_axes: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"SignedWeightQuantizer needs 2 <= bits <= 16, got {bits}.")
        self.bits = int(bits)
        self.precision = self.bits
        self.channel_axes = int(channel_axes)

    def quantize(self, inputs):
        bound = _per_output_channel_max(inputs, self.channel_axes)
        return _signed_fake_quant(inputs, bound, self.bits)

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "channel_axes": self.channel_axes}


class _BoundedActivationQuantizer(_PokeQuantizer):
    """Activation quantizer with a learned bound held as a weight: one per input channel, or
    one for the whole tensor (``per_channel=False``, the int8 TFLite activation grid).

    A negative bound (the initial -1) passes the channel through unquantized.
    """

    def __init__(self, bits: int, per_channel: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.bits = int(bits)
        self.precision = self.bits
        self.per_channel = bool(per_channel)

    def build(self, input_shape):
        channels = tf.TensorShape(input_shape)[-1]
        if self.per_channel and channels is None:
            raise ValueError(f"{type(self).__name__} needs a known channel dimension.")
        self.bounds = self.add_weight(
            name="bounds",
            shape=(int(channels) if self.per_channel else 1,),
            initializer=tf.keras.initializers.Constant(-1.0),
            trainable=False,
        )
        super().build(input_shape)

    def _fake_quant(self, x, bound):
        raise NotImplementedError

    def call(self, inputs):
        bounds = tf.cast(self.bounds, inputs.dtype)
        quantized = self._fake_quant(inputs, bounds)
        return tf.where(bounds < 0, inputs, quantized)

    def get_config(self):
        config = {**super().get_config(), "bits": self.bits}
        if not self.per_channel:
            config["per_channel"] = False
        return config


@register_serializable
class SignedActivationQuantizer(_BoundedActivationQuantizer):
    r"""Signed ``bits``-bit activation quantizer with learned bounds, per input channel
    (PokeBNN's, symmetric) or per tensor (``per_channel=False``: BiNeal's; at 8 bits exactly
    int8 TFLite's grid).

    \(q(x) = \lfloor \mathrm{clip}(x s, -L, B) + 0.5 \rfloor / s\), \(B = 2^{p-1} - 1\),
    \(s = B / (b_c + \epsilon)\) with the stored bound \(b_c\) of channel c; channels whose bound
    is negative (initially -1) pass through. Gradient: straight-through inside the clip range.
    \(L = B\) (the official quantizer), except per tensor at 8 bits: \(L = 128\), levels
    −128..127, the two's-complement grid of a TFLite int8 tensor with scale b / 127 and zero
    point 0, so that an int8 file computes the same levels for every input, also below −b.

    ```python
    q = SignedActivationQuantizer(bits=8)
    y = q(tf.ones((1, 4, 4, 3)))           # bounds are -1: passes through
    q.bounds.assign([1.0, 2.0, 3.0])       # calibrated bounds: now int8
    shared = SignedActivationQuantizer(bits=8, per_channel=False)   # one bound, shape (1,)
    ```
    """

    def __init__(self, bits: int = 8, per_channel: bool = True, **kwargs):
        super().__init__(bits=bits, per_channel=per_channel, **kwargs)

    def _fake_quant(self, x, bound):
        return _signed_fake_quant(x, bound, self.bits, full_range=not self.per_channel and self.bits == 8)


@register_serializable
class UnsignedActivationQuantizer(_BoundedActivationQuantizer):
    r"""Unsigned ``bits``-bit activation quantizer (PokeBNN SE fc2 input, after a ReLU).

    \(q(x) = \mathrm{clip}(\lfloor x s \rfloor, 0, 2^p - 1) / s\), \(s = 2^p / (b_c + \epsilon)\):
    note floor (not round) and the clip after it. Negative bounds pass through.

    ```python
    q = UnsignedActivationQuantizer(bits=4)
    ```
    """

    def __init__(self, bits: int = 4, **kwargs):
        super().__init__(bits=bits, **kwargs)

    def _fake_quant(self, x, bound):
        return _unsigned_fake_quant(x, bound, self.bits)


@register_serializable
class FanInWeightQuantizer(SignedWeightQuantizer):
    """8-bit weights (per output channel) of the stored kernel divided by its fan-in (kh·kw·C).

    For the tail convs that read ±1 maps: the conv then averages its ±1 inputs instead of
    summing them, so an optimizer step of size lr on every stored weight moves an output by at
    most lr whatever the width (with a plain kernel it would move by lr · fan-in, hundreds of
    times the size of a super-resolution residual). The stored kernel is a training
    parameterisation only; the deployed 8-bit weights are the quantized quotient."""

    def call(self, inputs):
        fan_in = 1
        for size in inputs.shape[:-1]:
            fan_in *= int(size)
        return super().call(inputs / fan_in)
