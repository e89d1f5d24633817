"""Detection on BiNeal: :func:`BiNealCenterNet`, CenterNet (objects as points) with the paper's two
variants, and :func:`decode_centernet`, its peak-extraction decoding to boxes.

```python
from larq_poke.zoo.bineal_tasks import BiNealCenterNet, decode_centernet
model = BiNealCenterNet(num_classes=3, input_shape=(448, 672, 3))           # "ours"
both = BiNealCenterNet(num_classes=3, binary_head=True)                      # "ours*"
outputs = model.predict(images)                        # (N, 112, 168, 3 + 4)
detections = decode_centernet(outputs, num_classes=3)  # per image: [(class, score, x0, y0, x1, y1), ...]
```

**Output format.** One tensor at stride 4, (N, H/4, W/4, C + 4): channels ``[0, C)`` are the
class heatmap logits (a sigmoid gives the probability that a cell holds an object centre of
that class), ``[C, C+2)`` the box width and height and ``[C+2, C+4)`` the sub-cell offset
(x, y) of the centre, both in output cells (multiply by 4 for input pixels). Targets, the loss
(focal loss on the heatmap, L1 on size and offset) and mAP@0.5 are in
:mod:`larq_poke.train.tasks.detection`.
"""

from __future__ import annotations

from typing import List, Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.bineal import BN_EPSILON, BN_MOMENTUM, BiNealSign, bineal_block, bineal_conv
from larq_poke.no_autograph import without_autograph
from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo.bineal_tasks.backbone import check_precision, check_weights_file, output_conv, task_backbone
from larq_poke.zoo.loading import load_keras_weights
from larq_poke.zoo.zoo_model import ZooModel, check_num_classes, width_label

__all__ = ["BiNealCenterNet", "OUTPUT_STRIDE", "decode_centernet"]

#: The output map's stride: CenterNet's 4.
OUTPUT_STRIDE = 4
#: Initial heatmap bias: sigmoid(-2.19) = 0.1, CenterNet's prior so the focal loss starts small.
HEATMAP_PRIOR_BIAS = -2.19
# Neck widths of CenterNet's ResNet-18 (its three 2x upsampling stages), as multiples of 32·m.
_NECK = (256, 128, 64)
_HEAD = 64


