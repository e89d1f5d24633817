"""Building blocks shared by the deployable rewrites (:mod:`~larq_poke.converters.rewrites.pokebnn`,
:mod:`~larq_poke.converters.rewrites.bnext`, :mod:`~larq_poke.converters.rewrites.bineal`):
constants read from trained layers, the binary conv in the form LCE fuses, the exact correction of
a binary conv whose padded positions hold +1 instead of 0, and the multi-bit quantizers (PokeBNN's
and BiNeal's 8-bit stem and head) as plain TFLite arithmetic or int8 fake quantization.
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.converters.conversion_report import QuantizationInfoError
from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.base import GraphLayer
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import EPS, SignedActivationQuantizer, UnsignedActivationQuantizer

__all__ = [
    "ActivationQuant",
    "calibration_images",
    "ChannelAffine",
    "ConstantAdd",
    "ConvSpec",
    "as_numpy",
    "bn_affine",
    "check_bn_variance",
    "binary_conv",
    "channel_prelu",
    "fake_quant",
    "fake_quant_weights",
    "weight_bounds",
    "full_map_mean",
    "measured_range",
    "MissingQuantizationInfoError",
    "padding_correction",
    "quantized_kernel",
    "shifted_batch_norm",
]


def as_numpy(variable) -> np.ndarray:
    """A variable or tensor as a float32 numpy array."""
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)


def check_bn_variance(bn) -> None:
    """Raise ``ValueError`` naming ``bn`` and the channels where moving variance + epsilon is not
    a positive number: the batch norm's inference scale would be NaN or infinite there, and so
    would every constant a rewrite folds from it. A variance of 0 passes (epsilon keeps it finite).
    """
    variance = as_numpy(bn.moving_variance).ravel()
    bad = np.flatnonzero(~(variance + np.float32(bn.epsilon) > 0))
    if bad.size:
        raise ValueError(f"{bn.name}: moving variance + epsilon is not positive in channels "
                         f"{bad[:8].tolist()} (e.g. {float(variance[bad[0]]):g}); its scale would be NaN "
                         "or infinite and so would everything folded from it.")


def bn_affine(bn) -> "tuple[np.ndarray, np.ndarray]":
    """Inference BN as ``x * scale + shift`` (Keras' own formula); see :func:`check_bn_variance`
    for the batch norms it refuses."""
    check_bn_variance(bn)
    gamma = as_numpy(bn.gamma) if bn.scale else 1.0
    beta = as_numpy(bn.beta) if bn.center else 0.0
    inv = (1.0 / np.sqrt(as_numpy(bn.moving_variance) + np.float32(bn.epsilon))).astype(np.float32)
    scale = (inv * gamma).astype(np.float32)
    shift = (beta - as_numpy(bn.moving_mean) * scale).astype(np.float32)
    return scale, np.broadcast_to(shift, scale.shape).astype(np.float32)


class ConvSpec:
    """The geometry of a conv: filters, kernel size, strides, padding ("same" / "valid"),
    dilation rate."""

    def __init__(self, filters, kernel_size, strides, padding, dilation_rate=(1, 1)):
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.padding = padding
        self.dilation_rate = tuple(int(d) for d in dilation_rate)


def binary_conv(conv, name: str, pad_values: float = 0.0):
    """A QuantConv2D LCE recognises: ste_sign input, ±1 kernel (ste_sign), no bias (``conv``
    is a :class:`ConvSpec`; ``pad_values`` 0 is same-zero, 1 same-one)."""
    with quiet_larq_warnings():
        new = lq.layers.QuantConv2D(
            conv.filters,
            conv.kernel_size,
            strides=conv.strides,
            padding=conv.padding,
            dilation_rate=conv.dilation_rate,
            pad_values=pad_values,
            use_bias=False,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            name=name,
        )
    return without_autograph(new)


def padding_correction(sign_kernel: np.ndarray, x_shape, paddings, strides) -> np.ndarray:
    """(1, H', W', C) map of what +1 at the padded positions adds to a VALID conv of the padded
    input: the sum of the ±1 weights that fall on padded positions. Sums of ±1 are exact in
    float32, so ``conv(pad_1(x)) - correction == conv(pad_0(x))`` exactly."""
    h, w, cin = int(x_shape[1]), int(x_shape[2]), int(x_shape[3])
    padded = tf.pad(
        tf.zeros((1, h, w, cin)), [[0, 0]] + [list(p) for p in paddings] + [[0, 0]], constant_values=1.0
    )
    return tf.nn.conv2d(padded, sign_kernel, tuple(strides), "VALID").numpy()


def channel_prelu(x, alpha: np.ndarray):
    """``x >= 0 ? x : alpha * x`` with a per-channel constant ``alpha``, as one TFLite PRELU.

    Written in Keras' PReLU formula, which the TFLite converter turns into a single PRELU op
    (other spellings become 2 to 5 ops). On x86-64 on a 56x56x256 map
    (``benchmarks/tflite_op_costs.py``): PRELU 0.32 ms, MUL + MAXIMUM (``max(x, alpha * x)``, the
    same function for alpha <= 1) 0.67 ms, an ADD of two such maps 0.37 ms.
    """
    alpha = np.asarray(alpha, np.float32).reshape(1, 1, -1)
    return tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)


def full_map_mean(x):
    """Mean over H and W, (N, 1, 1, C): one AVERAGE_POOL_2D over the whole map when the map size
    is static (larq-zoo's global pool), a MEAN otherwise."""
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.nn.avg_pool2d(x, (h, w), (h, w), "VALID")


class ConstantAdd(GraphLayer):
    """``x + c`` for a constant (1, H, W, C) map ``c``, as ADD_N.

    LCE 0.16 folds an ADD / SUB of *any* constant that directly follows an ``LceBconv2d`` into
    its per-channel ``post_activation_bias`` without checking the shape, and a (1, H, W, C) map
    then makes the file fail to load ("NumDimensions(post_activation_bias) != 1"). ADD_N is not
    folded. Its operands must have equal shapes, so ``c`` is broadcast to the batch first (a
    SHAPE + BROADCAST_TO pair when the batch size is dynamic).
    """

    def __init__(self, constant=None, **kwargs):
        super().__init__(**kwargs)
        if constant is None:
            raise ValueError("ConstantAdd needs its constant")
        self._constant = np.asarray(constant, np.float32)

    def call(self, inputs, training=None):
        constant = tf.broadcast_to(tf.constant(self._constant), tf.shape(inputs))
        return tf.math.add_n([inputs, constant])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


class ChannelAffine(GraphLayer):
    """``x · scale + shift`` with per-channel constants (either may be None)."""

    def __init__(self, scale=None, shift=None, **kwargs):
        super().__init__(**kwargs)
        self._scale = None if scale is None else np.asarray(scale, np.float32)
        self._shift = None if shift is None else np.asarray(shift, np.float32)

    def call(self, inputs, training=None):
        y = inputs
        if self._scale is not None:
            y = y * self._scale
        if self._shift is not None:
            y = y + self._shift
        return y

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


def shifted_batch_norm(layer, delta):
    """A copy of an inference BatchNormalization with ``delta`` added to its output: to its beta
    (a layer built with ``center=False`` gets one, from zero)."""
    if getattr(layer, "renorm", False):
        raise ValueError(f"{layer.name}: a BatchNormalization with renorm=True cannot be shifted here; "
                         "build it without renorm.")
    config = {**layer.get_config(), "center": True}
    new = tf.keras.layers.BatchNormalization.from_config(config)
    new.build(layer.input_shape)
    gamma = [as_numpy(layer.gamma)] if layer.scale else []
    beta = as_numpy(layer.beta) if layer.center else np.zeros(as_numpy(layer.moving_mean).shape, np.float32)
    new.set_weights(gamma + [(beta + delta).astype(np.float32), as_numpy(layer.moving_mean),
                             as_numpy(layer.moving_variance)])
    return new


def fake_quant(x, low: float, high: float):
    """Per-tensor int8 fake quant of ``x`` over [low, high] (TFLite's activation scheme)."""
    return tf.quantization.fake_quant_with_min_max_vars(
        x, min=float(low), max=float(high), num_bits=8, narrow_range=False
    )


def weight_bounds(kernel: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    """max|w| per output channel, the range of :func:`fake_quant_weights` (1e-12 for an
    all-zero channel)."""
    moved = np.moveaxis(kernel, channel_axis, -1)
    bound = np.max(np.abs(moved.reshape(-1, moved.shape[-1])), axis=0)
    return np.maximum(bound, 1e-12).astype(np.float32)


def fake_quant_weights(kernel: np.ndarray, channel_axis: int = -1, bound=None):
    """Symmetric per-output-channel int8 fake quant of a constant kernel (TFLite's weight
    scheme), with the range the model's own weight quantizer uses: max|w| per channel
    (``bound`` instead, when given: one value per channel, each at least that max)."""
    moved = np.moveaxis(kernel, channel_axis, -1)
    bound = weight_bounds(kernel, channel_axis) if bound is None else np.asarray(bound, np.float32)
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.constant(moved), min=-bound, max=bound, num_bits=8, narrow_range=True
    )
    if channel_axis in (-1, kernel.ndim - 1):
        return quantized
    perm = list(range(kernel.ndim))
    perm.insert(channel_axis % kernel.ndim, perm.pop(-1))
    return tf.transpose(quantized, perm)


def calibration_images(model, calibration_inputs, family: str, tensors: str):
    """``(images, checks)`` for measuring the int8 ranges of ``tensors``: ``calibration_inputs``
    (the first array of a list) as float32, or, when it is None, 8 seeded standard-normal images
    with a report check (``model._deployment_checks``) that says so."""
    if isinstance(calibration_inputs, (list, tuple)):
        calibration_inputs = calibration_inputs[0]
    if calibration_inputs is not None:
        return np.asarray(calibration_inputs, np.float32), ()
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    images = np.random.default_rng(0).standard_normal((8,) + shape).astype(np.float32)

    def check(report) -> str:
        return (f"{family} int8: the ranges of {tensors} were measured on 8 standard-normal images "
                "(no sample inputs given); pass real images as sample_inputs (larq-poke convert "
                "--int8 --sample-images DATASET) for ranges that fit real data")

    return images, (check,)


def measured_range(values, margin: float = 1.1) -> "tuple[float, float]":
    """[min, max] of ``values`` widened by ``margin`` and including 0: an int8 range for a
    tensor the model has no quantizer for."""
    values = np.asarray(values)
    low, high = float(values.min()), float(values.max())
    low, high = min(low, 0.0) * margin, max(high, 0.0) * margin
    if high - low < 1e-6:
        high = low + 1e-6
    return low, high


class MissingQuantizationInfoError(QuantizationInfoError):
    """int8 was requested but a multi-bit activation quantizer is uncalibrated (bounds = -1)."""


def quantized_kernel(layer, attribute="kernel_quantizer", weight="kernel") -> np.ndarray:
    """``layer``'s weight as its quantizer makes it (the weight itself without a quantizer)."""
    quantizer = getattr(layer, attribute)
    kernel = getattr(layer, weight)
    return np.asarray(quantizer(kernel), np.float32) if quantizer is not None else as_numpy(kernel)


class ActivationQuant:
    """A learned activation quantizer (PokeBNN's per channel, BiNeal's per tensor) as TFLite-native
    arithmetic.

    Float mode reproduces the official fake quantization exactly (same float32 scale, round
    half up, division by the scale); channels whose bound is negative (the -1 sentinel) pass
    through. int8 mode emits one per-tensor ``fake_quant_with_min_max_vars`` (see
    :func:`~larq_poke.converters.rewrites.pokebnn.pokebnn_deployable`).
    """

    def __init__(self, quantizer, name: str):
        self.name = name
        self.bits = int(quantizer.bits)
        self.unsigned = isinstance(quantizer, UnsignedActivationQuantizer)
        self.full_range = not self.unsigned and not quantizer.per_channel and self.bits == 8  # clips at -128
        if not isinstance(quantizer, (SignedActivationQuantizer, UnsignedActivationQuantizer)):
            raise TypeError(f"{name}: unsupported activation quantizer {type(quantizer).__name__}")
        self.bounds = as_numpy(quantizer.bounds)
        self.active = self.bounds >= 0
        safe = np.where(self.active, self.bounds, 1.0).astype(np.float32)
        if self.unsigned:
            self.scale = (np.float32(2.0**self.bits) / (safe + np.float32(EPS))).astype(np.float32)
        else:
            levels = np.float32(2.0 ** (self.bits - 1) - 1.0)
            self.scale = (levels / (safe + np.float32(EPS))).astype(np.float32)

    @property
    def calibrated(self) -> bool:
        return bool(self.active.all())

    def _levels(self, x, nonnegative: bool = False):
        scale = tf.constant(self.scale)
        if self.unsigned:
            levels = tf.floor(x * scale)
            if nonnegative:
                return tf.minimum(levels, 2.0**self.bits - 1.0)
            return tf.clip_by_value(levels, 0.0, 2.0**self.bits - 1.0)
        levels = 2.0 ** (self.bits - 1) - 1.0
        lowest = -levels - 1.0 if self.full_range else -levels
        return tf.floor(tf.clip_by_value(x * scale, lowest, levels) + 0.5)

    def integer_call(self, x, nonnegative: bool = False):
        """The quantized levels (integers) before the division by the scale, or None when some
        channel is not quantized. The caller folds ``1 / self.scale`` into the next linear op;
        ``nonnegative`` says ``x >= 0`` already (an unsigned quantizer then skips its lower
        clip, which cannot bind)."""
        return self._levels(x, nonnegative) if self.active.all() else None

    def float_call(self, x):
        if not self.active.any():
            return x
        q = self._levels(x) / tf.constant(self.scale)
        if self.active.all():
            return q
        mask = tf.constant(self.active.astype(np.float32))
        return q * mask + x * (1.0 - mask)

    def int8_range(self) -> "tuple[float, float]":
        """Per-tensor range covering every channel's clipping range (the int8 grid is
        per-tensor in TFLite). For a signed 8-bit quantizer it is [−128, 127] steps of
        max b / 127: the quantizer's own grid, so that with one bound (``per_channel=False``,
        which clips at −128 steps too) int8 reproduces it for every input; with per-channel
        bounds, values the model clips at −127 steps can reach −128 steps in int8."""
        if not self.calibrated:
            raise MissingQuantizationInfoError(
                f"{self.name}: its {self.bits}-bit activation bounds are still the -1 sentinel "
                "(uncalibrated), so the model carries no quantization information for int8. "
                "Calibrate the bounds (training past the bound update step, or "
                "larq_poke.converters.rewrites.pokebnn.calibrate_activation_bounds) first."
            )
        top = float(np.max(self.bounds + np.float32(EPS)))
        if self.unsigned:
            return 0.0, top * (2.0**self.bits - 1.0) / 2.0**self.bits
        if self.bits == 8:
            return -top * 128.0 / 127.0, top
        return -top, top
