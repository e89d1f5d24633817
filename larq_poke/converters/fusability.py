"""LCE's rule for which binary layers become ``LceBconv2d`` ops, apart from what their quantizers
compute: the one rule the cost model (:mod:`larq_poke.cost`, its ``lce_binary`` column) and the
converter's layer report (:mod:`larq_poke.converters.binary_layers`) both ask.

```python
from larq_poke.converters.fusability import structure_reason
code, reason = structure_reason(layer, channels_in=64)   # (None, None): fuses once in ±1 form
```
"""

from __future__ import annotations

from typing import Optional, Tuple

__all__ = ["KIND_ADVICE", "REASONS", "layer_kind", "structure_reason"]

# reason_code -> short explanation (the per-layer reason adds the specifics).
REASONS = {
    "input_not_binarized": "input is not binarized (float activations)",
    "input_not_sign": "input quantizer does not produce ±1 (e.g. 0/1 heaviside or multi-level)",
    "scaled_activations": "binary activations carry a scale (±c with c != 1)",
    "data_dependent_scale": "binary activations carry a data-dependent scale (XNOR-style)",
    "float_weights": "weights are not quantized (float kernel)",
    "weights_not_binary": "quantized kernel is not ±s per output channel",
    "not_accelerated": "layer type has no binary kernel in LCE",
    "grouped_channels": "grouped conv with input channels per group not a multiple of 32",
    "same_zero_xcore": "SAME zero padding is not supported as a binary conv on xcore",
    "channels_first": "only NHWC (channels_last) convolutions are recognised",
    "declared_not_fusable": "the layer computes something between the sign and the conv",
    "not_fused": "looked fusable but no matching LceBconv2d was found",
}

KIND_ADVICE = {
    "depthwise": "binary depthwise convs run as float DEPTHWISE_CONV_2D",
    "dense": (
        "binary dense runs as float FULLY_CONNECTED; use Reshape -> 1x1 QuantConv2D -> Reshape"
    ),
    "conv_transpose": "binary transposed convs run as float TRANSPOSE_CONV",
    "separable": "the pointwise part of a separable conv does not see binarized input",
    "conv1d": "only 2-D convolutions have a binary kernel; use a QuantConv2D with a 1xk kernel",
    "conv3d": "only 2-D convolutions have a binary kernel",
    "other": "no binary kernel for this layer type",
}


def layer_kind(layer) -> str:
    """``"conv2d"``, ``"depthwise"``, ``"dense"``, ``"conv_transpose"``, ``"separable"``,
    ``"conv1d"``, ``"conv3d"`` or ``"other"``: what LCE can do with a quantized layer depends on it."""
    import tensorflow as tf

    layers = tf.keras.layers
    if isinstance(layer, (layers.Conv2DTranspose, layers.Conv3DTranspose)):
        return "conv_transpose"
    if isinstance(layer, layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        return "separable"
    if isinstance(layer, layers.Conv2D):
        return "conv2d"
    if isinstance(layer, layers.Conv1D):
        return "conv1d"
    if isinstance(layer, layers.Conv3D):
        return "conv3d"
    if isinstance(layer, layers.Dense):
        return "dense"
    return "other"


def structure_reason(layer, channels_in: Optional[int], *, target: str = "arm") -> Tuple[Optional[str], Optional[str]]:
    """LCE's structural rule for a binary layer, quantizers aside: ``(None, None)`` when the layer,
    once its quantizers are plain ±1 signs, becomes an ``LceBconv2d``; else ``(reason_code,
    reason)``. :mod:`larq_poke.cost` asks this for its ``lce_binary`` column, :func:`~larq_poke.converters.binary_layers.find_binary_layers` after probing the quantizers.

    2-D convolutions only, NHWC, grouped convs with a multiple of 32 input channels per group, no
    SAME zero padding on xcore, and a layer may declare ``lce_binary_convertible = False`` when
    its ``call`` puts something between the sign and the conv (e.g. explicit padding).
    """
    kind = layer_kind(layer)
    if kind != "conv2d":
        return "not_accelerated", KIND_ADVICE[kind]
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "channels_first", REASONS["channels_first"]
    groups = int(getattr(layer, "groups", 1) or 1)
    if groups > 1 and channels_in and (channels_in // groups) % 32 != 0:
        return "grouped_channels", (
            f"groups={groups} gives {channels_in // groups} input channels per group; LCE "
            "needs a multiple of 32 and silently keeps a float conv"
        )
    if getattr(layer, "lce_binary_convertible", True) is False:
        return "declared_not_fusable", (
            f"{type(layer).__name__} puts an op between the sign and the conv as built (e.g. "
            "explicit padding or sign(0) = 0); its deployable rewrite makes it fusable"
        )
    padding = getattr(layer, "padding", "valid")
    pad_values = float(getattr(layer, "pad_values", 0.0) or 0.0)
    if target == "xcore" and padding == "same" and pad_values == 0.0:
        return "same_zero_xcore", REASONS["same_zero_xcore"]
    return None, None
