"""BiNeal's inference form: every gain term and batch norm folded into binary convs, per-channel
affines and thresholds (:func:`fold_bineal`), registered as the deployable rewrite of models with
:class:`~larq_poke.layers.bineal.BiNealSign` layers.

Per block (``../specs/bineal.md`` §1, §6, D7), with ``conv`` the integer output of a ±1 conv with
+1 padding and ``t`` the threshold of a :class:`BiNealSign` (its output bit is ``z ≥ t``):

* **main conv 1 → BN → sign.** With ``a = BN scale · k · λ`` and ``c`` the BN shift, the bit is
  ``a · conv + c ≥ t``. Channels with ``a < 0`` get their weights negated (the bit is then
  ``−conv ≥ (c − t) / a``); the threshold is snapped to the integer grid the conv can reach
  (values of the parity of its fan-in K), so the deployed conv is followed by one integer shift,
  ``conv − (u − 1)``, which is never 0: the comparison is exact. LCE turns conv → ADD → sign into
  an ``LceBconv2d`` that writes **bit-packed** output through per-channel thresholds.
* **main conv 2, skip conv → BN → add → BN → sign.** The last BN and the threshold are linear in
  the sum, so they fold into the two branch affines: ``main' = s₃a₂ · conv₂ + s₃c₂ + c₃ − t``,
  ``skip' = s₃aₛ · convₛ + s₃cₛ``; the block output is ``sign(main' + skip')``. Both convs write
  float through their fused multiplier and bias, the ADD is the block's only float op, and the
  sign becomes the ``LceQuantize`` of the next block's convs (an explicit sign where the
  consumer is not a binary conv).
* **α** disappears into the stored signs ``sign(α ⊙ w)``; **k · λ** into the affines.
* A standalone :class:`BiNealSign` (the stem's) becomes a shift of the batch norm before it (through
  a max pool, which commutes with it) or a per-channel ADD.

```python
from larq_poke.converters import fold_bineal
inference = fold_bineal(trained_model)          # same outputs in inference mode
```
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import List, Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.converters.rewrites import register_rewrite
from larq_poke.converters.rewrites.common import (
    ActivationQuant,
    ChannelAffine,
    ConvSpec,
    MissingQuantizationInfoError,
    as_numpy,
    binary_conv,
    bn_affine,
    check_bn_variance,
    calibration_images,
    fake_quant,
    fake_quant_weights,
    measured_range,
    quantized_kernel,
    shifted_batch_norm,
    weight_bounds,
)
from larq_poke.keras_graph import (
    consumers,
    node_inputs,
    node_output,
    producers,
    rebuild_functional,
    same_output_size,
)
from larq_poke.layers.base import GraphLayer
from larq_poke.layers.bineal import BiNealSign, BiNealWeight, bineal_block_names, bineal_block_parts
from larq_poke.serialization import register_serializable

__all__ = ["BinarySign", "DeployableBiNealStem", "FloatUnitNormalization", "QuantizationLevels", "Int8ConvUnit", "UntrainedModelError", "bineal_deployable", "fold_bineal", "sign_threshold"]


class UntrainedModelError(ValueError):
    """The model's batch norms still hold their initial statistics (never trained)."""


