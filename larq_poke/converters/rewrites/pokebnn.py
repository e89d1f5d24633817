r"""PokeBNN in the form the Larq Compute Engine optimises: the deployable rewrite.

PokeBNN as trained (:mod:`larq_poke.layers.pokebnn`) binarizes activations to ±1.5 and weights to
±max|w|/2, lowers DPReLU to GREATER / SELECT, tiles channels with TILE and computes its learned
activation quantizers with ``tf.where``. LCE recognises none of that. This module registers a
rewrite (:func:`pokebnn_deployable`, applied by :func:`larq_poke.converters.convert`) into a
numerically equivalent model built from ops LCE fuses or TFLite runs natively.

**The PokeConv** (input ``x``, optional block input ``r1``; BN_a with scale ``g_a`` =
γ/√(σ²+ε), DPReLU parameters ``b_x, b_y, α_+, α_-``, SE gate ``s``, BN_b with scale ``g_b``
and shift ``h_b``):

* binary conv: ``±1.5 · ±(max_c|w| + ε)/2 = a_c · (sign x ⊛ sign w)`` with
  ``a_c = 1.5 · (max_c|w| + ε) / 2``. The conv becomes a ``QuantConv2D`` with ``ste_sign`` on
  both input and ±1 kernel (sign(0) = +1, as PokeBNN's quantizer) and ``pad_values=0``: padded
  positions contribute 0 in both forms, so the folding is exact;
* ``C · (a_c g_a) + (β_a − μ_a g_a − b_x)``: one per-channel affine directly on the conv output,
  which LCE folds into the ``LceBconv2d`` output transform. DPReLU's input shift ``b_x`` joins it
  because the shortcut additions commute with it;
* ``z = that + shortcut(x) [+ shortcut(r1)]``: one ADD (two with the block shortcut);
* DPReLU: ``(z ≥ 0 ? α_+ : α_-)·z − b_y = α_+ · PReLU(z, α_-/α_+) − b_y`` for any α_+ ≠ 0
  (the factor α_+ is applied after the PReLU, so its sign does not matter; α_+ = 0 is replaced
  by a sign-preserving 1e-20, exact to float precision): one PRELU;
* SE multiply and BN_b merged: ``BN_b(s · DPReLU(z)) = A · PReLU(z, α_-/α_+) + B`` with
  ``A = (g_b α_+) · s`` and ``B = h_b − (g_b b_y) · s`` computed on the 1×1 gate: one MUL and
  one ADD at full resolution.

That is 4 full-resolution float elementwise ops per PokeConv (5 with a block shortcut), 13/3 on
average. **Lower bound.** A PokeConv's output has to be materialised (it feeds the next sign, the
next shortcut and the next SE): the shortcut needs an ADD (the conv's output transform adds only
constants), DPReLU a PRELU (the only non-linearity), and the output depends on the per-sample
gate both multiplicatively (``A``) and additively (``B``, because b_y is shifted *before* the
gate multiply) — neither can be folded into a constant transform, and TFLite has no fused
multiply-add with tensor operands. Hence 4 per PokeConv, 5 where a second residual is added: the
form here is at the minimum. (Fewer ops is also faster here: TFLite's PRELU is as cheap as an
ADD, cheaper than the two-op ``max(z, r·z)``; see
:func:`~larq_poke.converters.rewrites.common.channel_prelu`.)

**Shortcut reshapes** without TILE / TRANSPOSE / SELECT: channel tiling is a CONCATENATION of
copies; zero-padding channels is PAD; averaging k consecutive channels is RESHAPE + MEAN (a
SLICE for k = 1); the counting 3×3/2 average pool is PAD + AVERAGE_POOL_2D VALID (divisor 9
everywhere), applied *before* a tile or zero-pad (they commute; fewer channels to pool).

**Stem, SE, head.** Multi-bit weights are quantized once at rewrite time (constants on the
model's own 8-bit / 4-bit grids); the learned per-channel activation quantizers become the same
arithmetic on plain ops (MUL, MINIMUM, MAXIMUM, FLOOR, DIV), with channels whose bound is still
the −1 sentinel passed through. In the SE, the quantizers' division by their scale is folded into
the next 1×1 conv's kernel, the hard sigmoid's ``+ 3`` into fc2's bias, its clip into fc2 as a
fused RELU6 and its ``/ 6`` into the gate constants (14 small ops per SE instead of about 20,
which also shortens the LCE conversion). Global pooling is ``AVERAGE_POOL_2D`` over the full map (the
larq-zoo form) and the classifier a 1×1 ``CONV_2D``; BN after the stem convs is folded into them.

LCE 0.16's optimised kernels compute same-zero 3×3 convs wrongly on maps smaller than 3 pixels;
those convs (small inputs only) use same-one padding plus an exact constant correction.

**int8** (``pokebnn_deployable(model, int8=True)``, used by ``convert(model, int8=True)``):
fake-quant ops derived from the model's own quantizers make TFLite emit int8 ops for the stem
convs, every SE and the classifier; see :func:`pokebnn_deployable` for how the ranges are chosen.

```python
from larq_poke.converters.rewrites.pokebnn import pokebnn_deployable
deployable_model = pokebnn_deployable(model)          # float32, numerically equivalent
convert(model)                                         # applies it automatically
```
"""

