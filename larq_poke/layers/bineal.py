"""BiNeal's building blocks in their training ("over-parameterized") form.

BiNeal (Nie et al., DJI, arXiv 2202.03716: "binary weights and no real-valued activations") keeps
every activation of its binary body at 1 bit: a block takes ±1 maps and emits ±1 maps, and every
learnable gain term folds into per-channel thresholds at inference
(:func:`larq_poke.converters.fold_bineal`). No official code exists; the choices below are the
project's (``../specs/bineal.md`` D1, D4, D5), made so that every term folds exactly:

* :class:`BiNealWeight`: the weight terms, w_b = k · λ ⊙ sign(α ⊙ w). α is trainable per output
  channel, per (input, output) pair or per element and enters only through the sign
  (straight-through gradient, |α w| ≤ 1); λ is per output channel, k one scalar per conv. At
  inference α disappears into the stored signs and k · λ into the following affine.
* :class:`BiNealSign`: the activation terms before each sign,
  ``sign(b1 + PReLU_β(x + b0) − τ)`` with per-channel b0, b1, τ and a PReLU slope β kept
  positive by a constraint, so the map is increasing in every channel and collapses to one
  threshold. Forward, only the threshold matters; the terms shape the straight-through gradient
  window (ReActNet's RSign / RPReLU roles).
* :func:`bineal_block`: main path binary 3×3 conv (stride s) → BN → BiNealSign → binary 3×3 conv
  → BN; skip path binary conv (1×1 by default, ``skip_kernel=3`` for the "BOLD"-like variant,
  stride s) → BN, on every block; optionally both branches quantized to 4 bits
  (:class:`BranchQuantizer`, D6); add → BN → BiNealSign. Binary convs pad with +1
  (``pad_values=1``), the padding LCE's bit-packed kernels use, so the trained and the
  deployed arithmetic are the same integers.

```python
import tensorflow as tf
from larq_poke.layers.bineal import BiNealSign, bineal_block
x = tf.keras.Input((32, 32, 64))
y = bineal_block(BiNealSign(name="in_sign")(x), 128, strides=2, name="stage2.block1")
tf.keras.Model(x, y).summary()   # stage2.block1.conv1, .bn1, .act1, .conv2, ... .act2
```
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import List, Optional

import larq as lq
import tensorflow as tf

from larq_poke.keras_graph import quiet_larq_warnings
from larq_poke.layers.base import GraphLayer
from larq_poke.no_autograph import without_autograph
from larq_poke.serialization import register_serializable

__all__ = [
    "ALPHA_GRANULARITIES",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "BiNealBlockParts",
    "BranchQuantizer",
    "BiNealSign",
    "BiNealWeight",
    "MinValue",
    "PACKING",
    "bineal_block",
    "bineal_block_names",
    "bineal_block_parts",
    "bineal_conv",
]

#: α granularities: per output channel (N), per (input, output) pair (N × C), per element.
ALPHA_GRANULARITIES = ("channel", "pair", "element")
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
#: The smallest PReLU slope the training constraint allows (monotonic, never flat).
MIN_SLOPE = 1e-3
#: LCE packs 32 channels into one word: the zoo's BiNeal widths fill whole words.
PACKING = 32

# The parts of a block, in graph order (layer name = f"{block}.{part}").
BLOCK_PARTS = ("conv1", "bn1", "act1", "conv2", "bn2", "skip", "skip_bn", "add", "bn3", "act2")


@register_serializable
class MinValue(tf.keras.constraints.Constraint):
    """Keeps a weight at or above ``min_value`` after every optimizer step (BiNeal's positive
    PReLU slopes)."""

    def __init__(self, min_value: float = MIN_SLOPE):
        self.min_value = float(min_value)

    def __call__(self, w):
        return tf.maximum(w, tf.cast(self.min_value, w.dtype))

    def get_config(self):
        return {"min_value": self.min_value}


@register_serializable
class BiNealWeight(lq.quantizers.Quantizer):
    r"""BiNeal's weight terms as a Larq kernel quantizer: \(w_b = k\,\lambda \odot
    \mathrm{sign}(\alpha \odot w)\).

    ```python
    conv = lq.layers.QuantConv2D(64, 3, input_quantizer="ste_sign",
                                 kernel_quantizer=BiNealWeight("pair"), kernel_constraint="weight_clip",
                                 pad_values=1.0, padding="same", use_bias=False)
    ```

    The quantized kernel is ±|kλ_n| in every output channel n, the form LCE binarizes. α only
    enters through the sign and gets the straight-through gradient (as w does: both pass where
    |α w| ≤ 1); λ (per output channel) and k (one scalar) get exact gradients. All start at 1.
    α is kept in [−1, 1] and :func:`bineal_conv` clips the latent weights to [−1, 1] (Larq's
    ``weight_clip``), so |α w| ≤ 1 and no weight loses its gradient for good (without the clips
    α drifts above 1 in training and strands weights outside the window: docs/bineal.md).

    # Arguments
    alpha: ``"channel"`` (one α per output channel), ``"pair"`` (per input × output channel) or
        ``"element"`` (one per kernel element).
    """

    precision = 1
    #: α, λ and k are training-only: the stored kernel is sign(α ⊙ w), k·λ folds into the BN.
    folds_at_inference = True

    def __init__(self, alpha: str = "channel", **kwargs):
        if alpha not in ALPHA_GRANULARITIES:
            raise ValueError(
                f"alpha must be one of {', '.join(ALPHA_GRANULARITIES)}, got {alpha!r}."
            )
        self.alpha_granularity = alpha
        super().__init__(**kwargs)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        if len(shape) != 4 or None in shape:
            raise ValueError(f"BiNealWeight needs a static 4-D conv kernel, got {shape}.")
        cin, cout = shape[2], shape[3]
        alpha_shape = {"channel": (cout,), "pair": (cin, cout), "element": tuple(shape)}[
            self.alpha_granularity
        ]
        # |α| ≤ 1 (only its sign reaches the forward pass): with clipped latent weights the
        # straight-through window |α w| ≤ 1 stays open for every weight
        self.alpha = self.add_weight(name="alpha", shape=alpha_shape, initializer="ones",
                                     constraint=lq.constraints.WeightClip(1.0))
        self.scale = self.add_weight(name="lambda", shape=(cout,), initializer="ones")
        self.k = self.add_weight(name="k", shape=(), initializer="ones")
        super().build(input_shape)

    def call(self, inputs):
        alpha = tf.cast(self.alpha, inputs.dtype)
        signs = lq.quantizers.ste_sign(alpha * inputs)
        return signs * tf.cast(self.k * self.scale, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha_granularity}


@register_serializable
class BiNealSign(GraphLayer):
    r"""BiNeal's activation terms and sign: \(\mathrm{sign}(b_1 + \mathrm{PReLU}_\beta(x + b_0)
    - \tau)\), per channel, with sign(0) = +1.

    ```python
    y = BiNealSign(name="act")(x)     # ±1, same shape as x
    ```

    β starts at 0.25 and is kept ≥ 1e-3 by a constraint (:class:`MinValue`), b0, b1, τ start at
    0. The gradient is straight-through where the sign's argument is within [-1, 1]. Because the
    map is increasing in x for β > 0, the output bit is ``x ≥ θ`` for one threshold θ per channel
    (:func:`larq_poke.converters.rewrites.bineal.sign_threshold`).
    """

    #: b0, β, b1 and τ are training-only: they fold into the threshold of the BN before.
    folds_at_inference = True

    def build(self, input_shape):
        channels = int(tf.TensorShape(input_shape)[-1])
        self.b0 = self.add_weight(name="b0", shape=(channels,), initializer="zeros")
        self.slope = self.add_weight(
            name="slope",
            shape=(channels,),
            initializer=tf.keras.initializers.Constant(0.25),
            constraint=MinValue(MIN_SLOPE),
        )
        self.b1 = self.add_weight(name="b1", shape=(channels,), initializer="zeros")
        self.tau = self.add_weight(name="tau", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        dtype = inputs.dtype
        z = inputs + tf.cast(self.b0, dtype)
        slope = tf.cast(self.slope, dtype)
        p = tf.nn.relu(z) - slope * tf.nn.relu(-z)
        return lq.quantizers.ste_sign(p + tf.cast(self.b1 - self.tau, dtype))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


@register_serializable
class BranchQuantizer(GraphLayer):
    r"""Optional INT4 of a block's branch outputs before the add (D6): symmetric fake quant with
    a learned per-layer bound b, \(q(x) = s \lfloor \mathrm{clip}(x, -b, b) / s + 1/2 \rfloor\),
    \(s = b / (2^{p-1} - 1)\) (levels −7..7 at 4 bits).

    ```python
    y = BranchQuantizer(bits=4, name="stage1.block1.main_q")(x)
    ```

    Straight-through for the rounding. The bound's gradient is LSQ's step gradient: ±1 where x is
    clipped, the rounding residual (round(x/s) − x/s)/L inside (L = 2^(p−1) − 1). It starts at 3
    (the branch outputs follow a BN). LCE has no INT4 add: the deployed block computes the same
    levels with float ops (:func:`~larq_poke.converters.fold_bineal`)."""

    def __init__(self, bits: int = 4, **kwargs):
        super().__init__(**kwargs)
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 2 <= bits <= 8:
            raise ValueError(f"BranchQuantizer needs integer bits, 2 <= bits <= 8, got {bits!r}.")
        self.bits = int(bits)

    @property
    def levels(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def build(self, input_shape):
        self.bound = self.add_weight(
            name="bound", shape=(), initializer=tf.keras.initializers.Constant(3.0),
            constraint=MinValue(1e-3),
        )
        super().build(input_shape)

    def call(self, inputs):
        bound = tf.cast(self.bound, inputs.dtype)
        step = bound / self.levels
        clipped = tf.clip_by_value(inputs, -bound, bound)
        scaled = clipped / step
        rounded = scaled + tf.stop_gradient(tf.floor(scaled + 0.5) - scaled)
        return rounded * step

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "bits": self.bits}


def bineal_conv(x, filters: int, kernel_size: int, strides: int = 1, *, alpha: str = "channel",
                dilation_rate: int = 1, name: str):
    """A BiNeal binary conv: ±1 input (``ste_sign``, idempotent on the ±1 maps it receives),
    :class:`BiNealWeight` kernel, SAME padding with +1, no bias; ``dilation_rate`` for the dilated
    convs of full-resolution networks (R2D2)."""
    with quiet_larq_warnings():
        conv = lq.layers.QuantConv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            pad_values=1.0,
            use_bias=False,
            input_quantizer="ste_sign",
            kernel_quantizer=BiNealWeight(alpha),
            kernel_constraint="weight_clip",  # with |α| ≤ 1: |α w| ≤ 1, so no weight starves
            kernel_initializer="glorot_normal",
            name=name,
        )
    return without_autograph(conv)(x)


def _bn(name):
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def bineal_block(
    x,
    filters: int,
    strides: int = 1,
    *,
    skip_kernel: int = 1,
    alpha: str = "channel",
    branch_bits: Optional[int] = None,
    name: str,
):
    """One BiNeal block on a ±1 map ``x``; returns a ±1 map with ``filters`` channels.

    Adds ``{name}.conv1``, ``.bn1``, ``.act1``, ``.conv2``, ``.bn2`` (main path), ``.skip``,
    ``.skip_bn`` (skip path), ``.add``, ``.bn3`` and ``.act2``; with ``branch_bits`` (4: the
    paper's INT4 add), ``.main_q`` and ``.skip_q`` (:class:`BranchQuantizer`) before the add.
    """
    if isinstance(skip_kernel, bool) or not isinstance(skip_kernel, numbers.Integral) or skip_kernel not in (1, 3):
        raise ValueError(f"skip_kernel must be 1 (BiNeal) or 3 (the BOLD-like variant), got {skip_kernel}.")
    h = bineal_conv(x, filters, 3, strides, alpha=alpha, name=f"{name}.conv1")
    h = _bn(f"{name}.bn1")(h)
    h = BiNealSign(name=f"{name}.act1")(h)
    h = bineal_conv(h, filters, 3, 1, alpha=alpha, name=f"{name}.conv2")
    h = _bn(f"{name}.bn2")(h)
    s = bineal_conv(x, filters, skip_kernel, strides, alpha=alpha, name=f"{name}.skip")
    s = _bn(f"{name}.skip_bn")(s)
    if branch_bits is not None:
        h = BranchQuantizer(branch_bits, name=f"{name}.main_q")(h)
        s = BranchQuantizer(branch_bits, name=f"{name}.skip_q")(s)
    y = tf.keras.layers.Add(name=f"{name}.add")([h, s])
    y = _bn(f"{name}.bn3")(y)
    return BiNealSign(name=f"{name}.act2")(y)


@dataclass
class BiNealBlockParts:
    """The layers of one :func:`bineal_block`, found by name in a model."""

    name: str
    conv1: object
    bn1: object
    act1: object
    conv2: object
    bn2: object
    skip: object
    skip_bn: object
    add: object
    bn3: object
    act2: object
    main_q: Optional[object] = None
    skip_q: Optional[object] = None


def bineal_block_names(model) -> List[str]:
    """Names of the BiNeal blocks of ``model`` (each block's ``.act2`` layer marks it), in graph
    order."""
    suffix = ".act2"
    return [
        layer.name[: -len(suffix)]
        for layer in model.layers
        if isinstance(layer, BiNealSign) and layer.name.endswith(suffix)
    ]


def bineal_block_parts(model, name: str) -> BiNealBlockParts:
    """The layers of block ``name``; ValueError naming a missing part."""
    parts = {}
    for part in BLOCK_PARTS:
        try:
            parts[part] = model.get_layer(f"{name}.{part}")
        except ValueError:
            raise ValueError(f"BiNeal block {name!r} has no layer {name}.{part}") from None
    for part in ("main_q", "skip_q"):
        try:
            parts[part] = model.get_layer(f"{name}.{part}")
        except ValueError:
            pass
    if ("main_q" in parts) != ("skip_q" in parts):
        raise ValueError(f"BiNeal block {name!r} quantizes one branch only; both or neither")
    return BiNealBlockParts(name=name, **parts)