@register_serializable
class BinarySign(GraphLayer):
    """``x ≥ 0 ? +1 : −1``: a block's output sign where no binary conv consumes it.

    ``scalar=True`` (used where every consumer is a conv, e.g. an 8-bit conv on the ±1 map) writes
    ±1 as scalars, which LCE recognises as a sign: the conv before writes bit-packed output and an
    ``LceDequantize`` unpacks it, instead of a SELECT between two constant ±1 maps as large as the
    activation, stored in the file. Elsewhere (a global pool before an int8 classifier) the SELECT
    form keeps the pool in int8."""

    def __init__(self, scalar: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scalar = bool(scalar)

    def call(self, inputs):
        if self.scalar:
            one = tf.constant(1.0, inputs.dtype)
            return tf.where(inputs >= 0, one, -one)
        return tf.where(inputs >= 0, tf.ones_like(inputs), -tf.ones_like(inputs))

    def get_config(self):
        return {**super().get_config(), "scalar": self.scalar}

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


@register_serializable
class QuantizationLevels(GraphLayer):
    """``floor(clip(x, −L, L) + 1/2)``: the integer levels of a :class:`BranchQuantizer` whose
    input was divided by its step."""

    def __init__(self, levels: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(levels)

    def call(self, inputs):
        return tf.floor(tf.clip_by_value(inputs, -float(self.levels), float(self.levels)) + 0.5)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


@register_serializable
class FloatUnitNormalization(GraphLayer):
    """Keras' ``UnitNormalization`` (``x / max(‖x‖, 1e-6)``, as ``tf.math.l2_normalize``) in a
    form the converter keeps in float in an int8 file: ``x * rsqrt(max(sum(x * x), 1e-12))``.

    TFLite's ``L2_NORMALIZATION`` has a fixed output range, so after an int8 op the converter
    runs it in int8 without being asked, and the concatenation that joins it with other
    outputs becomes int8 too: R2D2's unit descriptors on a grid of 1/128 and its sigmoid maps
    on one of 2/255, where the Keras heads are float. Written with ``x * x`` rather than a
    square, the converter does not fuse it back into ``L2_NORMALIZATION``.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis if isinstance(axis, int) else [int(a) for a in axis]

    def call(self, inputs):
        squared = tf.reduce_sum(inputs * inputs, axis=self.axis, keepdims=True)
        return inputs * tf.math.rsqrt(tf.maximum(squared, 1e-12))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register_serializable
class FloatSigmoidConv(GraphLayer):
    """A float ``Conv2D(..., activation="sigmoid")`` with the sigmoid written as
    ``(1 + tanh(x / 2)) / 2``, so that an int8 file keeps what follows it in float.

    TFLite's ``LOGISTIC`` has a fixed output range, [0, 1]: the converter gives that range to the
    concatenation that joins it with other outputs, makes it int8 and quantizes them on it
    (R2D2's unit descriptors, joined with its two sigmoid maps, lost every negative component
    that way). ``1 / (1 + exp(−x))`` is turned back into ``LOGISTIC``; after the tanh form the
    MUL and ADD have no fixed range, and the concatenation stays float.
    """

    def __init__(self, conv=None, **kwargs):
        super().__init__(**kwargs)
        if conv is None:
            raise ValueError("FloatSigmoidConv is built by bineal_deployable(model, int8=True)")
        self._kernel = as_numpy(conv.kernel)
        self._bias = as_numpy(conv.bias) if conv.use_bias else np.zeros(self._kernel.shape[-1], np.float32)
        self._strides, self._padding = tuple(conv.strides), conv.padding.upper()
        self._dilations = tuple(conv.dilation_rate)

    def call(self, inputs):
        y = tf.nn.conv2d(inputs, self._kernel, self._strides, self._padding, dilations=self._dilations) + self._bias
        return 0.5 * tf.tanh(0.5 * y) + 0.5

    def compute_output_shape(self, input_shape):
        return _layer_conv_output_shape(self, input_shape)


# --- thresholds ---------------------------------------------------------------------------------
def sign_threshold(act: BiNealSign) -> np.ndarray:
    """Per-channel ``t`` with ``act(x) = +1 ⇔ x ≥ t`` (float64).

    ``b1 + PReLU_β(x + b0) − τ ≥ 0 ⇔ x ≥ P⁻¹(τ − b1) − b0`` with ``P⁻¹(y) = y`` for ``y ≥ 0`` and
    ``y / β`` otherwise; needs β > 0 (ValueError naming the channels otherwise).
    """
    b0, slope, b1, tau = (as_numpy(v).astype(np.float64) for v in (act.b0, act.slope, act.b1, act.tau))
    bad = np.flatnonzero(~(slope > 0))
    if bad.size:
        raise ValueError(
            f"{act.name}: PReLU slope β must be > 0 to fold into a threshold (the map must be "
            f"increasing in every channel); channels {bad[:8].tolist()} have β = "
            f"{slope[bad[:8]].tolist()}, which breaks monotonicity."
        )
    y = tau - b1
    return np.where(y >= 0, y, y / slope) - b0


def _signs_and_gain(conv) -> "tuple[np.ndarray, np.ndarray]":
    """The stored ±1 kernel ``sign(α ⊙ w)`` (sign(0) = +1) and the per-channel gain ``k · λ``."""
    quantizer = conv.kernel_quantizer
    if not isinstance(quantizer, BiNealWeight):
        raise TypeError(f"{conv.name}: expected a BiNealWeight kernel quantizer, got {type(quantizer).__name__}")
    latent = as_numpy(getattr(conv.kernel, "latent_variable", conv.kernel)).astype(np.float64)
    alpha = as_numpy(quantizer.alpha).astype(np.float64)
    signs = np.where(alpha * latent >= 0, 1.0, -1.0)
    gain = as_numpy(quantizer.k).astype(np.float64) * as_numpy(quantizer.scale).astype(np.float64)
    return signs, gain


def _affine(conv, bn) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """``bn(conv(x)) = a · (signs ⊛ x) + c``: (signs, a, c)."""
    signs, gain = _signs_and_gain(conv)
    scale, shift = (v.astype(np.float64) for v in bn_affine(bn))
    return signs, scale * gain, shift


def _snapped_shift(a, c, t, fan_in: int) -> "tuple[np.ndarray, np.ndarray]":
    """For ``bit = a·conv + c ≥ t`` on integer convs of parity ``fan_in``: per-channel weight flips
    (±1) and the shift ``−(u − 1)`` with ``bit = flip·conv − (u − 1) > 0``."""
    flip = np.where(a < 0, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (t - c) / a * flip  # flip·conv ≥ bound
    # a = 0: the bit is the constant (c ≥ t).
    bound = np.where(a == 0, np.where(c >= t, -np.inf, np.inf), bound)
    bound = np.clip(bound, -fan_in - 1, fan_in + 1)
    u = fan_in - 2 * np.floor((fan_in - bound) / 2)  # smallest reachable value ≥ bound
    return flip, -(u - 1)


# --- checks -------------------------------------------------------------------------------------
def _is_untrained(bn) -> bool:
    return bool(np.all(as_numpy(bn.moving_mean) == 0) and np.all(as_numpy(bn.moving_variance) == 1))


def _check_trained(bns: List, allow_untrained: bool) -> None:
    untrained = [bn.name for bn in bns if _is_untrained(bn)]
    if not untrained:
        return
    if len(untrained) < len(bns):
        raise UntrainedModelError(
            f"{len(untrained)} of {len(bns)} batch norms still hold their initial statistics "
            f"(moving mean 0, variance 1), e.g. {', '.join(untrained[:3])}: the model is partly "
            "trained or partly loaded; folding it would deploy wrong thresholds."
        )
    if not allow_untrained:
        raise UntrainedModelError(
            f"none of the model's {len(bns)} batch norms was ever trained (moving mean 0, "
            "variance 1 everywhere): folding would freeze initial thresholds. Train or load "
            "weights first, or pass allow_untrained=True (e.g. for latency measurements)."
        )


_SIGNS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign)  # ±1 in the forward pass


def _readers(model, tensor, users) -> list:
    """Names of the layers reading ``tensor``, plus "a model output" when it is one."""
    outputs = {id(t) for t in model.outputs}
    return [x.name for x in users.get(id(tensor), [])] + (["a model output"] if id(tensor) in outputs else [])


def _check_block(model, b, users) -> None:
    """ValueError naming the layer when block ``b`` is not wired or built as :func:`bineal_block`
    builds it: the fold assumes ±1 inputs, +1 padding and no bias in its convs, and replaces
    the whole block, so no layer outside it may read an inner tensor."""
    for conv in (b.conv1, b.conv2, b.skip):
        problems = []
        if conv.use_bias:
            problems.append("a bias")
        if not isinstance(conv.kernel_quantizer, BiNealWeight):
            problems.append(f"kernel quantizer {type(conv.kernel_quantizer).__name__} (the fold needs "
                            "BiNealWeight's λ · sign(α ⊙ w))")
        if not isinstance(conv.input_quantizer, _SIGNS):
            problems.append(f"input quantizer {type(conv.input_quantizer).__name__} (the fold needs ±1 inputs: "
                            "ste_sign)")
        if conv.padding == "same" and float(conv.pad_values) != 1.0:
            problems.append(f"pad_values={conv.pad_values} (the thresholds assume +1 padding)")
        if problems:
            raise ValueError(f"BiNeal block {b.name!r}: {conv.name} has {', '.join(problems)}; fold_bineal folds "
                             "blocks built by bineal_block.")
    made_by = producers(model)

    def sources(layer):
        return [made_by.get(id(t)) for t in node_inputs(model, layer)]

    main_end, skip_end = b.main_q or b.bn2, b.skip_q or b.skip_bn
    links = [(b.bn1, b.conv1), (b.act1, b.bn1), (b.conv2, b.act1), (b.bn2, b.conv2), (b.skip_bn, b.skip),
             (b.bn3, b.add), (b.act2, b.bn3)]
    if b.main_q is not None:
        links += [(b.main_q, b.bn2), (b.skip_q, b.skip_bn)]
    for layer, source in links:
        if sources(layer) != [source]:
            found = [getattr(x, "name", "an input") for x in sources(layer)]
            raise ValueError(f"BiNeal block {b.name!r}: {layer.name} reads {found}, not {source.name}: the block is "
                             "not wired as bineal_block wires it.")
    added = sources(b.add)
    if len(added) != 2 or {id(x) for x in added} != {id(main_end), id(skip_end)}:
        raise ValueError(f"BiNeal block {b.name!r}: {b.add.name} must add {main_end.name} and {skip_end.name}, "
                         f"found {[getattr(x, 'name', 'an input') for x in added]}.")
    if node_inputs(model, b.skip)[0] is not node_inputs(model, b.conv1)[0]:
        raise ValueError(f"BiNeal block {b.name!r}: {b.skip.name} must read the block input, as {b.conv1.name} does.")
    inner = [b.conv1, b.bn1, b.act1, b.conv2, b.bn2, b.skip, b.skip_bn, b.add, b.bn3]
    inner += [b.main_q, b.skip_q] if b.main_q is not None else []
    for layer in inner:
        readers = _readers(model, node_output(model, layer), users)
        if len(readers) != 1:
            raise ValueError(f"BiNeal block {b.name!r}: {layer.name}'s output is read by {readers}; inside a block "
                             "only the next layer of the block may read it (the fold replaces the whole block).")


def _check_finite(model) -> None:
    for weight in model.weights:
        if not np.all(np.isfinite(as_numpy(weight))):
            raise ValueError(f"weight {weight.name} holds NaN or infinite values; nothing to fold.")
    for layer in model.layers:
        if hasattr(layer, "moving_variance") and hasattr(layer, "epsilon"):  # every batch norm flavour
            check_bn_variance(layer)


# --- the fold -----------------------------------------------------------------------------------
def _deploy_conv(conv, signs: np.ndarray, name: str):
    spec = ConvSpec(conv.filters, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
    layer = binary_conv(spec, name, pad_values=1.0)
    layer.build(conv.input_shape)
    layer.set_weights([signs.astype(np.float32)])
    return layer


def _feeds_only_sign_convs(output, users, model_outputs) -> bool:
    """Every consumer binarizes its input with a plain sign (a binary conv's ste_sign)."""
    if any(output is t for t in model_outputs):
        return False
    readers = users.get(id(output), [])
    return bool(readers) and all(
        isinstance(layer, lq.layers.QuantConv2D) and isinstance(layer.input_quantizer, lq.quantizers.SteSign)
        for layer in readers
    )


def _standalone_bn(model, act, users) -> Optional[object]:
    """The BatchNormalization feeding standalone ``act`` directly or through max pools, each link
    used only by the next one; None otherwise."""
    tensor = node_inputs(model, act)[0]
    made_by = producers(model)
    while True:
        layer = made_by.get(id(tensor))
        if layer is None or len(users.get(id(tensor), [])) != 1:
            return None
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            return layer
        if not isinstance(layer, tf.keras.layers.MaxPool2D):
            return None
        tensor = node_inputs(model, layer)[0]


def fold_bineal(model, *, allow_untrained: bool = False):
    """The inference form of a BiNeal model (see the module docstring); the argument is not
    modified, and its eval-mode outputs are those of the result.

    ```python
    inference = fold_bineal(model)
    np.testing.assert_allclose(inference(x), model(x, training=False), atol=1e-4)
    ```

    # Raises
        UntrainedModelError: some batch norms hold their initial statistics (always an error), or
            all of them do and ``allow_untrained`` is False.
        ValueError: a BiNealSign's slope is not positive (the terms are not monotonic), a weight
            is not finite, a batch norm's moving variance + epsilon is not positive, the model is
            not a functional model with BiNealSign layers, or a block is not built and wired as
            :func:`~larq_poke.layers.bineal.bineal_block` makes it (a conv with a bias, zero
            padding, real-valued input or another kernel quantizer; a layer outside the block
            reading inside it).
    """
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError("fold_bineal needs a functional Keras model")
    blocks = [bineal_block_parts(model, name) for name in bineal_block_names(model)]
    acts = [layer for layer in model.layers if isinstance(layer, BiNealSign)]
    if not acts:
        raise ValueError(f"model {model.name!r} has no BiNealSign layer: nothing to fold")
    _check_finite(model)
    in_blocks = {id(getattr(b, part)) for b in blocks for part in ("act1", "act2")}
    standalone = [act for act in acts if id(act) not in in_blocks]
    users = consumers(model)
    outputs = list(model.outputs)
    stem_bns = {act.name: _standalone_bn(model, act, users) for act in standalone}
    bns = [getattr(b, part) for b in blocks for part in ("bn1", "bn2", "skip_bn", "bn3")]
    bns += [bn for bn in stem_bns.values() if bn is not None]
    _check_trained(bns, allow_untrained)

    for b in blocks:
        _check_block(model, b, users)
    replace = {}  # layer name -> function(args, new) -> tensor
    for b in blocks:
        replace.update(_block_substitutes(model, b, users, outputs))
    for act in standalone:
        replace.update(_standalone_substitutes(model, act, stem_bns[act.name], users, outputs))

    def substitute(layer, args, inbound, output, new):
        fn = replace.get(layer.name)
        return fn(args, new) if fn is not None else None

    folded = rebuild_functional(model, substitute)
    checks = [functools.partial(_float_work_note, blocks=len(blocks))]
    if bns and all(_is_untrained(bn) for bn in bns):  # allowed here: say so in the report
        checks.append(lambda report: (
            "BiNeal: untrained model (every batch norm holds its initial statistics), folded with "
            "its initial thresholds: the file is good for latency and op counts, not for accuracy"))
    folded._deployment_checks = tuple(checks)
    return folded


def _float_work_note(report, blocks: int) -> Optional[str]:
    """What float work the file keeps between binary convs, per BiNeal block (from the census)."""
    if not blocks:
        return None
    between = Counter(op["op"] for op in report.float_ops_between_binary_convs)
    expected = Counter({"ADD": blocks - 1})  # the last block's ADD feeds the head
    if between == expected:
        return (f"BiNeal: per block the only float work left is the branch ADD ({blocks} blocks: "
                f"{blocks - 1} ADDs between binary convs, the last block's feeds the head)")
    shown = ", ".join(f"{op} {n}" for op, n in sorted(between.items())) or "none"
    return (f"BiNeal: float ops between binary convs for {blocks} blocks: {shown} (more than the "
            "branch ADD per block: INT4 branch levels, or a block LCE did not fuse)")


def _finish(x, act_output, users, outputs, name):
    if _feeds_only_sign_convs(act_output, users, outputs):
        return x
    readers = users.get(id(act_output), [])
    scalar = (bool(readers) and not any(act_output is t for t in outputs)
              and all(isinstance(layer, tf.keras.layers.Conv2D) for layer in readers))
    return BinarySign(scalar=scalar, name=name)(x)


def _block_substitutes(model, b, users, outputs) -> dict:
    block_input = node_inputs(model, b.conv1)[0]
    # main conv 1 -> bn1 -> act1: bit-packed through a snapped threshold
    signs1, a1, c1 = _affine(b.conv1, b.bn1)
    t1 = sign_threshold(b.act1)
    fan_in1 = int(np.prod(signs1.shape[:3]))
    flip, shift1 = _snapped_shift(a1, c1, t1, fan_in1)
    conv1 = _deploy_conv(b.conv1, signs1 * flip, f"{b.name}.conv1")
    # main conv 2 and skip, the last BN and threshold folded into the branch affines
    signs2, a2, c2 = _affine(b.conv2, b.bn2)
    signs_s, a_s, c_s = _affine(b.skip, b.skip_bn)
    s3, c3 = (v.astype(np.float64) for v in bn_affine(b.bn3))
    t3 = sign_threshold(b.act2)
    conv2 = _deploy_conv(b.conv2, signs2, f"{b.name}.conv2")
    skip = _deploy_conv(b.skip, signs_s, f"{b.name}.skip")
    if b.main_q is None:
        main_path = [ChannelAffine(s3 * a2, s3 * c2 + c3 - t3, name=f"{b.name}.bn2")]
        skip_path = [ChannelAffine(s3 * a_s, s3 * c_s, name=f"{b.name}.skip_bn")]
    else:  # INT4 branches: the levels in float ops, then the last BN and threshold
        bounds = {q: float(as_numpy(q.bound)) for q in (b.main_q, b.skip_q)}
        for q, bound in bounds.items():
            if not bound > 0:
                raise ValueError(f"{q.name}: the INT4 branch bound must be positive, got {bound} (its "
                                 "constraint keeps it >= 1e-3 in training; was it set by hand?)")
        step_m, step_s = (bound / q.levels for q, bound in bounds.items())
        main_path = [
            ChannelAffine(a2 / step_m, c2 / step_m, name=f"{b.name}.bn2"),
            QuantizationLevels(b.main_q.levels, name=f"{b.name}.main_q"),
            ChannelAffine(s3 * step_m, c3 - t3, name=f"{b.name}.main_scale"),
        ]
        skip_path = [
            ChannelAffine(a_s / step_s, c_s / step_s, name=f"{b.name}.skip_bn"),
            QuantizationLevels(b.skip_q.levels, name=f"{b.name}.skip_q"),
            ChannelAffine(s3 * step_s, name=f"{b.name}.skip_scale"),
        ]
    act2_out = node_output(model, b.act2)

    def whole_block(args, new):
        x = new(block_input)
        h = ChannelAffine(shift=shift1, name=f"{b.name}.threshold1")(conv1(x))
        h, s = conv2(h), skip(x)
        for layer in main_path:
            h = layer(h)
        for layer in skip_path:
            s = layer(s)
        y = tf.keras.layers.Add(name=f"{b.name}.add")([h, s])
        return _finish(y, act2_out, users, outputs, f"{b.name}.sign")

    parts = ["conv1", "bn1", "act1", "conv2", "bn2", "skip", "skip_bn", "add", "bn3"]
    parts += ["main_q", "skip_q"] if b.main_q is not None else []
    inner = {getattr(b, part).name for part in parts}
    subs = {name: (lambda args, new: args[0]) for name in inner}
    subs[b.act2.name] = whole_block
    return subs


def _standalone_substitutes(model, act, bn, users, outputs) -> dict:
    t = sign_threshold(act)
    act_out = node_output(model, act)
    if bn is not None:
        shifted = shifted_batch_norm(bn, (-t).astype(np.float32))
        return {
            bn.name: lambda args, new: shifted(args[0]),
            act.name: lambda args, new: _finish(args[0], act_out, users, outputs, f"{act.name}.sign"),
        }
    affine = ChannelAffine(shift=-t, name=act.name)
    return {act.name: lambda args, new: _finish(affine(args[0]), act_out, users, outputs, f"{act.name}.sign")}


# --- int8 stem and classifier ---------------------------------------------------------------------
#: int8 range in which −1 and +1 are both exact (scale 1/127, zero point 128).
SIGN_RANGE = (-128.0 / 127.0, 1.0)


def _output_length(length, kernel: int, stride: int, padding: str, dilation: int = 1):
    """Keras' output length of a conv or pool along one axis (None stays None)."""
    if length is None:
        return None
    if padding.upper() == "SAME":
        return same_output_size(length, stride)
    return same_output_size(length - (kernel - 1) * dilation, stride)  # VALID: ceil of what fits


def _conv_output_shape(input_shape, window, strides, padding: str, dilations=(1, 1), filters=None) -> tf.TensorShape:
    """The NHWC output shape of a 2-D conv with ``filters`` outputs, or of a pool (``filters``
    None keeps the channels), over a ``window`` (height, width) with Keras' padding rules."""
    shape = tf.TensorShape(input_shape).as_list()
    for i in (0, 1):
        shape[i + 1] = _output_length(shape[i + 1], window[i], strides[i], padding, dilations[i])
    return tf.TensorShape(shape[:-1] + [shape[-1] if filters is None else int(filters)])


def _layer_conv_output_shape(layer, input_shape) -> tf.TensorShape:
    """The output shape of a rewrite layer's own conv: its ``_kernel``, ``_strides``,
    ``_padding`` and ``_dilations``."""
    return _conv_output_shape(input_shape, layer._kernel.shape[:2], layer._strides, layer._padding,
                              layer._dilations, layer._kernel.shape[-1])


@register_serializable
class DeployableBiNealStem(GraphLayer):
    """BiNeal's 8-bit stem for int8 TFLite: the input fake-quantized with its learned bound (per
    tensor), the conv (BiNeal's 7×7 / 2; the first conv of a dense-prediction model) with the
    8-bit weights times the BN scale (int8 per output channel), bias = (conv bias ×) BN scale +
    BN shift − the stem sign's threshold, the output fake-quantized to int8, then the max pool
    if the stem has one. Its sign is the next binary convs' ``LceQuantize``.

    The stem's output is read only by its sign, which is computed in integers exactly as the
    training form decides it (see :meth:`_integer_threshold`); int8 rounding, which would send
    (−step/2, 0) to the zero point and so to +1, cannot move a value across zero."""

    def __init__(self, conv=None, bn=None, pool=None, act=None, **kwargs):
        super().__init__(**kwargs)
        if conv is None or bn is None or act is None:
            raise ValueError("DeployableBiNealStem is built by bineal_deployable(model, int8=True)")
        self._input_range = ActivationQuant(conv.input_quantizer, f"{conv.name} input").int8_range()
        scale, shift = bn_affine(bn)
        self._kernel = (quantized_kernel(conv) * scale).astype(np.float32)
        conv_bias = as_numpy(conv.bias) * scale if conv.use_bias else 0.0
        self._bias = (conv_bias + shift - sign_threshold(act)).astype(np.float32)
        self._weight_bound = None
        self._strides, self._padding = tuple(conv.strides), conv.padding.upper()
        self._dilations = tuple(conv.dilation_rate)
        self._output_range = self._integer_threshold()
        self._pool = None if pool is None else (tuple(pool.pool_size), tuple(pool.strides), pool.padding.upper())

    def _integer_threshold(self):
        """Snap the bias to the int32 grid of the conv's accumulator and return an output range
        whose step is at most half a grid step: the output sign is then the training form's.

        With input step s and channel c's weight step w_c, int8 computes the integer sum A of
        level products, adds the int32 bias b_c = bias_c / (s w_c) and requantizes with the
        multiplier M_c = s w_c / output step. The training form's sign is ``A ≥ −bias_c / (s w_c)``
        (A is an integer, so ``A + floor(bias_c / (s w_c)) ≥ 0``), and with M_c ≥ 2 every nonzero
        integer stays nonzero after rounding: negative sums land below the zero point, the rest
        on it or above. An all-zero channel gets a nominal weight step (its levels stay 0)."""
        bound = weight_bounds(self._kernel)
        nonzero = bound > 1e-12
        bound = np.where(nonzero, bound, bound[nonzero].max() if nonzero.any() else 1.0).astype(np.float32)
        self._weight_bound = bound
        low, high = self._input_range
        grid = (np.float64(high) - np.float64(low)) / 255.0 * (bound.astype(np.float64) / 127.0)
        reach = np.prod(self._kernel.shape[:-1]) * 128.0 * 127.0  # |A| at most
        levels = np.clip(np.floor(self._bias.astype(np.float64) / grid), -reach - 1, reach + 1)
        self._bias = (levels * grid).astype(np.float32)
        step = grid.min() / 2.0
        return -128.0 * step, 127.0 * step

    def pre_pool(self, inputs):
        x = fake_quant(inputs, *self._input_range)
        kernel = fake_quant_weights(self._kernel, bound=self._weight_bound)
        y = tf.nn.conv2d(x, kernel, self._strides, self._padding, dilations=self._dilations) + self._bias
        return fake_quant(y, *self._output_range)

    def call(self, inputs, training=None):
        if self._pool is None:
            return self.pre_pool(inputs)
        size, strides, padding = self._pool
        return tf.nn.max_pool2d(self.pre_pool(inputs), size, strides, padding)

    def compute_output_shape(self, input_shape):
        shape = _layer_conv_output_shape(self, input_shape)
        return shape if self._pool is None else _conv_output_shape(shape, *self._pool)


def _is_int8_conv_on_signs(model, layer, signs) -> bool:
    from larq_poke.quantizers import SignedWeightQuantizer

    return (
        isinstance(layer, lq.layers.QuantConv2D)
        and layer.input_quantizer is None
        and isinstance(layer.kernel_quantizer, SignedWeightQuantizer)
        and layer.kernel_quantizer.bits == 8
        and len(node_inputs(model, layer)) == 1
        and id(node_inputs(model, layer)[0]) in signs
    )


@register_serializable
class Int8ConvUnit(GraphLayer):
    """An 8-bit conv of a dense-prediction model, with the BN and ReLU that follow it, as one int8
    conv: the input fake-quantized per tensor (with the conv's learned 8-bit input bound, or on
    ``input_range``: :data:`SIGN_RANGE` for a conv reading a ±1 map, where ±1 are exact), the
    8-bit weights times the BN scale (int8 per output channel), bias = conv bias × BN scale + BN
    shift, the ReLU, the output over its measured range.

    ``quantize_input=False``: the input is already on the int8 grid ``input_range`` (written by
    another unit, see :func:`_align_unit_ranges`), and no second fake quant is added. A channel
    whose weights are all (nearly) 0, e.g. behind a BN scale of 0, gets a weight scale just wide
    enough for its bias to fit TFLite's int32 bias (bias / (input scale × weight scale)); with
    max |w| as the range, such a bias overflowed and the channel's output was wrong.
    """

    def __init__(self, conv=None, bn=None, relu: bool = False, output_range=None, input_range=None,
                 quantize_input: bool = True, **kwargs):
        super().__init__(**kwargs)
        if conv is None or output_range is None:
            raise ValueError("Int8ConvUnit is built by bineal_deployable(model, int8=True)")
        if input_range is None:
            input_range = _unit_input_range(conv)
        self._input_range = tuple(input_range)
        self._quantize_input = bool(quantize_input)
        kernel = quantized_kernel(conv)
        bias = as_numpy(conv.bias) if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
        if bn is not None:
            scale, shift = bn_affine(bn)
            kernel, bias = kernel * scale, bias * scale + shift
        self._kernel, self._bias = kernel.astype(np.float32), bias.astype(np.float32)
        input_scale = (self._input_range[1] - self._input_range[0]) / 255.0
        fits_bias = 2.0 * 127.0 * np.abs(self._bias) / (input_scale * (2.0**31 - 1))  # a factor 2 to spare
        self._weight_bound = np.maximum(weight_bounds(self._kernel), fits_bias).astype(np.float32)
        self._strides, self._padding = tuple(conv.strides), conv.padding.upper()
        self._dilations = tuple(conv.dilation_rate)
        self._relu = bool(relu)
        self._output_range = output_range

    def float_call(self, inputs):
        x = fake_quant(inputs, *self._input_range) if self._quantize_input else inputs
        y = tf.nn.conv2d(x, fake_quant_weights(self._kernel, bound=self._weight_bound), self._strides, self._padding,
                         dilations=self._dilations) + self._bias
        return tf.nn.relu(y) if self._relu else y

    def call(self, inputs, training=None):
        return fake_quant(self.float_call(inputs), *self._output_range)

    def compute_output_shape(self, input_shape):
        return _layer_conv_output_shape(self, input_shape)


def _unit_input_range(conv) -> "tuple[float, float]":
    """The int8 grid of an 8-bit conv's learned input quantizer."""
    return ActivationQuant(conv.input_quantizer, f"{conv.name} input").int8_range()


def _align_unit_ranges(model, units, ranges, users) -> "tuple[dict, list]":
    """Int8 ranges for 8-bit convs that read another int8 unit's output directly.

    The converter merges two fake quants in a row: the reader's conv then reads the writer's
    int8 grid, but its bias is quantized for the reader's own grid (in CenterNet's heads the bias
    came out 2–3× too large). So when every reader is such a conv, the writer's output takes the
    readers' learned input grid (the widest, where they differ): exactly the rounding and
    clipping of the Keras model for the readers of that grid. The other readers take the writer's
    grid as it is, with no fake quant of their own, and a note says so. Between a writer and a
    reader with a layer in between (CenterNet's nearest upsampling without skip connections)
    the converter inserts its own requantization, and nothing needs aligning; ``convert``'s bias
    check refuses any file where that does not hold. Returns
    ``({reader conv name: the writer's range}, notes)`` and updates ``ranges``.
    """
    made_by = producers(model)
    unit_convs = {chain[0].name: chain[0] for chain in units.values()}
    readers_of = {}  # writer name -> its unit-conv readers
    for conv in unit_convs.values():
        writer = made_by.get(id(node_inputs(model, conv)[0]))
        if writer is not None and writer.name in ranges:
            readers_of.setdefault(writer.name, []).append(conv)
    inherit, notes = {}, []
    for writer, convs in readers_of.items():
        grids = {_unit_input_range(conv) for conv in convs}
        everyone = _readers(model, node_output(model, model.get_layer(writer)), users)
        others = sorted(set(everyone) - {conv.name for conv in convs})
        if not others:
            ranges[writer] = max(grids, key=lambda grid: grid[1] - grid[0])  # signed grids: it holds the others
        why = (f"{writer} is also read by {others}" if others
               else f"the learned grids of {writer}'s readers differ, and one int8 tensor has one grid")
        for conv in convs:
            if _unit_input_range(conv) != tuple(ranges[writer]):
                inherit[conv.name] = tuple(ranges[writer])
                notes.append(f"int8: {conv.name} reads {writer}'s int8 grid {tuple(round(v, 4) for v in ranges[writer])}, "
                             f"not its own learned 8-bit grid: {why}")
    return inherit, notes


def _int8_conv_chain(model, conv, users):
    """(conv, bn, relu) of an 8-bit conv (8-bit input quantizer and weights) → [BN →] [ReLU]
    chain, each link used only by the next (bn / relu None where absent), or None."""
    from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer

    if not (
        isinstance(conv, lq.layers.QuantConv2D)
        and isinstance(conv.input_quantizer, SignedActivationQuantizer)
        and isinstance(conv.kernel_quantizer, SignedWeightQuantizer)
        and conv.kernel_quantizer.bits == 8
    ):
        return None
    chain, last = [conv], conv
    for kind in (tf.keras.layers.BatchNormalization, tf.keras.layers.ReLU):
        following = users.get(id(node_output(model, last)), [])
        if len(following) == 1 and isinstance(following[0], kind) and not (
                kind is tf.keras.layers.ReLU and (following[0].max_value is not None or following[0].negative_slope)):
            last = following[0]
            chain.append(last)
        else:
            chain.append(None)
    if any(isinstance(layer, BiNealSign) for layer in users.get(id(node_output(model, last)), [])):
        return None  # a stem: DeployableBiNealStem's
    return conv, chain[1], chain[2]


def _stem_parts(model, act):
    """(conv, bn, pool) of an 8-bit stem conv → BN → [max pool →] ``act`` chain (pool None
    without one), or None."""
    from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer

    made_by = producers(model)
    pool = made_by.get(id(node_inputs(model, act)[0]))
    if isinstance(pool, tf.keras.layers.BatchNormalization):
        pool, bn = None, pool
    else:
        bn = pool and made_by.get(id(node_inputs(model, pool)[0]))
    conv = bn and made_by.get(id(node_inputs(model, bn)[0]))
    if not (
        (pool is None or isinstance(pool, tf.keras.layers.MaxPool2D))
        and isinstance(bn, tf.keras.layers.BatchNormalization)
        and isinstance(conv, lq.layers.QuantConv2D)
        and isinstance(conv.input_quantizer, SignedActivationQuantizer)
        and isinstance(conv.kernel_quantizer, SignedWeightQuantizer)
    ):
        return None
    return conv, bn, pool


def _check_stem_readers(model, parts, users) -> None:
    """ValueError unless each tensor of the stem chain conv → BN → [pool →] sign is read only by
    the next layer of the chain: the int8 stem computes the sign's integer threshold, not the
    real values other readers would need."""
    conv, bn, pool, act = parts
    for layer in [x for x in (conv, bn, pool) if x is not None]:
        readers = _readers(model, node_output(model, layer), users)
        if len(readers) != 1:
            raise ValueError(
                f"int8: the 8-bit stem {conv.name} → {act.name} cannot become an int8 stem: {layer.name}'s output "
                f"is read by {readers}, and the int8 stem keeps only its sign. Read the stem through its "
                "BiNealSign only, or convert without int8.")


def _require_calibrated_bounds(conv) -> None:
    """Refuse an 8-bit conv whose learned input bounds still hold the uncalibrated -1."""
    if not np.all(as_numpy(conv.input_quantizer.bounds) >= 0):
        raise MissingQuantizationInfoError(
            f"int8 requested, but the 8-bit input bounds of {conv.name} are uncalibrated (-1): train "
            "the model with the bineal recipe, or set them with "
            "larq_poke.converters.rewrites.pokebnn.calibrate_activation_bounds(model, images)."
        )


def _share_concatenated_ranges(model, ranges: dict) -> None:
    """Give the int8 tensors that one CONCATENATION joins the union of their ranges: int8
    concatenation keeps one scale for all its inputs, so a narrower input range would clip the
    others (CenterNet's heatmap, size and offset outputs)."""
    made_by = producers(model)
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.Concatenate):
            continue
        names = [made_by[id(t)].name for t in node_inputs(model, layer) if id(t) in made_by]
        joined = [name for name in names if name in ranges]
        if len(joined) > 1:
            low = min(ranges[name][0] for name in joined)
            high = max(ranges[name][1] for name in joined)
            for name in joined:
                ranges[name] = (low, high)


def _int8_model(model, calibration_inputs):
    """The folded model with the 8-bit stem and classifier as int8 fake-quant forms."""
    from larq_poke.converters.rewrites.pokebnn import (
        DeployableHead,
        FullMapAveragePool,
        is_pokebnn_head,
    )

    folded = fold_bineal(model, allow_untrained=True)
    stems, heads = {}, {}  # stems: sign layer name -> (conv, bn, pool, sign layer)
    for act in [layer for layer in model.layers if isinstance(layer, BiNealSign)]:
        parts = _stem_parts(model, act)
        if parts is not None:
            stems[act.name] = (*parts, act)
    scores = {}  # 8-bit convs reading a ±1 map (dense-prediction heads)
    signs = {id(node_output(model, layer)) for layer in model.layers if isinstance(layer, BiNealSign)}
    users = consumers(model)
    units = {}  # last layer name -> (conv, bn, relu): 8-bit convs on real-valued maps
    stem_convs = {parts[0].name for parts in stems.values()}
    for layer in model.layers:
        if is_pokebnn_head(layer):
            heads[layer.name] = layer
        elif _is_int8_conv_on_signs(model, layer, signs):
            scores[layer.name] = layer
        elif layer.name not in stem_convs and (chain := _int8_conv_chain(model, layer, users)) is not None:
            units[(chain[2] or chain[1] or chain[0]).name] = chain
    for conv in [parts[0] for parts in stems.values()] + [chain[0] for chain in units.values()]:
        _require_calibrated_bounds(conv)
    for parts in stems.values():
        _check_stem_readers(model, parts, users)
    measured = [what for what, present in (("the logits", bool(heads)), ("the 8-bit convs' outputs", bool(units or scores)))
                if present]
    images, noise_checks = (calibration_images(model, calibration_inputs, "BiNeal", " and ".join(measured))
                            if measured else (None, ()))
    ranges = {}
    for name in list(heads) + list(scores):
        ranges[name] = measured_range(tf.keras.Model(folded.inputs, node_output(folded, folded.get_layer(name)))(images))
    for name in units:
        ranges[name] = measured_range(tf.keras.Model(model.inputs, node_output(model, model.get_layer(name)))(images))
    _share_concatenated_ranges(model, ranges)
    inherit, grid_notes = _align_unit_ranges(model, units, ranges, users)
    # In the folded model the stem's sign is gone (its threshold is in the shifted BN): replace
    # conv → BN → pool at the pool (at the BN without a pool).
    at_pool = {(parts[2] or parts[1]).name: parts for parts in stems.values()}
    inside = {layer.name for parts in stems.values() for layer in parts[:2]} - set(at_pool)
    inside |= {layer.name for chain in units.values() for layer in chain if layer is not None} - set(units)
    pending_pool = {}

    def substitute(layer, args, inbound, output, new):
        if layer.name in at_pool:
            conv, bn, pool, act = at_pool[layer.name]
            stem = DeployableBiNealStem(conv, bn, pool, act, name=act.name)
            return stem(new(node_inputs(folded, folded.get_layer(conv.name))[0]))
        if layer.name in inside:
            return args[0]
        if (type(layer) is tf.keras.layers.Conv2D and layer.activation is tf.keras.activations.sigmoid
                and layer.data_format == "channels_last" and layer.groups == 1):
            return FloatSigmoidConv(layer, name=layer.name)(args[0])
        if isinstance(layer, tf.keras.layers.UnitNormalization):
            return FloatUnitNormalization(layer.axis, name=layer.name)(args[0])
        if isinstance(layer, tf.keras.layers.GlobalAveragePooling2D) and not layer.keepdims:
            pending_pool[id(output)] = args[0]
            return FullMapAveragePool(flatten=True, name=layer.name)(args[0])
        if layer.name in units:
            conv, bn, relu = units[layer.name]
            unit = Int8ConvUnit(conv, bn, relu is not None, output_range=ranges[layer.name],
                                input_range=inherit.get(conv.name), quantize_input=conv.name not in inherit,
                                name=layer.name)
            return unit(new(node_inputs(folded, folded.get_layer(conv.name))[0]))
        if layer.name in scores:
            unit = Int8ConvUnit(layer, output_range=ranges[layer.name], input_range=SIGN_RANGE, name=layer.name)
            return unit(args[0])  # the folded model signs the map first (BinarySign)
        if layer.name in heads and id(inbound[0]) in pending_pool:
            head = DeployableHead(layer, int8=True, logit_range=ranges[layer.name], name=layer.name)
            return head(pending_pool[id(inbound[0])])
        return None

    deployable = rebuild_functional(folded, substitute)
    deployable._deployment_checks = folded._deployment_checks + noise_checks + tuple(
        (lambda report, note=note: note) for note in grid_notes)
    return deployable


@register_rewrite(BiNealSign, name="bineal")
def bineal_deployable(model, *, int8: bool = False, calibration_inputs=None):
    """:func:`fold_bineal` as the converter's rewrite. Models whose batch norms were never
    trained (a freshly built model, converted for a latency or op census) are folded too; a
    partly trained one is refused.

    ``int8=True``: the 8-bit stem (:class:`DeployableBiNealStem`) and classifier (PokeBNN's
    ``DeployableHead``) get fake-quant ops from their learned input bounds, so LCE emits them as
    int8 ops. The stem's output, read only by its sign, keeps the training form's signs
    (integer thresholds); the logit range (and that of a task model's 8-bit convs) is measured
    on ``calibration_inputs`` (default: 8 seeded standard-normal images). Raises
    ``MissingQuantizationInfoError`` when the bounds were never calibrated."""
    if int8:
        return _int8_model(model, calibration_inputs)
    return fold_bineal(model, allow_untrained=True)