from __future__ import annotations

from typing import Optional, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.converters.rewrites.common import (
    ActivationQuant,
    MissingQuantizationInfoError,
    fake_quant as _fake_quant,
    fake_quant_weights as _fake_quant_weights,
    measured_range as _range,
    ConvSpec,
    as_numpy,
    binary_conv,
    bn_affine,
    calibration_images,
    channel_prelu,
    full_map_mean,
    padding_correction,
    quantized_kernel,
)
from larq_poke.converters.rewrites import register_rewrite
from larq_poke.keras_graph import node_inputs, rebuild_functional, same_output_size, same_paddings, walk_layers
from larq_poke.layers.base import GraphLayer
from larq_poke.layers.pokebnn import (
    DPReLU,
    PokeConvParts,
    PokeInitParts,
    pokeconv_names,
    pokeconv_parts,
    pokeinit_parts,
)
from larq_poke.layers.shortcuts import (
    ChannelShrink,
    ChannelTile,
    ChannelZeroPad,
    PaddedAveragePool2D,
)
from larq_poke.quantizers import (
    SignedActivationQuantizer,
    SignedWeightQuantizer,
    UnsignedActivationQuantizer,
)

__all__ = [
    "pokebnn_deployable",
    "DeployablePokeConv",
    "DeployablePokeInit",
    "DeployableHead",
    "FullMapAveragePool",
    "MissingQuantizationInfoError",
    "calibrate_activation_bounds",
    "is_pokebnn_head",
]

# A DPReLU positive slope of exactly 0 is replaced by this (sign kept) so that
# alpha_+ * PReLU(z, alpha_- / alpha_+) stays finite; the error is 1e-20 * |z|.
_TINY_SLOPE = 1e-20


def _dprelu_terms(dprelu: DPReLU):
    pos = as_numpy(dprelu.pos_slope).copy()
    tiny = np.abs(pos) < _TINY_SLOPE
    pos[tiny] = np.where(pos[tiny] < 0, -_TINY_SLOPE, _TINY_SLOPE)
    alpha = (as_numpy(dprelu.neg_slope) / pos).astype(np.float32)
    return as_numpy(dprelu.bias_x), pos, alpha, as_numpy(dprelu.bias_y)


