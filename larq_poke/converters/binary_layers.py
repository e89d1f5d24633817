"""Which layers of a Keras model are binary, what the Larq Compute Engine converter will make of
each, and which ``LceBconv2d`` op of a converted flatbuffer each one became.

A *binary layer* is a Larq quantized layer (``QuantConv2D``, ``QuantDepthwiseConv2D``,
``QuantDense``, ...) whose input quantizer or weight quantizer has ``precision == 1`` (the
attribute Larq's own summary reads), or whose input comes from a standalone 1-bit quantizer layer
(``lq.quantizers.SteSign()`` used as a layer, ``Activation("ste_sign")``). Only the precision
attribute decides which layers are looked at; whether a layer can become an ``LceBconv2d`` is then
decided from what its quantizers actually compute, because LCE matches graph patterns, not names
(lce.md §1.3):

* the input must be binarized to exactly ±1 (``ste_sign``, ``approx_sign``, ``swish_sign``,
  ``SteSign(clip_value=...)``): a 0/1 output (``ste_heaviside``), a constant scale (±1.5) or a
  data-dependent scale (XNOR-style ``mean(|x|) * sign(x)``) leaves a float convolution;
* the quantized kernel must be ±s_c in every output channel (s_c ≠ 0, |w / s_c| within 0.5 % of 1,
  LCE's tolerance): float, ternary, multi-bit, or "1-bit" quantizers that do not binarize (a
  ``NoOp(precision=1)`` tag) leave a float convolution with float weights;
* only 2-D convolutions have a binary kernel: depthwise, dense, transposed, 1-D/3-D and separable
  layers run as float ops (wrapped in ``LceQuantize`` / ``LceDequantize``);
* grouped convolutions need a multiple of 32 input channels per group;
* on ``target="xcore"`` SAME padding with zeros (``pad_values=0``) is not fused.

The quantizers are probed numerically (the input quantizer on a ramp of values, the kernel
quantizer on the layer's own latent kernel), so custom quantizers are judged by what they do.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from larq_poke.converters.flatbuffer import BconvInfo, FlatbufferModel
from larq_poke.converters.fusability import KIND_ADVICE, REASONS, layer_kind, structure_reason
from larq_poke.keras_graph import walk_layers

__all__ = [
    "BinaryLayer",
    "LayerFate",
    "find_binary_layers",
    "match_binary_layers",
    "REASONS",
]

@dataclass
class BinaryLayer:
    """A binary Keras layer and LCE's expected treatment of it (``reason_code`` None: fuses)."""

    name: str
    layer_class: str
    kind: str
    input_quantizer: Optional[str]
    kernel_quantizer: Optional[str]
    reason_code: Optional[str] = None
    reason: Optional[str] = None
    signature: Dict[str, Any] = field(default_factory=dict)

    @property
    def expected_to_fuse(self) -> bool:
        return self.reason_code is None


@dataclass
class LayerFate:
    """What a binary Keras layer became in the flatbuffer."""

    layer: str
    layer_class: str
    kind: str
    input_quantizer: Optional[str]
    kernel_quantizer: Optional[str]
    became: Optional[str]  # "LceBconv2d", or None when the layer stayed a float op
    op_index: Optional[int] = None
    bconv: Optional[BconvInfo] = None
    reason_code: Optional[str] = None
    reason: Optional[str] = None

    @property
    def fused(self) -> bool:
        return self.became == "LceBconv2d"

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "class": self.layer_class,
            "kind": self.kind,
            "input_quantizer": self.input_quantizer,
            "kernel_quantizer": self.kernel_quantizer,
            "became": self.became,
            "op_index": self.op_index,
            "bconv": self.bconv.to_dict() if self.bconv else None,
            "reason_code": self.reason_code,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LayerFate":
        return cls(
            layer=data["layer"],
            layer_class=data["class"],
            kind=data["kind"],
            input_quantizer=data.get("input_quantizer"),
            kernel_quantizer=data.get("kernel_quantizer"),
            became=data.get("became"),
            op_index=data.get("op_index"),
            bconv=BconvInfo.from_dict(data["bconv"]) if data.get("bconv") else None,
            reason_code=data.get("reason_code"),
            reason=data.get("reason"),
        )