def _bn(name):
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _eight_bit_conv(filters, kernel_size, name, use_bias):
    """A conv with 8-bit inputs (one learned bound per tensor: the int8 grid) and 8-bit weights:
    int8 once deployed."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(filters, kernel_size, padding="same", use_bias=use_bias,
                                     input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
                                     kernel_quantizer=SignedWeightQuantizer(bits=8), name=name)
    return without_autograph(conv)


def _real_conv(x, filters, kernel_size, name, eight_bit):
    """conv → BN → ReLU, with 8-bit inputs and weights (the binary model's neck and head) or in
    float (the counterpart, quantized after training)."""
    if eight_bit:
        conv = _eight_bit_conv(filters, kernel_size, f"{name}.conv", use_bias=False)
    else:
        conv = tf.keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}.conv")
    return tf.keras.layers.ReLU(name=f"{name}.relu")(_bn(f"{name}.bn")(conv(x)))


def _binary_unit(x, filters, name):
    """bineal conv 3×3 → BN → BiNealSign: a ±1 map (the binary head's hidden layer)."""
    x = bineal_conv(x, filters, 3, name=f"{name}.conv")
    return BiNealSign(name=f"{name}.act")(_bn(f"{name}.bn")(x))


def BiNealCenterNet(
    num_classes: int,
    width_multiplier: float = 2.0,
    *,
    binary_head: bool = False,
    skip_connections: bool = True,
    input_shape=(448, 672, 3),
    input_tensor=None,
    weights=None,
    backbone_weights=None,
    precision: str = "binary",
    name: Optional[str] = None,
    **backbone_options,
) -> tf.keras.Model:
    """CenterNet on BiNeal (m = 2 and 448×672 inputs by default, as the paper's).

    From the stride-32 map, three ×2 stages (nearest upsampling then a 3×3 conv, CenterNet's
    4×4 deconvs in a form every engine runs; 256, 128, 64 channels at m = 2) reach stride 4;
    three heads (3×3 conv, 64 channels → 1×1 output conv) give the heatmap, size and offset.
    With ``skip_connections`` (default) each stage first concatenates the backbone map of its
    stride (16, 8, 4), as CenterNet's DLA and FPN variants do: a small input's stride-32 map
    (2×2 at 64×64) cannot place centres alone. ``skip_connections=False`` is the plain
    ResNet-18 CenterNet layout of the paper.

    * ``binary_head=False`` (the paper's "ours": backbone binary): the neck, the head hidden
      layers (conv → BN → ReLU) and the 1×1 outputs are 8-bit convs (8-bit inputs with learned
      bounds, 8-bit weights; int8 ops with ``convert(..., int8=True)``).
    * ``binary_head=True`` ("ours*": backbone and head binary): each neck stage is a
      :func:`~larq_poke.layers.bineal.bineal_block` on the upsampled ±1 map and each head's
      hidden layer a binary conv → BN → sign; only the three 1×1 output convs are 8-bit (on ±1
      maps, exact in int8).
    * ``precision="int8"``: the real-valued counterpart (ResNet-18 backbone, the float neck and
      heads), for full-int8 deployment with :func:`larq_poke.converters.int8.convert_int8`.

    # Arguments
    num_classes: object classes (no background class), at least 1.
    width_multiplier, backbone_options: as :func:`larq_poke.zoo.BiNeal`.
    binary_head: the "ours*" variant (see above).
    skip_connections: concatenate the stride-16, 8 and 4 backbone maps into the neck.
    input_shape: (H, W, 3) with H and W multiples of 32; the output is (H/4, W/4, C + 4).
    weights: None or a Keras weights file of this model.
    backbone_weights: None or a Keras weights file of a BiNeal classifier of the same width and
        options (``BiNeal(width_multiplier, ...)``, e.g. ``larq-poke train bineal``'s
        ``weights.h5``): the backbone starts from it, as the paper's (D9); the rest keeps its
        initialisation.
    """
    check_num_classes(num_classes, counted="object classes, no background")
    check_precision(precision)
    check_weights_file(weights)
    if binary_head and precision != "binary":
        raise ValueError("binary_head=True needs precision='binary' (the int8 counterpart is real-valued throughout).")
    inputs, features = task_backbone(precision, width_multiplier, input_shape=input_shape, input_tensor=input_tensor,
                                     backbone_weights=backbone_weights, **backbone_options)
    x = features[-1]
    eight_bit = precision == "binary"
    scale = width_multiplier / 2 if precision == "binary" else 1.0  # CenterNet-ResNet-18 widths at m = 2
    for stage, base in enumerate(_NECK):
        filters = int(base * scale)
        x = tf.keras.layers.UpSampling2D(2, interpolation="nearest", name=f"neck{stage + 1}.up")(x)
        if skip_connections:
            x = tf.keras.layers.Concatenate(name=f"neck{stage + 1}.concat")([x, features[-2 - stage]])
        if binary_head:
            x = bineal_block(x, filters, 1, name=f"neck{stage + 1}")
        else:
            x = _real_conv(x, filters, 3, f"neck{stage + 1}", eight_bit)
    head = int(_HEAD * scale)
    outputs = []
    for task, channels in (("heatmap", num_classes), ("size", 2), ("offset", 2)):
        if binary_head:
            out = output_conv(_binary_unit(x, head, f"{task}.hidden"), channels, 1, "binary", name=f"{task}.out")
        else:
            h = _real_conv(x, head, 3, f"{task}.hidden", eight_bit)
            out_conv = (_eight_bit_conv(channels, 1, f"{task}.out", use_bias=True) if eight_bit
                        else tf.keras.layers.Conv2D(channels, 1, name=f"{task}.out"))
            out = out_conv(h)
        outputs.append(out)
    y = tf.keras.layers.Concatenate(name="outputs")(outputs)
    variant = "-head" if binary_head else ""
    default = (f"bineal-centernet{variant}-{width_label(width_multiplier)}x" if precision == "binary"
               else "resnet18-centernet-int8")
    model = ZooModel(inputs, y, name=name or default)
    heatmap_out = model.get_layer("heatmap.out")
    if heatmap_out.use_bias:
        bias = heatmap_out.bias
        bias.assign(tf.fill(bias.shape, HEATMAP_PRIOR_BIAS))
    if weights is not None:
        load_keras_weights(model, weights)
    return model


def decode_centernet(
    outputs,
    num_classes: int,
    *,
    top_k: int = 100,
    score_threshold: float = 0.05,
    stride: int = OUTPUT_STRIDE,
) -> List[List[tuple]]:
    """Boxes from CenterNet outputs (N, h, w, C + 4): per image a list of
    ``(class, score, x0, y0, x1, y1)`` in input pixels (class 0-based, best score first).

    A cell is a peak when its sigmoid score is the maximum of its 3×3 neighbourhood (CenterNet's
    max-pool NMS); the ``top_k`` best peaks above ``score_threshold`` become boxes centred at
    (cell + offset) with the predicted size, all scaled by ``stride``."""
    outputs = np.asarray(outputs, np.float32)
    if outputs.ndim != 4 or outputs.shape[-1] != num_classes + 4:
        raise ValueError(f"expected outputs (N, h, w, num_classes + 4 = {num_classes + 4}), got shape {outputs.shape}; "
                         "does num_classes match the model's head?")
    heat = tf.sigmoid(outputs[..., :num_classes])
    peaks = tf.equal(heat, tf.nn.max_pool2d(heat, 3, 1, "SAME")).numpy()
    heat = heat.numpy()
    results = []
    for i in range(outputs.shape[0]):
        ys, xs, cs = np.nonzero(peaks[i] & (heat[i] >= score_threshold))
        scores = heat[i][ys, xs, cs]
        order = np.argsort(-scores, kind="stable")[:top_k]
        boxes = []
        for j in order:
            y, x, c = int(ys[j]), int(xs[j]), int(cs[j])
            w, h, dx, dy = outputs[i, y, x, num_classes:]
            cx, cy = (x + dx) * stride, (y + dy) * stride
            w, h = max(float(w), 0.0) * stride, max(float(h), 0.0) * stride
            boxes.append((c, float(scores[j]), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        results.append(boxes)
    return results