# --- layers ------------------------------------------------------------------------------------
class FullMapAveragePool(GraphLayer):
    """Mean over H and W as one AVERAGE_POOL_2D over the whole map (larq-zoo's global pool),
    output (N, 1, 1, C) or, with ``flatten=True``, (N, C)."""

    def __init__(self, flatten: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.flatten = bool(flatten)

    def call(self, inputs, training=None):
        pooled = full_map_mean(inputs)
        if self.flatten:
            return tf.reshape(pooled, [-1, inputs.shape[-1]])
        return pooled

    def get_config(self):
        return {**super().get_config(), "flatten": self.flatten}


class _ShortcutPlan:
    """One PokeBNN shortcut (a list of shortcut layers) as TFLite-native ops."""

    def __init__(self, layers: Sequence):
        self.shrink = self.zeropad = self.tile = None
        self.pool = False
        for layer in layers:  # built shortcut layers
            if isinstance(layer, ChannelShrink):
                self.shrink = (layer.channels, layer.group)
            elif isinstance(layer, ChannelZeroPad):
                self.zeropad = layer.extra
            elif isinstance(layer, ChannelTile):
                self.tile = layer.repeats
            elif isinstance(layer, PaddedAveragePool2D):
                self.pool = True
            else:
                raise TypeError(f"unsupported shortcut layer {type(layer).__name__}")

    @staticmethod
    def _pool(x):
        paddings = [[0, 0]] + same_paddings(x.shape, (3, 3), (2, 2)) + [[0, 0]]
        return tf.nn.avg_pool2d(tf.pad(x, paddings), 3, 2, "VALID")

    def __call__(self, x):
        if self.shrink is not None:  # shrink first (fewer channels to pool)
            channels, group = self.shrink
            kept = x[..., : channels * group] if x.shape[-1] != channels * group else x
            if group == 1:
                x = kept
            else:
                h, w = int(x.shape[1]), int(x.shape[2])
                grouped = tf.reshape(kept, [-1, h * w, channels, group])
                x = tf.reshape(tf.reduce_mean(grouped, axis=-1), [-1, h, w, channels])
        if self.pool:  # pool before tile / zero-pad: they commute, and fewer channels
            x = self._pool(x)
        if self.tile:
            x = tf.concat([x] * self.tile, axis=-1)
        if self.zeropad:
            x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.zeropad]])
        return x


def _needs_same_one(conv, x_shape) -> bool:
    """LCE 0.16's optimised binary kernels (default and indirect BGEMM) compute a SAME
    zero-padded conv wrongly when the map is smaller than 3 pixels along an axis (measured:
    3x3 convs on 2x2 maps; the reference kernel is right). Such convs use same-one padding plus
    an exact constant correction instead. At 224x224 PokeBNN's smallest map is 7x7."""
    if conv.padding != "same" or max(conv.kernel_size) == 1:
        return False
    h, w = x_shape[1], x_shape[2]
    return h is not None and w is not None and min(int(h), int(w)) < 3


def _same_one_correction(sign_kernel: np.ndarray, x_shape, strides) -> np.ndarray:
    """(1, H', W', C) map of what +1 padding adds to the conv: the sum of the ±1 weights that
    fall on padded positions (exactly representable, so the correction is exact)."""
    paddings = same_paddings(x_shape, sign_kernel.shape[:2], strides)
    return padding_correction(sign_kernel, x_shape, paddings, strides)


