r"""BNext in the form the Larq Compute Engine optimises: the deployable rewrite.

BNext's binary convs (:class:`~larq_poke.layers.bnext.BNextBinaryConv2D`) pad the *binarized*
input with zeros on all four sides, as PyTorch does. For stride 1 that is Larq's same-zero
padding and LCE fuses it. For stride 2 TF's "same" pads only bottom / right on even inputs, so the
layer binarizes, pads (1, 1) explicitly and convolves VALID; the PAD between the sign and the conv
hides the pattern from LCE, which then emits a float conv behind ``LceDequantize``.

**The strided conv, exactly.** On an even map (H, W) a 3×3 / 2 conv with symmetric padding
reads input rows 2i − 1 … 2i + 1: the bottom / right padding is never read. So

    conv(pad_0^{(1,1)}(sign x)) = conv_VALID(pad_0^{(1,0)}(sign x))

with one padded row on top and one column on the left only (in general: the paddings needed so
that a VALID conv yields the same output grid). The rewrite pads the *real-valued* input with
+1 there instead (PAD before the sign: ``sign(1) = +1``) and subtracts the constant map of what
those +1 add, the sum of the ±1 weights that fall on padded positions (exact in float32):

    conv(pad_0(sign x)) = conv_VALID(sign(pad_{+1}(x))) − K,

and LCE sees PAD → ``LceQuantize`` → ``LceBconv2d`` (VALID). K sits on the first output row and
column only. It is added after BN_1 as ``−g₁·K`` (g₁ = γ/√(σ²+ε)), so BN_1 still folds into the
bconv's output transform: one PAD and one ADD_N per strided conv. On odd maps TF's "same" equals
torch's symmetric padding and the conv becomes a same-zero ``QuantConv2D`` (no PAD, no ADD).

**The stem** pads (1, 1) and runs a 3×3 / 2 VALID float conv; on even maps its bottom / right
padding is never read either, and the rewrite pads (1, 0) instead. Same function, but LCE 0.16's
converter no longer merges the PAD into a SAME ``CONV_2D`` (which pads (0, 1) on even maps and
shifts the grid). The correction is an ADD_N, not an ADD: see :class:`ConstantAdd`.

**The units' float glue.** The mix ``M = s·X + (1 − s)·P`` only feeds the SE, which only needs
its spatial mean: ``GAP(M) = s·GAP(X) + (1 − s)·GAP(P)`` (:class:`MixedMeans`: two full-map
pools and 1×1 arithmetic instead of 2 MUL + 1 ADD on the whole map). BN_2 follows a product with
the (N, 1, 1, C) attention, ``BN_2(a ⊙ P [⊙ R]) = ((g₂·a) ⊙ P [⊙ R]) + h₂``: its scale moves
onto the attention and only the shift stays at full resolution (:class:`ChannelAffine`). For
BNext-T that takes the full-resolution elementwise ops from 9.52 to 5.52 per binary conv. Both are
the same function up to float rounding.

**The move biases.** ``sign(x + b)`` needs ``x + b`` at full resolution, one ADD per binary conv.
Where ``x`` is a unit's output ``(BN_2 shift) + residual`` or the stem's BN, ``b`` joins that
shift for free and the tensor carries ``x + b``; the other consumers of ``x`` undo it for free
(the next residual ADD's own BN_2 shift, the SE mean's 1×1 arithmetic, a second move's bias).
Moves whose input also feeds a PReLU or a pool (the ELM units) stay ADDs (see :class:`_MoveFolds`).
For BNext-T: 5.52 to 4.90 ops per binary conv. Same function up to float rounding.

Stride-1 convs are left as they are (LCE already fuses them). Only convs with ``zero_sign=1``
(Larq / LCE: sign(0) = +1) are rewritten: LCE has no sign(0) = 0.

```python
from larq_poke.converters.rewrites.bnext import bnext_deployable
deployable_model = bnext_deployable(model)            # numerically equivalent
convert(model)                                         # applies it automatically
```
"""