# --- finding binary layers --------------------------------------------------------------------
def _precision(quantizer) -> Optional[int]:
    if quantizer is None:
        return None
    return getattr(quantizer, "precision", None)


def _quantizer_name(quantizer) -> Optional[str]:
    if quantizer is None:
        return None
    if inspect.isfunction(quantizer):
        return quantizer.__name__
    return type(quantizer).__name__


def _inbound_sign_quantizer(layer):
    """A standalone 1-bit quantizer layer feeding ``layer`` (functional graphs only), or None."""
    import tensorflow as tf

    nodes = getattr(layer, "_inbound_nodes", None) or []
    if len(nodes) != 1:
        return None
    inbound = nodes[0].inbound_layers
    if isinstance(inbound, (list, tuple)):
        if len(inbound) != 1:
            return None
        inbound = inbound[0]
    candidate = inbound
    if isinstance(inbound, tf.keras.layers.Activation):
        candidate = inbound.activation
    if _precision(candidate) == 1:
        return candidate
    return None


def _kernel_quantizer_and_kernel(layer):
    for attr, weight in (
        ("kernel_quantizer", "kernel"),
        ("depthwise_quantizer", "depthwise_kernel"),
        ("pointwise_quantizer", "pointwise_kernel"),
    ):
        if hasattr(layer, attr):
            return getattr(layer, attr), getattr(layer, weight, None)
    return None, None


def _probe_input_quantizer(quantizer, channels: int) -> Tuple[Optional[str], Optional[str]]:
    """(reason_code, reason) for an activation quantizer, None when it produces exactly ±1."""
    import tensorflow as tf

    channels = max(int(channels or 8), 1)
    ramp = np.linspace(-3.0, 3.0, 4 * 4 * channels, dtype=np.float32).reshape(1, 4, 4, channels)
    ramp = ramp + np.float32(1e-3)  # keep off exactly zero
    outputs = []
    for factor in (1.0, 4.0):
        try:
            value = quantizer(tf.constant(ramp * factor))
        except Exception as err:  # an exotic quantizer that cannot be probed on a 4-D ramp
            return None, f"(input quantizer could not be probed: {type(err).__name__}: {err})"
        outputs.append(np.unique(np.round(np.asarray(value, dtype=np.float64), 6)))
    values = outputs[0]
    if set(values.tolist()) <= {-1.0, 1.0}:
        return None, None
    shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
    if set(values.tolist()) <= {0.0, 1.0}:
        return "input_not_sign", f"input quantizer outputs 0/1 ({shown}), not ±1"
    if len(values) == 2 and np.isclose(values[0], -values[1]):
        if not np.allclose(outputs[0], outputs[1]):
            return (
                "data_dependent_scale",
                f"activations are ±c with a data-dependent c ({shown} on one probe); LCE needs "
                "a plain sign",
            )
        return (
            "scaled_activations",
            f"activations are ±{values[1]:g}, not ±1; fold the scale into the weights or the BN "
            "that follows",
        )
    return "input_not_sign", f"input quantizer outputs {len(values)} levels ({shown}), not ±1"