class _SqueezeExcite:
    """PokeBNN's 4-bit SE with constant quantized weights; ``int8`` adds fake-quant ops.

    Returns ``6 · gate``: the hard sigmoid ``clip(v + 3, 0, 6) / 6`` is applied without its
    ``/ 6``, which the caller folds into its own constants. In float mode the ``+ 3`` joins
    fc2's bias, the clip becomes fc2's fused RELU6, and each quantizer's division by its scale
    is folded into the next conv's kernel (per input channel), so the SE is 14 TFLite ops
    instead of ~20 (the quantized levels are unchanged; the folded products differ from the
    original only by float rounding).
    """

    def __init__(self, fc1, fc2, name: str):
        self.q1 = ActivationQuant(fc1.input_quantizer, f"{name}/fc1 input")
        self.q2 = ActivationQuant(fc2.input_quantizer, f"{name}/fc2 input")
        self.w1 = quantized_kernel(fc1)
        self.b1 = as_numpy(fc1.bias)
        self.w2 = quantized_kernel(fc2)
        self.b2 = as_numpy(fc2.bias)

    @staticmethod
    def _unscaled(kernel: np.ndarray, quant: "ActivationQuant") -> np.ndarray:
        return (kernel / quant.scale.reshape(1, 1, -1, 1)).astype(np.float32)

    def __call__(self, x, int8: bool):
        squeezed = full_map_mean(x)
        if int8:
            h = _fake_quant(squeezed, *self.q1.int8_range())
            h = tf.nn.conv2d(h, _fake_quant_weights(self.w1), 1, "VALID") + self.b1
            h = tf.nn.relu(h)
            h = _fake_quant(h, *self.q2.int8_range())
            v = tf.nn.conv2d(h, _fake_quant_weights(self.w2), 1, "VALID") + self.b2
            v = _fake_quant(v, -3.0, 3.0)  # hard sigmoid saturates outside [-3, 3]
            return tf.clip_by_value(v + 3.0, 0.0, 6.0)
        levels = self.q1.integer_call(squeezed)
        if levels is None:
            h = tf.nn.conv2d(self.q1.float_call(squeezed), tf.constant(self.w1), 1, "VALID")
        else:
            h = tf.nn.conv2d(levels, tf.constant(self._unscaled(self.w1, self.q1)), 1, "VALID")
        h = tf.nn.relu(h + self.b1)
        levels = self.q2.integer_call(h, nonnegative=True)
        if levels is None:
            v = tf.nn.conv2d(self.q2.float_call(h), tf.constant(self.w2), 1, "VALID")
        else:
            v = tf.nn.conv2d(levels, tf.constant(self._unscaled(self.w2, self.q2)), 1, "VALID")
        return tf.nn.relu6(v + (self.b2 + np.float32(3.0)))