from __future__ import annotations


import numpy as np
import tensorflow as tf

from larq_poke.converters.rewrites.common import (
    ChannelAffine,
    ConstantAdd,
    ConvSpec,
    as_numpy,
    binary_conv,
    bn_affine,
    full_map_mean,
    padding_correction,
    shifted_batch_norm,
)
from larq_poke.converters.rewrites import register_rewrite
from larq_poke.keras_graph import consumers as graph_consumers
from larq_poke.keras_graph import node_inputs, node_output, rebuild_functional, walk_layers
from larq_poke.keras_graph import producers as graph_producers
from larq_poke.layers.base import GraphLayer
from larq_poke.layers.bnext import BNextBinaryConv2D, LearnableBias, ScaleMix

__all__ = [
    "bnext_deployable",
    "TorchPaddedBinaryConv",
    "ConstantAdd",
    "MixedMeans",
    "ChannelAffine",
    "needs_rewrite",
]


def needs_rewrite(layer) -> bool:
    """A BNext binary conv LCE does not fuse as built: explicit (torch) padding, sign(0) = +1."""
    return isinstance(layer, BNextBinaryConv2D) and bool(layer.explicit_padding) and layer.zero_sign == 1


def _has_strided_bnext_conv(model) -> bool:
    return any(needs_rewrite(layer) for _, layer in walk_layers(model))


def _torch_valid_paddings(n: int, kernel: int, stride: int, pad: int) -> "list[int]":
    """Paddings (before, after) after which a VALID conv reads exactly what the conv with ``pad``
    on both sides reads: the trailing padding is cut to what the last output window needs."""
    out = (n + 2 * pad - kernel) // stride + 1
    needed_end = (out - 1) * stride + kernel - pad  # one past the last input index read
    return [pad, max(needed_end - n, 0)]


class TorchPaddedBinaryConv(GraphLayer):
    """A strided :class:`BNextBinaryConv2D` as PAD(+1) → sign → VALID binary conv (or a same-zero
    binary conv on odd maps, where TF's "same" is torch's padding). The correction of the +1
    padding is applied after BN_1 by :class:`ConstantAdd` (see the module docstring).

    Output: the conv with +1 padding, ``conv(pad_0(sign x)) + K``; :attr:`correction` is K.
    """

    def __init__(self, source: BNextBinaryConv2D = None, **kwargs):
        super().__init__(**kwargs)
        if source is None:
            raise ValueError("TorchPaddedBinaryConv is built from a BNextBinaryConv2D (bnext_deployable)")
        latent = as_numpy(source.kernel)
        self._sign_kernel = np.where(latent >= 0, 1.0, -1.0).astype(np.float32)  # sign(0) = +1
        self._kernel_size = tuple(int(k) for k in source.kernel_size)
        self._strides = tuple(int(s) for s in source.strides)
        self._filters = int(source.filters)
        self._pad = int(source.explicit_padding)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        h, w = int(shape[1]), int(shape[2])
        paddings = [
            _torch_valid_paddings(n, k, s, self._pad)
            for n, k, s in zip((h, w), self._kernel_size, self._strides)
        ]
        symmetric = all(before == after for before, after in paddings)
        same_matches = symmetric and all(
            (n % s == 1 or s == 1) for n, s in zip((h, w), self._strides)
        )
        if same_matches:  # odd maps: TF "same" pads (p, p) as torch does
            self._paddings = None
            spec = ConvSpec(self._filters, self._kernel_size, self._strides, "same")
            self.correction = None
            conv_shape = shape
        else:
            self._paddings = [[0, 0]] + paddings + [[0, 0]]
            spec = ConvSpec(self._filters, self._kernel_size, self._strides, "valid")
            self.correction = padding_correction(self._sign_kernel, shape, paddings, self._strides)
            conv_shape = tf.TensorShape(
                [shape[0], h + sum(paddings[0]), w + sum(paddings[1]), shape[3]]
            )
            if not self.correction.any():
                self.correction = None
        self.conv = binary_conv(spec, "conv", pad_values=0.0)
        self.conv.build(conv_shape)
        self.conv.kernel.assign(self._sign_kernel)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if self._paddings is not None:
            inputs = tf.pad(inputs, self._paddings, constant_values=1.0)
        return self.conv(inputs)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis, k, s in zip((1, 2), self._kernel_size, self._strides):
            if shape[axis] is not None:
                shape[axis] = (shape[axis] + 2 * self._pad - k) // s + 1
        return tf.TensorShape(shape[:-1] + [self._filters])