def _probe_kernel(quantizer, kernel) -> Tuple[Optional[str], Optional[str]]:
    """(reason_code, reason) for a kernel quantizer on the layer's latent kernel; None when every
    output channel is ±s_c (LCE's check: s_c from the first element, |w/s_c| within 0.5 % of 1)."""
    if kernel is None:
        return "float_weights", "layer has no kernel"
    import tensorflow as tf

    try:
        latent = getattr(kernel, "latent_variable", kernel)  # a Larq QuantizedVariable's own weights
        values = np.asarray(quantizer(tf.constant(np.asarray(latent, np.float32))), dtype=np.float64)
    except Exception as err:
        return None, f"(kernel quantizer could not be probed: {type(err).__name__}: {err})"
    per_channel = values.reshape(-1, values.shape[-1])
    scale = np.abs(per_channel[0])
    if np.any(scale == 0):
        return "weights_not_binary", "some output channels have zero weights after quantization"
    ratio = np.abs(per_channel) / scale
    if np.all(np.abs(ratio - 1.0) <= 0.005):
        return None, None
    levels = np.unique(np.round(per_channel[:, 0], 6))
    shown = ", ".join(f"{v:g}" for v in levels[:5]) + (", ..." if len(levels) > 5 else "")
    return (
        "weights_not_binary",
        f"quantized kernel is not ±s per output channel (channel 0 takes {len(levels)} values: "
        f"{shown})",
    )


def _channels_in(layer) -> Optional[int]:
    try:
        return int(layer.input_shape[-1])
    except Exception:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            return int(kernel.shape[2]) * int(getattr(layer, "groups", 1) or 1)
        return None


def _output_hw(layer) -> Optional[Tuple[int, int]]:
    try:
        shape = layer.output_shape
        if isinstance(shape, list):
            return None
        if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
            return int(shape[1]), int(shape[2])
    except Exception:
        pass
    return None


def _conv_signature(layer, channels_in: Optional[int]) -> Dict[str, Any]:
    return {
        "filters": int(layer.filters),
        "kernel_size": tuple(int(k) for k in layer.kernel_size),
        "channels_in": channels_in,
        "strides": tuple(int(s) for s in layer.strides),
        "dilations": tuple(int(d) for d in layer.dilation_rate),
        "groups": int(getattr(layer, "groups", 1) or 1),
        "output_hw": _output_hw(layer),
    }


def find_binary_layers(model, *, target: str = "arm") -> List[BinaryLayer]:
    """The binary layers of ``model`` in layer order, each with LCE's expected treatment."""
    found = []
    for path, layer in walk_layers(model):
        input_quantizer = getattr(layer, "input_quantizer", None)
        kernel_quantizer, kernel = _kernel_quantizer_and_kernel(layer)
        is_quant_layer = hasattr(layer, "input_quantizer") or kernel_quantizer is not None
        if not is_quant_layer:
            continue
        standalone_sign = None
        if input_quantizer is None:
            standalone_sign = _inbound_sign_quantizer(layer)
        effective_input = input_quantizer if input_quantizer is not None else standalone_sign
        if _precision(effective_input) != 1 and _precision(kernel_quantizer) != 1:
            continue

        kind = layer_kind(layer)
        input_name = _quantizer_name(effective_input)
        if standalone_sign is not None:
            input_name = f"{input_name} (standalone layer)"
        entry = BinaryLayer(
            name=path,
            layer_class=type(layer).__name__,
            kind=kind,
            input_quantizer=input_name,
            kernel_quantizer=_quantizer_name(kernel_quantizer),
        )
        found.append(entry)
        channels_in = _channels_in(layer)
        if kind == "conv2d":
            entry.signature = _conv_signature(layer, channels_in)

        # Order of the checks: the first reason that alone prevents a binary conv wins.
        if kind != "conv2d":
            entry.reason_code, entry.reason = "not_accelerated", KIND_ADVICE[kind]
            continue
        if effective_input is None:
            entry.reason_code = "input_not_binarized"
            entry.reason = "no input quantizer: float activations reach a binary-weight conv"
            continue
        if _precision(effective_input) != 1:
            entry.reason_code = "input_not_binarized"
            entry.reason = (
                f"input quantizer {input_name} has precision {_precision(effective_input)}, "
                "not 1 bit"
            )
            continue
        code, text = _probe_input_quantizer(effective_input, channels_in)
        if code:
            entry.reason_code, entry.reason = code, text
            continue
        probe_note = text
        if kernel_quantizer is None:
            entry.reason_code = "float_weights"
            entry.reason = "no kernel quantizer: float weights (stored at 32 bits)"
            continue
        if _precision(kernel_quantizer) != 1:
            entry.reason_code = "weights_not_binary"
            entry.reason = (
                f"kernel quantizer {entry.kernel_quantizer} has precision "
                f"{_precision(kernel_quantizer)}, not 1 bit"
            )
            continue
        code, text = _probe_kernel(kernel_quantizer, kernel)
        if code:
            entry.reason_code, entry.reason = code, text
            continue
        probe_note = probe_note or text
        code, text = structure_reason(layer, channels_in, target=target)
        if code:
            entry.reason_code, entry.reason = code, text
            continue
        if probe_note:
            entry.reason = probe_note
    return found