class DeployablePokeConv(GraphLayer):
    """A PokeConv unit (:func:`~larq_poke.layers.pokebnn.poke_conv`) in LCE-friendly form (see
    the module docstring).

    Built by :func:`pokebnn_deployable` from the unit's trained layers; not meant to be trained.
    """

    def __init__(self, source: Optional[PokeConvParts] = None, int8: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.int8 = bool(int8)
        if source is None:
            raise ValueError("DeployablePokeConv is built from a PokeConv unit (pokebnn_deployable)")
        # Keep plain facts, not the source layers (attributes holding layers would be tracked
        # as sublayers of this one).
        conv = source.conv
        self._conv_spec = ConvSpec(conv.filters, conv.kernel_size, conv.strides, conv.padding)
        kernel = quantized_kernel(source.conv)  # +-(max|w| + eps)/2 per output channel
        act = float(np.asarray(source.conv.input_quantizer(tf.constant([1.0])))[0])  # 1.5
        weight_scale = np.max(np.abs(kernel.reshape(-1, kernel.shape[-1])), axis=0)
        self._sign_kernel = np.where(kernel >= 0, 1.0, -1.0).astype(np.float32)
        a = (np.float32(act) * weight_scale).astype(np.float32)
        g_a, h_a = bn_affine(source.bn)
        b_x, pos, alpha, b_y = _dprelu_terms(source.dprelu)
        self._conv_scale = (a * g_a).astype(np.float32)
        self._conv_shift = (h_a - b_x).astype(np.float32)
        self._alpha = alpha
        g_b, h_b = bn_affine(source.bn_split)
        # The SE returns 6 x its gate (see _SqueezeExcite): the / 6 is folded in here.
        self._gate_scale = (g_b * pos / np.float32(6.0)).astype(np.float32)
        self._gate_shift_scale = (g_b * b_y / np.float32(6.0)).astype(np.float32)
        self._out_shift = h_b
        self._se = _SqueezeExcite(source.se_fc1, source.se_fc2, f"{source.name}/se")
        self._local = _ShortcutPlan(source.local_shortcut)
        self._block = (
            _ShortcutPlan(source.block_shortcut) if source.block_shortcut is not None else None
        )

    def build(self, input_shape):
        if self._block is not None:
            x_shape = tf.TensorShape(input_shape[0])
        else:
            x_shape = tf.TensorShape(input_shape)
        self._correction = None
        pad_values = 0.0
        if _needs_same_one(self._conv_spec, x_shape):
            pad_values = 1.0
            correction = _same_one_correction(
                self._sign_kernel, x_shape, tuple(self._conv_spec.strides)
            )
            self._correction = (-correction * self._conv_scale).astype(np.float32)
        self.conv = binary_conv(self._conv_spec, "conv", pad_values)
        self.conv.build(x_shape)
        self.conv.kernel.assign(self._sign_kernel)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if self._block is not None:
            x, r1 = inputs
        else:
            x, r1 = inputs, None
        y = self.conv(x) * self._conv_scale + self._conv_shift  # folds into LceBconv2d
        shortcut = self._local(x)
        if self._correction is not None:
            # Tiny maps only (see _needs_same_one). Added to the shortcut: a full-map constant
            # added to the conv output would be folded into its per-channel bias by LCE.
            shortcut = shortcut + self._correction
        z = y + shortcut
        if r1 is not None:
            z = z + self._block(r1)
        u = channel_prelu(z, self._alpha)
        s6 = self._se(x, self.int8)  # (N, 1, 1, C): 6 x the SE gate
        gate = s6 * self._gate_scale
        offset = self._out_shift - s6 * self._gate_shift_scale
        return u * gate + offset

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if self._block is not None else input_shape
        shape = tf.TensorShape(shape).as_list()
        stride = int(self.conv.strides[0])
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = same_output_size(shape[axis], stride)
        return tf.TensorShape(shape[:-1] + [self.conv.filters])


class DeployablePokeInit(GraphLayer):
    """PokeBNN's 8-bit stem with constant quantized weights, BN folded into the convs and
    DPReLU as PRELU + affine."""

    def __init__(
        self, source: Optional[PokeInitParts] = None, int8: bool = False, ranges=None, **kwargs
    ):
        super().__init__(**kwargs)
        if source is None:
            raise ValueError("DeployablePokeInit is built from a PokeInit stem (pokebnn_deployable)")
        if int8 and ranges is None:
            raise ValueError("int8 needs the measured output ranges of the two stem convs")
        self.int8 = bool(int8)
        self._ranges = ranges
        self._q1 = ActivationQuant(source.conv.input_quantizer, f"{source.name}/conv input")
        self._q2 = ActivationQuant(
            source.conv_group.input_quantizer, f"{source.name}/conv_group input"
        )
        g1, h1 = bn_affine(source.bn)
        bx1, p1, a1, by1 = _dprelu_terms(source.dprelu)
        self._w1 = (quantized_kernel(source.conv) * g1).astype(np.float32)
        self._b1 = (h1 - bx1).astype(np.float32)
        self._p1, self._by1 = p1, by1
        g2, h2 = bn_affine(source.bn_group)
        bx2, p2, a2, by2 = _dprelu_terms(source.dprelu_group)
        dw = quantized_kernel(source.conv_group, "depthwise_quantizer", "depthwise_kernel")
        self._multiplier = int(dw.shape[-1])
        self._w2 = (dw * g2.reshape(dw.shape[2], dw.shape[3])).astype(np.float32)
        self._b2 = (h2 - bx2).astype(np.float32)
        self._p2, self._by2 = p2, by2
        self._alphas = (a1, a2)
        self._filters = dw.shape[2] * dw.shape[3]

    def call(self, inputs, training=None):
        if self.int8:
            return self._int8_call(inputs)
        x = self._q1.float_call(inputs)
        y = tf.nn.conv2d(x, tf.constant(self._w1), 4, "VALID") + self._b1
        y = channel_prelu(y, self._alphas[0]) * self._p1 - self._by1
        y = self._q2.float_call(y)
        y = tf.nn.depthwise_conv2d(y, tf.constant(self._w2), [1, 1, 1, 1], "SAME") + self._b2
        return channel_prelu(y, self._alphas[1]) * self._p2 - self._by2

    def _int8_call(self, inputs):
        x = _fake_quant(inputs, *self._q1.int8_range())
        y = tf.nn.conv2d(x, _fake_quant_weights(self._w1), 4, "VALID") + self._b1
        y = _fake_quant(y, *self._ranges[0])
        y = channel_prelu(y, self._alphas[0]) * self._p1 - self._by1
        y = _fake_quant(y, *self._q2.int8_range())
        # Per-tensor weight range: a per-channel fake quant on the (3, 3, C, multiplier)
        # depthwise kernel would quantize along the multiplier axis, not the output channels.
        bound = float(np.max(np.abs(self._w2)))
        kernel = tf.quantization.fake_quant_with_min_max_vars(
            tf.constant(self._w2), -bound, bound, num_bits=8, narrow_range=True
        )
        y = tf.nn.depthwise_conv2d(y, kernel, [1, 1, 1, 1], "SAME") + self._b2
        y = _fake_quant(y, *self._ranges[1])
        return channel_prelu(y, self._alphas[1]) * self._p2 - self._by2

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = shape[axis] // 4
        return tf.TensorShape(shape[:-1] + [self._filters])


class DeployableHead(GraphLayer):
    """Global pool + PokeBNN's 8-bit classifier: AVERAGE_POOL_2D over the full map, the learned
    int8 input quantizer, the classifier as a 1×1 CONV_2D with the quantized kernel (larq-zoo's
    form; it also keeps the per-output-channel int8 weight axis where TFLite wants it)."""

    def __init__(self, dense=None, int8: bool = False, logit_range=None, **kwargs):
        super().__init__(**kwargs)
        if dense is None:
            raise ValueError("DeployableHead is built from a QuantDense (pokebnn_deployable)")
        if int8 and logit_range is None:
            raise ValueError("int8 needs the measured range of the logits")
        self.int8 = bool(int8)
        self._q = (
            ActivationQuant(dense.input_quantizer, f"{dense.name} input")
            if dense.input_quantizer is not None
            else None
        )
        self._kernel = quantized_kernel(dense)
        self._bias = as_numpy(dense.bias) if dense.use_bias else None
        self._logit_range = logit_range

    def call(self, inputs, training=None):
        x = full_map_mean(inputs)  # (N, 1, 1, C)
        kernel = self._kernel.reshape((1, 1) + self._kernel.shape)
        if self.int8:
            x = _fake_quant(x, *self._q.int8_range())
            kernel = _fake_quant_weights(kernel)
        else:
            x = self._q.float_call(x) if self._q is not None else x
            kernel = tf.constant(kernel)
        y = tf.nn.conv2d(x, kernel, 1, "VALID")  # the classifier as a 1x1 conv
        if self._bias is not None:
            y = y + self._bias
        if self.int8:
            y = _fake_quant(y, *self._logit_range)
        return tf.reshape(y, [-1, self._kernel.shape[-1]])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self._kernel.shape[-1]])