class MixedMeans(GraphLayer):
    """``GAP(s·a + (1 − s)·b) = s·GAP(a) + (1 − s)·GAP(b)``: the SE input of a BNext unit from
    two full-map average pools and 1×1 arithmetic, instead of a full-resolution mix (2 MUL +
    1 ADD on the whole map) followed by one pool. ``scale`` is the mix's ``s`` (already
    clipped where the unit clips it); ``offset`` an optional per-channel constant added to the
    result (see :func:`bnext_deployable`: a folded move bias). Returns (N, 1, 1, C)."""

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        if scale is None:
            raise ValueError("MixedMeans needs the mix's per-channel scale")
        self._scale = np.asarray(scale, np.float32)
        self._offset = None if offset is None else np.asarray(offset, np.float32)

    def call(self, inputs, training=None):
        a, b = inputs
        mean = self._scale * full_map_mean(a) + (np.float32(1.0) - self._scale) * full_map_mean(b)
        return mean if self._offset is None else mean + self._offset

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape[1]).as_list()
        return tf.TensorShape([shape[0], 1, 1, shape[-1]])


# --- the rewrite ---------------------------------------------------------------------------------
def bnext_deployable(model):
    """The LCE-friendly, numerically equivalent form of a functional model with BNext layers.

    Every strided :class:`BNextBinaryConv2D` (``zero_sign=1``) becomes a
    :class:`TorchPaddedBinaryConv`; where its +1 padding needs a correction, the BatchNorm that
    consumes it (BN_1) is followed by a :class:`ConstantAdd` of ``−g₁·K`` (a conv whose output
    goes elsewhere gets the ``−K`` add directly). The units' SE input becomes a
    :class:`MixedMeans`, BN_2 a 1×1 scale on the attention plus a full-resolution shift, and the
    move biases fold where they can (module docstring). Other layers are reused as they are; the
    argument is not modified.
    """
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError("bnext_deployable needs a functional Keras model")
    consumers, producers = graph_consumers(model), graph_producers(model)
    pooled_mixes, skipped_pools = _pooled_mixes(model, consumers)
    scaled_multiplies, shifted_bns = _foldable_bn2(model, consumers, producers)
    moves = _MoveFolds(model, consumers, producers, shifted_bns, pooled_mixes)
    pending = {}  # id(original conv output) -> correction K still to subtract

    def substitute(layer, args, inbound, out, new):
        trimmed = _trimmed_zero_padding(layer, inbound, consumers.get(id(out), []))
        if trimmed is not None:
            return tf.keras.layers.ZeroPadding2D(trimmed, name=layer.name)(args[0])
        if needs_rewrite(layer):
            new = TorchPaddedBinaryConv(layer, name=layer.name)
            result = new(args[0])
            if new.correction is not None:
                users = consumers.get(id(out), [])
                if len(users) == 1 and _is_inference_bn(users[0]):
                    pending[id(out)] = new.correction
                else:
                    result = ConstantAdd(-new.correction, name=f"{layer.name}.pad_correction")(result)
            return result
        if layer.name in moves.moves:
            rest = moves.moves[layer.name]  # None: the whole bias is already in the input
            return args[0] if rest is None else ChannelAffine(shift=rest, name=layer.name)(args[0])
        if layer.name in pooled_mixes:
            return MixedMeans(
                pooled_mixes[layer.name], moves.mix_offsets.get(layer.name), name=layer.name
            )(args)
        if layer.name in skipped_pools:
            return args[0]  # already the (N, 1, 1, C) mean
        if layer.name in scaled_multiplies:
            index, scale = scaled_multiplies[layer.name]
            args = list(args)
            args[index] = ChannelAffine(scale=scale, name=f"{layer.name}.bn_scale")(args[index])
            return layer(args)
        if layer.name in shifted_bns:
            return ChannelAffine(shift=moves.shift(layer.name), name=layer.name)(args[0])
        if layer.name in moves.bn_shifts:
            return shifted_batch_norm(layer, moves.bn_shifts[layer.name])(args[0])
        if len(inbound) == 1 and id(inbound[0]) in pending:
            correction = pending.pop(id(inbound[0]))
            scale, _ = bn_affine(layer)
            return ConstantAdd(
                (-correction * scale).astype(np.float32), name=f"{layer.name}.pad_correction"
            )(layer(args[0]))
        return None

    return rebuild_functional(model, substitute)


