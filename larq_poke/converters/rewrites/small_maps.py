r"""Zero-padded binary convs on maps smaller than their kernel, in a form LCE converts correctly.

LCE 0.16 miscompiles a binary conv with SAME zero padding (``pad_values=0``) when a spatial side
of its input is smaller than the kernel (a 3×3 conv on the 2×2 or 1×1 maps that the last stage
of an ImageNet network reaches from 32×32 or 64×64 inputs): the file's outputs differ from Keras
by tens of units. With one padding (``pad_values=1``) the same conv converts exactly. So the
rewrite uses one padding and subtracts what the +1 at the padded positions add,

    conv(pad_0(q(x))) = conv(pad_{+1}(q(x))) − K,

K being the constant (1, H', W', C_out) map of the quantized weights that fall on padded
positions (exact in float32 for ±1 weights). K is added as :class:`ConstantAdd` (ADD_N). Such
maps are small, so the one float op per conv costs little; the converter's report lists it.
Applied to every model after the families' own rewrites, to any Larq ``QuantConv2D`` (including
the families' binary convs) with a binary input quantizer.

```python
from larq_poke.converters.rewrites.small_maps import small_map_deployable
model = small_map_deployable(model)     # the same function; LCE converts it correctly
```
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.converters.rewrites import register_rewrite
from larq_poke.converters.rewrites.common import ConstantAdd, as_numpy, padding_correction
from larq_poke.keras_graph import model_nodes, quiet_larq_warnings, rebuild_functional, same_paddings

__all__ = ["small_map_deployable", "needs_small_map_rewrite"]


def needs_small_map_rewrite(layer, input_shape) -> bool:
    """A binary ``QuantConv2D`` with SAME zero padding on an input with a side smaller than its
    (undilated) kernel."""
    if not isinstance(layer, lq.layers.QuantConv2D) or layer.padding != "same":
        return False
    if float(getattr(layer, "pad_values", 0.0)) != 0.0 or getattr(layer.input_quantizer, "precision", None) != 1:
        return False
    if any(d != 1 for d in layer.dilation_rate) or len(input_shape) != 4 or None in input_shape[1:3]:
        return False
    return any(int(n) < int(k) for n, k in zip(input_shape[1:3], layer.kernel_size))


def _targets(model):
    return {
        id(layer) for layer, inbound, _ in model_nodes(model)
        if len(inbound) == 1 and needs_small_map_rewrite(layer, tuple(inbound[0].shape))
    }


def small_map_deployable(model):
    """``model`` with every such conv as a one-padded conv plus the constant correction (see the
    module docstring); other layers are reused, the argument is not modified."""
    targets = _targets(model)

    def substitute(layer, args, inbound, out, new):
        if id(layer) not in targets:
            return None
        shape = tuple(int(d) for d in inbound[0].shape[1:])
        # Larq's own QuantConv2D config of the layer (subclasses such as BNext's fix their padding).
        config = {**lq.layers.QuantConv2D.get_config(layer), "padding": "same", "pad_values": 1.0}
        with quiet_larq_warnings():
            conv = lq.layers.QuantConv2D.from_config(config)
            conv.build((None,) + shape)
        conv.set_weights(layer.get_weights())
        latent = tf.constant(as_numpy(layer.kernel))
        kernel = np.asarray(layer.kernel_quantizer(latent) if layer.kernel_quantizer else latent, np.float32)
        paddings = same_paddings((None,) + shape, layer.kernel_size, layer.strides)
        correction = padding_correction(kernel, (1,) + shape, paddings, layer.strides)
        return ConstantAdd(-correction, name=f"{layer.name}.zero_pad_correction")(conv(args[0]))

    return rebuild_functional(model, substitute)


def _has_targets(model) -> bool:
    return bool(_targets(model))


register_rewrite(_has_targets, small_map_deployable, name="small_maps")