# --- the rewrite ---------------------------------------------------------------------------------
def is_pokebnn_head(layer) -> bool:
    """A ``QuantDense`` classifier with multi-bit signed inputs and weights (PokeBNN's and
    BiNeal's 8-bit head)."""
    return (
        isinstance(layer, lq.layers.QuantDense)
        and isinstance(layer.input_quantizer, SignedActivationQuantizer)
        and isinstance(layer.kernel_quantizer, SignedWeightQuantizer)
    )


def pokebnn_deployable(model, *, int8: bool = False, calibration_inputs=None):
    r"""The LCE-friendly, numerically equivalent form of a functional model with PokeBNN layers.

    ``PokeConv`` → :class:`DeployablePokeConv`, ``PokeInit`` → :class:`DeployablePokeInit`,
    ``GlobalAveragePooling2D`` + PokeBNN's 8-bit ``QuantDense`` → :class:`DeployableHead`;
    other layers are reused as they are. The argument is not modified.

    # Arguments
        model: a built functional ``tf.keras.Model`` (e.g. ``larq_poke.zoo.PokeBNN``).
        int8: add fake-quant ops so that LCE emits int8 ops for the stem convs, the SE units and
            the classifier. Ranges come from the model's own quantizers: the inputs of the
            stem convs, SE fc1 / fc2 and the classifier use the learned per-channel bounds
            (max over channels, since TFLite's activation grid is per tensor); weights are
            symmetric per output channel with the model's own max|w|. Two tensors have no
            quantizer in the model but must be int8 outputs in TFLite: the stem convs' outputs
            and the logits; their ranges are measured on ``calibration_inputs`` (default: 8
            seeded standard-normal images). The SE's fc2 output range is [-3, 3], where the
            hard sigmoid saturates. The stem's last output stays float: it feeds the binary
            convs' signs, and int8 rounding towards 0 would turn small negative values into +1.
        calibration_inputs: images for the two measured ranges (int8 only).

    # Raises
        MissingQuantizationInfoError: ``int8=True`` and a multi-bit activation quantizer still
            has the -1 sentinel bounds (the model carries no quantization information).
    """
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError("pokebnn_deployable needs a functional Keras model")
    if not int8:
        return _rebuild(model)
    _check_calibrated(model)
    images, checks = calibration_images(model, calibration_inputs, "PokeBNN", "the stem conv outputs and the logits")
    deployable = _rebuild(model, int8=True, ranges=_measure_int8_ranges(model, images))
    deployable._deployment_checks = checks
    return deployable