def _pooled_mixes(model, consumers):
    """ScaleMix layers whose only consumer is a keepdims global average pool (the SE input):
    ``{mix name: s}`` and the names of those pools."""
    mixes, pools = {}, set()
    for layer in model.layers:
        if not isinstance(layer, ScaleMix):
            continue
        users = consumers.get(id(node_output(model, layer)), [])
        if len(users) != 1:
            continue
        pool = users[0]
        if not isinstance(pool, tf.keras.layers.GlobalAveragePooling2D) or not pool.keepdims:
            continue
        shape = node_output(model, layer).shape
        if shape[1] is None or shape[2] is None:
            continue
        scale = as_numpy(layer.scale)
        mixes[layer.name] = np.clip(scale, 0.0, 1.0) if layer.clamp else scale
        pools.add(pool.name)
    return mixes, pools


def _is_channel_map(tensor) -> bool:
    shape = tensor.shape
    return len(shape) == 4 and shape[1] == 1 and shape[2] == 1


def _foldable_bn2(model, consumers, producers):
    """BN_2 of the BNext units: ``BN(m ⊙ p [⊙ r])`` where ``m`` is the (N, 1, 1, C) attention
    equals ``((g·m) ⊙ p [⊙ r]) + h``: the BN scale moves onto the 1×1 attention and only the
    shift stays at full resolution. Returns ``{multiply name: (input index, g)}`` and
    ``{bn name: h}`` for every BN where the chain of Multiply layers (each used only by the
    next) reaches a 1×1 operand within two steps."""
    scaled, shifted = {}, {}
    for layer in model.layers:
        if not _is_inference_bn(layer):
            continue
        inbound = node_inputs(model, layer)
        if len(inbound) != 1:
            continue
        target = _channel_map_operand(model, inbound[0], consumers, producers, depth=2)
        if target is None:
            continue
        multiply, index = target
        scale, shift = bn_affine(layer)
        scaled[multiply.name] = (index, scale)
        shifted[layer.name] = shift
    return scaled, shifted


def _channel_map_operand(model, tensor, consumers, producers, depth):
    producer = producers.get(id(tensor))
    if type(producer) is not tf.keras.layers.Multiply or len(consumers.get(id(tensor), [])) != 1:
        return None
    operands = node_inputs(model, producer)
    for index, operand in enumerate(operands):
        if _is_channel_map(operand) and operand.shape[-1] == tensor.shape[-1]:
            return producer, index
    if depth > 1:
        for operand in operands:
            found = _channel_map_operand(model, operand, consumers, producers, depth - 1)
            if found is not None:
                return found
    return None