# --- matching layers to ops -------------------------------------------------------------------
def _matches(signature: Dict[str, Any], bconv: BconvInfo) -> bool:
    if not signature:
        return False
    checks = [
        signature["filters"] == bconv.filters,
        tuple(signature["kernel_size"]) == bconv.kernel_size,
        tuple(signature["strides"]) == bconv.strides,
        tuple(signature["dilations"]) == bconv.dilations,
    ]
    if signature.get("channels_in"):
        checks.append(signature["channels_in"] == bconv.channels_in)
    if signature.get("output_hw") and len(bconv.output_shape) == 4:
        checks.append(tuple(signature["output_hw"]) == tuple(bconv.output_shape[1:3]))
    return all(checks)


def match_binary_layers(
    layers: Sequence[BinaryLayer], flatbuffer: FlatbufferModel
) -> Tuple[List[LayerFate], List[int]]:
    """Pair binary layers with ``LceBconv2d`` ops by order and geometry (filters, kernel, input
    channels, strides, dilation, output size). TFLite tensor names are truncated and fused, so
    they cannot be relied on. Layers expected to fuse are matched first, in layer order, each to
    the first unclaimed op with its geometry. Returns the fates and the op indices of binary convs
    no layer claimed.
    """
    unclaimed = list(flatbuffer.bconvs)
    claimed: Dict[int, BconvInfo] = {}
    for layer in layers:
        if not layer.expected_to_fuse:
            continue
        for bconv in unclaimed:
            if _matches(layer.signature, bconv):
                claimed[id(layer)] = bconv
                unclaimed.remove(bconv)
                break

    # A layer expected to stay float that nevertheless has a matching op left over: the file is
    # the truth, so it is reported as fused (with the expectation kept in the reason).
    for layer in layers:
        if layer.expected_to_fuse or not layer.signature:
            continue
        for bconv in unclaimed:
            if _matches(layer.signature, bconv):
                claimed[id(layer)] = bconv
                unclaimed.remove(bconv)
                break

    has_dequantize = flatbuffer.op_counts().get("LceDequantize", 0) > 0
    fates = []
    for layer in layers:
        bconv = claimed.get(id(layer))
        fate = LayerFate(
            layer=layer.name,
            layer_class=layer.layer_class,
            kind=layer.kind,
            input_quantizer=layer.input_quantizer,
            kernel_quantizer=layer.kernel_quantizer,
            became="LceBconv2d" if bconv else None,
            op_index=bconv.op_index if bconv else None,
            bconv=bconv,
            reason_code=layer.reason_code,
            reason=layer.reason,
        )
        if bconv is not None and not layer.expected_to_fuse:
            fate.reason_code = None
            fate.reason = f"(expected to stay float: {layer.reason}; but an LceBconv2d matches)"
        if bconv is None and layer.expected_to_fuse:
            fate.reason_code = "not_fused"
            fate.reason = (
                "sign input and ±s weights, but no LceBconv2d with this layer's geometry is in "
                "the flatbuffer: something between the sign and the conv (reshape, transpose, "
                "custom op, padding layer) or an unusual option hid the pattern"
                + ("; the file contains LceDequantize ops" if has_dequantize else "")
            )
        fates.append(fate)
    return fates, sorted(b.op_index for b in unclaimed)