def _units(model):
    """``{last layer name: (kind, parts, original inputs)}`` of the PokeBNN units of ``model``
    and the set of every layer name inside a unit."""
    units, inside = {}, set()
    stem = pokeinit_parts(model)
    if stem is not None:
        units[stem.dprelu_group.name] = ("init", stem, [node_inputs(model, stem.conv)[0]])
        inside.update(f"{stem.name}.{part}" for part in ("conv", "bn", "dprelu", "conv_group", "bn_group", "dprelu_group"))
    for name in pokeconv_names(model):
        unit = pokeconv_parts(model, name)
        inputs = [node_inputs(model, unit.conv)[0]]
        if unit.block_shortcut is not None:
            if unit.block_shortcut:
                inputs.append(node_inputs(model, unit.block_shortcut[0])[0])
            else:  # the block input is added as it is
                inputs.append(node_inputs(model, model.get_layer(f"{name}.add_block"))[1])
        units[unit.bn_split.name] = ("conv", unit, inputs)
        inside.update(layer.name for layer in model.layers if layer.name.startswith(f"{name}."))
    return units, inside


def _rebuild(model, int8: bool = False, ranges=None):
    ranges = ranges or {}
    units, inside = _units(model)
    pending_pool = {}  # id(original pool output) -> new pool input, for the head

    def substitute(layer, args, inbound, output, new):
        if layer.name in units:
            kind, parts, unit_inputs = units[layer.name]
            xs = [new(t) for t in unit_inputs]
            if kind == "init":
                return DeployablePokeInit(parts, int8=int8, ranges=ranges.get(parts.name), name=parts.name)(xs[0])
            return DeployablePokeConv(parts, int8=int8, name=parts.name)(xs if len(xs) > 1 else xs[0])
        if layer.name in inside:
            return args[0]  # replaced as part of its unit, at the unit's last layer
        if isinstance(layer, tf.keras.layers.GlobalAveragePooling2D) and not layer.keepdims:
            pending_pool[id(output)] = args[0]
            return FullMapAveragePool(flatten=True, name=layer.name)(args[0])
        if is_pokebnn_head(layer) and id(inbound[0]) in pending_pool:
            head = DeployableHead(layer, int8=int8, logit_range=ranges.get(layer.name), name=layer.name)
            return head(pending_pool[id(inbound[0])])
        return None

    return rebuild_functional(model, substitute)


def _multibit_quantizers(model):
    stem = pokeinit_parts(model)
    if stem is not None:
        yield f"{stem.name}/conv", stem.conv.input_quantizer
        yield f"{stem.name}/conv_group", stem.conv_group.input_quantizer
    for name in pokeconv_names(model):
        unit = pokeconv_parts(model, name)
        yield f"{name}/se/fc1", unit.se_fc1.input_quantizer
        yield f"{name}/se/fc2", unit.se_fc2.input_quantizer
    if stem is None and not pokeconv_names(model):  # another family's 8-bit layers (BiNeal's)
        for path, layer in walk_layers(model):
            quantizer = getattr(layer, "input_quantizer", None)
            if isinstance(quantizer, (SignedActivationQuantizer, UnsignedActivationQuantizer)):
                yield path, quantizer
        return
    for layer in model.layers:
        if is_pokebnn_head(layer):
            yield layer.name, layer.input_quantizer