class _MoveFolds:
    """Which move biases (``LearnableBias`` before a sign) fold into the op that makes their input.

    A move computes ``x + b`` at full resolution. Where ``x`` is a unit's output
    ``BN_2 shift + residual`` (through a linear ``Activation`` or a channel ``Concatenate``) or the
    stem's BN, ``b`` joins that shift (or the BN's beta) for free, so the tensor carries
    ``x' = x + b`` and the move disappears. Every other consumer of ``x`` must then take ``x'``
    and undo ``b`` for free too: the next unit's residual ADD (its own BN_2 shift gets ``−b``),
    the SE input mean (:class:`MixedMeans` gets a constant offset) and a second move on the
    same tensor (it keeps only the difference of the two biases). Any other consumer (PReLU_1 of
    an ELM unit, a pool) keeps the move as it is.

    Attributes: ``moves`` ``{move name: remaining bias or None}``, ``mix_offsets``
    ``{mix name: offset}``, ``bn_shifts`` ``{stem BN name: added beta}``; :meth:`shift` gives
    the adjusted BN_2 shift.
    """

    def __init__(self, model, consumers, producers, shifted_bns, pooled_mixes):
        self._model, self._consumers, self._producers = model, consumers, producers
        self._shifted, self._mixes = shifted_bns, pooled_mixes
        self._deltas = {}  # BN_2 name -> change of its shift
        self.moves, self.mix_offsets, self.bn_shifts = {}, {}, {}
        outputs = {id(t) for t in model.outputs}
        handled = set()
        for layer in model.layers:
            if not isinstance(layer, LearnableBias) or layer.name in handled:
                continue
            inbound = node_inputs(model, layer)
            if len(inbound) != 1:
                continue
            x = inbound[0]
            if id(x) in outputs:
                continue
            users = consumers.get(id(x), [])
            bias = as_numpy(layer.bias)
            plan = self._plan(layer, x, users, bias)
            if plan is None:
                continue
            producer_shifts, compensations = plan
            for kind, name, delta in producer_shifts + compensations:
                if kind == "bn2":
                    self._deltas[name] = self._deltas.get(name, 0.0) + delta
                elif kind == "bn":
                    self.bn_shifts[name] = self.bn_shifts.get(name, 0.0) + delta
                elif kind == "mix":
                    self.mix_offsets[name] = self.mix_offsets.get(name, 0.0) + delta
                else:  # "move": another move on x keeps the difference of the biases
                    self.moves[name] = delta
                    handled.add(name)
            self.moves[layer.name] = None
            handled.add(layer.name)

    def shift(self, name):
        """BN_2's full-resolution shift with the folded move biases."""
        return (self._shifted[name] + self._deltas.get(name, 0.0)).astype(np.float32)

    # --- planning ---------------------------------------------------------------------------
    def _plan(self, move, x, users, bias):
        if not _is_channel_last_4d(x) or x.shape[-1] != bias.shape[0]:
            return None
        producer_shifts = self._absorbers(x, bias, depth=3)
        if producer_shifts is None:
            return None
        compensations = []
        for user in users:
            if user is move:
                continue
            if isinstance(user, LearnableBias) and user.name not in self.moves:
                compensations.append(("move", user.name, (as_numpy(user.bias) - bias).astype(np.float32)))
            elif isinstance(user, ScaleMix) and user.name in self._mixes:
                operands = node_inputs(self._model, user)
                if len(operands) != 2 or operands[0] is operands[1]:
                    return None
                s = self._mixes[user.name]
                weight = s if operands[0] is x else np.float32(1.0) - s
                compensations.append(("mix", user.name, -weight * bias))
            elif type(user) is tf.keras.layers.Add:
                shift = self._shift_operand(user, exclude=x)
                if shift is None:
                    return None
                compensations.append(("bn2", shift, -bias))
            else:
                return None
        return producer_shifts, compensations

    def _only_user(self, tensor, layer) -> bool:
        users = self._consumers.get(id(tensor), [])
        return len(users) == 1 and users[0] is layer

    def _shift_operand(self, add, exclude=None):
        """The name of a BN_2 (now a full-resolution shift) that only feeds the 2-input ``add``,
        as one of its operands other than ``exclude``."""
        operands = node_inputs(self._model, add)
        if len(operands) != 2:
            return None
        for operand in operands:
            if operand is exclude:
                continue
            producer = self._producers.get(id(operand))
            if producer is not None and producer.name in self._shifted and self._only_user(operand, add):
                return producer.name
        return None

    def _absorbers(self, x, bias, depth):
        """[(kind, name, delta)]: shifts that, changed by ``delta``, add ``bias`` to ``x``."""
        producer = self._producers.get(id(x))
        if producer is None or depth == 0:
            return None
        if producer.name in self._shifted:
            return [("bn2", producer.name, bias)]
        if type(producer) is tf.keras.layers.Add:
            name = self._shift_operand(producer)
            return None if name is None else [("bn2", name, bias)]
        if type(producer) is tf.keras.layers.Activation and producer.get_config()["activation"] == "linear":
            (inner,) = node_inputs(self._model, producer)
            if not self._only_user(inner, producer):
                return None
            return self._absorbers(inner, bias, depth - 1)
        if type(producer) is tf.keras.layers.Concatenate and producer.axis in (-1, 3):
            found, start = [], 0
            for part in node_inputs(self._model, producer):
                width = int(part.shape[-1])
                if not self._only_user(part, producer):
                    return None
                inner = self._absorbers(part, bias[start:start + width], depth - 1)
                if inner is None:
                    return None
                found += inner
                start += width
            return found
        if (
            _is_inference_bn(producer)
            and producer.center
            and not isinstance(self._producers.get(id(node_inputs(self._model, producer)[0])), BNextBinaryConv2D)
        ):
            return [("bn", producer.name, bias)]
        return None


def _is_channel_last_4d(tensor) -> bool:
    return len(tensor.shape) == 4 and tensor.shape[-1] is not None


def _trimmed_zero_padding(layer, inbound, users):
    """For a ``ZeroPadding2D`` feeding only a VALID ``Conv2D``: the paddings with the trailing
    rows / columns the conv never reads removed, or None when nothing changes.

    The stem pads (1, 1) and convolves 3×3 / 2 VALID (torch's padding). On an even map the
    bottom / right padding is never read, and LCE 0.16's converter turns PAD (1, 1) + stride-2
    VALID CONV_2D into a SAME conv, which pads (0, 1) on even maps: a shifted grid. Padding
    (1, 0) is the same function and is kept as PAD + CONV_2D."""
    if not isinstance(layer, tf.keras.layers.ZeroPadding2D) or len(users) != 1:
        return None
    conv = users[0]
    if type(conv) is not tf.keras.layers.Conv2D or conv.padding != "valid":
        return None
    shape = tf.TensorShape(inbound[0].shape)
    if shape[1] is None or shape[2] is None:
        return None
    trimmed = []
    for n, (before, after), k, s, d in zip(
        (int(shape[1]), int(shape[2])), layer.padding, conv.kernel_size, conv.strides, conv.dilation_rate
    ):
        if d != 1:
            return None
        padded = n + before + after
        out = (padded - k) // s + 1
        read_end = (out - 1) * s + k  # one past the last padded index read
        trimmed.append((int(before), int(max(read_end - n - before, 0))))
    if tuple(trimmed) == tuple(tuple(p) for p in layer.padding):
        return None
    return tuple(trimmed)


def _is_inference_bn(layer) -> bool:
    return isinstance(layer, tf.keras.layers.BatchNormalization) and list(layer.axis) in ([3], [-1])


register_rewrite(_has_strided_bnext_conv, bnext_deployable, name="bnext")