def _check_calibrated(model) -> None:
    missing = [
        name
        for name, quantizer in _multibit_quantizers(model)
        if not np.all(as_numpy(quantizer.bounds) >= 0)
    ]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise MissingQuantizationInfoError(
            f"int8 requested without quantization information: the multi-bit activation "
            f"bounds of {shown} are still the -1 sentinel (uncalibrated; the official training "
            "sets them at step 7500). Convert a trained model, or calibrate the bounds first "
            "(larq_poke.converters.rewrites.pokebnn.calibrate_activation_bounds)."
        )


def _measure_int8_ranges(model, images: np.ndarray) -> dict:
    """Ranges of the int8 tensors the model has no quantizer for (the stem conv outputs and the
    logits), measured with the float deployable form on ``images``."""
    float_model = _rebuild(model)
    ranges = {}
    for layer in float_model.layers:
        if isinstance(layer, DeployablePokeInit):
            stem_input = tf.keras.Model(float_model.inputs, layer.input)(images)
            x = layer._q1.float_call(stem_input)
            y1 = tf.nn.conv2d(x, tf.constant(layer._w1), 4, "VALID") + layer._b1
            y = layer._q2.float_call(channel_prelu(y1, layer._alphas[0]) * layer._p1 - layer._by1)
            y2 = tf.nn.depthwise_conv2d(y, tf.constant(layer._w2), [1, 1, 1, 1], "SAME")
            ranges[layer.name] = (_range(y1), _range(y2 + layer._b2))
        elif isinstance(layer, DeployableHead):
            ranges[layer.name] = _range(tf.keras.Model(float_model.inputs, layer.output)(images))
    return ranges


def calibrate_activation_bounds(model, images, batch_size: int = 8) -> None:
    """Set every multi-bit activation bound of a PokeBNN model from data, as the official
    training does once (at step 7500): per channel, the mean over batches of the batch's
    max |x|, gathered while the quantizers still pass through. A model without PokeBNN units
    gets the same for every layer's bounded input quantizer (BiNeal's 8-bit stem and head); a
    quantizer with one bound (``per_channel=False``) takes the batch's max |x| over all channels.

    For benchmarking the int8 conversion of untrained models; a trained model carries its
    bounds in its weights.
    """
    images = np.asarray(images, np.float32)
    quantizers = list(_multibit_quantizers(model))
    saved = {name: as_numpy(q.bounds) for name, q in quantizers}
    peaks = {name: [] for name, _ in quantizers}

    def probing(name, call):
        def probe(x):
            values = np.asarray(x)
            axes = tuple(range(values.ndim - 1))
            peaks[name].append(np.maximum(values.max(axis=axes), -values.min(axis=axes)))
            return call(x)

        return probe

    for name, quantizer in quantizers:
        quantizer.bounds.assign(np.full_like(saved[name], -1.0))
        quantizer.call = probing(name, quantizer.call)
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size], training=False)
    except Exception:
        for name, quantizer in quantizers:
            quantizer.bounds.assign(saved[name])
        raise
    finally:
        for _, quantizer in quantizers:
            del quantizer.call
    for name, quantizer in quantizers:
        batch_peaks = np.asarray(peaks[name])
        if not getattr(quantizer, "per_channel", True):
            batch_peaks = batch_peaks.max(axis=-1, keepdims=True)
        quantizer.bounds.assign(np.mean(batch_peaks, axis=0).astype(np.float32))


def _has_pokebnn_units(model) -> bool:
    return pokeinit_parts(model) is not None or bool(pokeconv_names(model))


register_rewrite(_has_pokebnn_units, pokebnn_deployable, name="pokebnn")
