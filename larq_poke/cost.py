"""Cost accounting for any Keras / Larq model: ACE, BOPs, FLOPs, OPs, binarization degree, size.

Bit-widths come from the quantizers (their ``precision`` attribute), never from layer names:

* weight bits: the precision of the kernel quantizer (``kernel_quantizer``,
  ``depthwise_quantizer`` / ``pointwise_quantizer``); no quantizer means float;
* input bits: the precision of the layer's ``input_quantizer``, or of a standalone Larq quantizer
  layer whose output the layer reads directly; otherwise float.

Definitions (per image, batch ignored):

* MACs: conv ``H_out·W_out·kh·kw·(Cin/groups)·Cout``; depthwise ``H_out·W_out·kh·kw·C·mult``;
  dense ``Cin·Cout`` (times any extra leading dims); transposed conv ``H_in·W_in·kh·kw·Cin·Cout``.
* **ACE** (PokeBNN): Σ MACs × weight bits × input bits, float MACs counted at
  ``float_bits × float_bits`` (16 × 16 = 256 by default, the paper's bf16 convention).
* **BOPs**: MACs with 1-bit weights and 1-bit inputs. **FLOPs**: all other MACs.
* **OPs** = BOPs / 64 + FLOPs (ReActNet / Bi-Real convention); binarization degree
  = BOPs / (64 · OPs). ``*_8bit``: non-binary MACs counted as 8-bit, i.e. OPs = BOPs/64 + FLOPs/8
  (the convention that reproduces BNext's published degrees).
* **Packed size**: binary weights at 1 bit, k-bit weights at k bits, everything else fp32;
  BatchNorm counts 2 values per channel (its inference scale and offset), like
  ``larq.models.summary``. Training-only terms that fold away at inference (a layer or quantizer
  with ``folds_at_inference = True``: BiNeal's α, λ, k and activation terms, which become the
  stored signs and the BN-sized affines / thresholds) are counted in the parameters but not in
  the sizes. **Storable size**: the same with multi-bit weights rounded up to int8 /
  int16 (TFLite stores no int2 / int4): what an int8 LCE file can hold at
  best.

Elementwise work (BN, activations, residual adds, pooling, SE multiplies) is not counted, as in
the official ACE accounting.

```python
import larq_poke
report = larq_poke.cost.profile(model)            # any built Keras model
report.totals["ace"], report.to_dict(), report.to_json()
print(report.to_text())
larq_poke.summary(model)                          # Keras summary + this table
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import warnings
from typing import Dict, List, Optional, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

from larq_poke.converters.fusability import structure_reason
from larq_poke.keras_graph import walk_layers

__all__ = ["LayerCost", "CostReport", "profile", "stored_sizes", "summary", "text_table", "DEPTHWISE_CONVS", "SEPARABLE_CONVS"]


@dataclasses.dataclass
class LayerCost:
    """Cost of one layer call."""

    name: str
    kind: str
    output_shape: tuple
    weight_bits: Optional[int]
    input_bits: Optional[int]
    params: int
    macs: int
    bops: int
    ace: int
    flops: int
    lce_binary: bool
    # The traced input shape of the call (batch 1). Not part of the table, ``to_dict`` or
    # equality: it is there for models built on these rows (``larq_poke.cycles``).
    input_shape: Optional[tuple] = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        del d["input_shape"]
        d["output_shape"] = list(self.output_shape)
        return d


@dataclasses.dataclass
class CostReport:
    """Per-layer rows and totals of :func:`profile`."""

    model_name: str
    input_shape: tuple
    float_bits: int
    layers: List[LayerCost]
    totals: Dict[str, float]

    def to_dict(self) -> dict:
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "float_bits": self.float_bits,
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": dict(self.totals),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_text(self, all_layers: bool = False) -> str:
        """A readable table; by default only layers with MACs, others summed in one line."""
        return _format_report(self, all_layers)


# ----------------------------------------------------------------------------------------------
# Tracing: record every layer call with its input / output shapes.


def _children(layer) -> list:
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _static_shape(x):
    if isinstance(x, (list, tuple)):
        return [_static_shape(t) for t in x]
    return tuple(x.shape.as_list()) if hasattr(x, "shape") else None


def _first_tensor(x):
    while isinstance(x, (list, tuple)):
        if not x:
            return None
        x = x[0]
    return x


class _CallRecorder:
    def __init__(self, model):
        self.model = model
        self.records = []
        self.quantized_outputs: Dict[int, int] = {}  # id(tensor) -> precision of its quantizer
        self.saved_calls = {}

    def _wrap(self, path, layer):
        if id(layer) in self.saved_calls:  # a layer reachable through two parents
            return
        # Some layers (e.g. TFOpLambda) keep `call` as an instance attribute: restore it after.
        self.saved_calls[id(layer)] = layer.__dict__.get("call")
        original = layer.call
        recorder = self

        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            inputs = args[0] if args else kwargs.get("inputs")
            if isinstance(layer, lq.quantizers.Quantizer) and getattr(layer, "precision", None):
                recorder.quantized_outputs[id(outputs)] = layer.precision
            first = _first_tensor(inputs)
            recorder.records.append(
                {
                    "path": path,
                    "layer": layer,
                    "input_shape": _static_shape(first),
                    "output_shape": _static_shape(_first_tensor(outputs)),
                    "producer_bits": recorder.quantized_outputs.get(id(first)),
                }
            )
            return outputs

        object.__setattr__(layer, "call", call)

    def trace(self, input_specs):
        named = list(walk_layers(self.model))
        for path, layer in named:
            self._wrap(path, layer)
        try:
            # A bare graph (Keras' own scratch-graph way), not a tf.function: only the static shapes
            # are read, and a ConcreteFunction would parse its whole FunctionDef back twice, which
            # with this stack's pure-Python protobuf was about a quarter of a full-size profile.
            with tf.__internal__.FuncGraph("larq_poke_cost").as_default():
                xs = [tf.compat.v1.placeholder(spec.dtype, spec.shape, name=f"input_{i}")
                      for i, spec in enumerate(input_specs)]
                self.model(xs if len(xs) > 1 else xs[0], training=False)
        finally:
            for _, layer in named:
                saved = self.saved_calls.get(id(layer))
                if saved is not None:
                    object.__setattr__(layer, "call", saved)
                elif "call" in layer.__dict__:
                    object.__delattr__(layer, "call")
        return self.records


# ----------------------------------------------------------------------------------------------
# Per-layer arithmetic.


def _precision(quantizer) -> Optional[int]:
    """Bits of a quantizer, None for float (no quantizer, or one that does not say)."""
    if quantizer is None:
        return None
    bits = getattr(quantizer, "precision", None)
    return int(bits) if bits else None


def _kernel_bits(layer, attribute="kernel_quantizer") -> Optional[int]:
    return _precision(getattr(layer, attribute, None))


def _input_bits(layer, producer_bits) -> Optional[int]:
    bits = _precision(getattr(layer, "input_quantizer", None))
    return bits if bits is not None else producer_bits


def _weight_storage_bits(variable, byte_aligned: bool = False) -> int:
    """Bits per stored value: the quantizer's precision, fp32 for unquantized weights. With
    ``byte_aligned``, multi-bit weights take the next TFLite integer type (int8, int16, else
    32 bits: TFLite has no int2 / int4 storage); binary weights stay at 1 bit (LCE bit-packs)."""
    bits = getattr(variable, "precision", None)
    if not bits:
        return 32
    bits = int(bits)
    if not byte_aligned or bits == 1:
        return bits
    return next(width for width in (8, 16, 32) if bits <= width or width == 32)


#: Keras' depthwise and separable convs: their 1D classes are not subclasses of Conv1D, nor
#: of the 2D classes.
DEPTHWISE_CONVS = (tf.keras.layers.DepthwiseConv1D, tf.keras.layers.DepthwiseConv2D)
SEPARABLE_CONVS = (tf.keras.layers.SeparableConv1D, tf.keras.layers.SeparableConv2D)


def _conv_macs(layer, in_shape, out_shape):
    kernel = tuple(layer.kernel_size)
    spatial = int(np.prod(out_shape[1:-1]))
    if isinstance(layer, tf.keras.layers.Conv2DTranspose) or type(layer).__name__.endswith("Transpose"):
        return int(np.prod(in_shape[1:-1])) * int(np.prod(kernel)) * in_shape[-1] * out_shape[-1]
    groups = getattr(layer, "groups", 1) or 1
    return spatial * int(np.prod(kernel)) * (in_shape[-1] // groups) * out_shape[-1]


def _layer_cost_terms(layer, in_shape, out_shape, producer_bits):
    """[(op, macs, weight_bits, input_bits)] for a MAC layer, [] otherwise."""
    if in_shape is None or out_shape is None or any(d is None for d in list(in_shape[1:]) + list(out_shape[1:])):
        return []
    a_bits = _input_bits(layer, producer_bits)
    rank = len(getattr(layer, "kernel_size", ()))
    if isinstance(layer, DEPTHWISE_CONVS):
        macs = int(np.prod(out_shape[1:-1])) * int(np.prod(layer.kernel_size)) * out_shape[-1]
        return [(f"depthwise_conv{rank}d", macs, _kernel_bits(layer, "depthwise_quantizer"), a_bits)]
    if isinstance(layer, SEPARABLE_CONVS):
        spatial = int(np.prod(out_shape[1:-1]))
        mid = in_shape[-1] * layer.depth_multiplier
        depthwise = spatial * int(np.prod(layer.kernel_size)) * mid
        pointwise = spatial * mid * out_shape[-1]
        return [
            (f"separable_conv{rank}d/depthwise", depthwise, _kernel_bits(layer, "depthwise_quantizer"), a_bits),
            (f"separable_conv{rank}d/pointwise", pointwise, _kernel_bits(layer, "pointwise_quantizer"), None),
        ]
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        return [("conv2d_transpose", _conv_macs(layer, in_shape, out_shape), _kernel_bits(layer), a_bits)]
    if isinstance(layer, (tf.keras.layers.Conv1D, tf.keras.layers.Conv2D, tf.keras.layers.Conv3D)):
        op = f"conv{len(layer.kernel_size)}d"
        return [(op, _conv_macs(layer, in_shape, out_shape), _kernel_bits(layer), a_bits)]
    if isinstance(layer, tf.keras.layers.Dense):
        macs = int(np.prod(in_shape[1:])) * out_shape[-1]
        return [("dense", macs, _kernel_bits(layer), a_bits)]
    return []


def _lce_binary(layer, op, w_bits, a_bits, in_shape) -> bool:
    """Can LCE run this as an LceBconv2d once its quantizers are ±1 signs? 1-bit weights and
    inputs, and the converter's structural rule (:func:`~larq_poke.converters.fusability.structure_reason`)."""
    if op != "conv2d" or w_bits != 1 or a_bits != 1:
        return False
    return structure_reason(layer, in_shape[-1] if in_shape else None)[0] is None


def _bits_label(bits):
    return "float" if bits is None else str(bits)


def _kind(op, w_bits, a_bits):
    if w_bits == 1 and a_bits == 1:
        precision = "binary"
    elif w_bits is None and a_bits is None:
        precision = "float"
    else:
        precision = f"w{_bits_label(w_bits)}a{_bits_label(a_bits)}"
    return f"{precision} {op}"


def _packed_bits(layer, weights, byte_aligned: bool = False) -> int:
    if isinstance(layer, tf.keras.layers.BatchNormalization) and weights:
        return 2 * int(np.prod(layer.moving_mean.shape)) * 32
    return sum(int(np.prod(w.shape)) * _weight_storage_bits(w, byte_aligned) for w in weights)


def _own_weights(layer, seen: set):
    """``(own, stored)``: the weights ``layer`` owns, its own and its quantizers' (e.g.
    activation bounds) but not those of child layers (they get their own rows) nor any in
    ``seen`` (shared layers count them once; ``seen`` is updated); ``stored``: those of ``own``
    that do not fold away at inference."""
    child_weights = {
        id(w)
        for child in _children(layer)
        if not isinstance(child, lq.quantizers.Quantizer)
        for w in child.weights
    }
    own = [w for w in layer.weights if id(w) not in child_weights and id(w) not in seen]
    seen.update(id(w) for w in own)
    folded = {id(w) for part in [layer, *_children(layer)] if getattr(part, "folds_at_inference", False) for w in part.weights}
    return own, [w for w in own if id(w) not in folded]


def stored_sizes(model: tf.keras.Model) -> Dict[str, int]:
    """``{"packed_size_bytes": ..., "storable_size_bytes": ...}`` of ``model``, the sizes
    :func:`profile` reports, from its weights alone: nothing is traced, so this is cheap where a
    profile costs about as much as building the model. Every layer the model holds counts (a
    profile counts the layers its call reaches: the same for any model that calls all its layers).

    ```python
    larq_poke.cost.stored_sizes(PokeBNN(0.5))["packed_size_bytes"]
    ```
    """
    return _sizes(layer for _, layer in walk_layers(model))


def _sizes(layers) -> Dict[str, int]:
    """Packed and storable bytes of the weights ``layers`` own (quantizer layers skipped: their
    weights belong to the layer that holds them), each weight once."""
    seen: set = set()
    packed_bits = storable_bits = 0
    for layer in layers:
        if isinstance(layer, lq.quantizers.Quantizer):
            continue
        _, stored = _own_weights(layer, seen)
        packed_bits += _packed_bits(layer, stored)
        storable_bits += _packed_bits(layer, stored, byte_aligned=True)
    return {"packed_size_bytes": int(math.ceil(packed_bits / 8)),
            "storable_size_bytes": int(math.ceil(storable_bits / 8))}


# ----------------------------------------------------------------------------------------------


def _input_specs(model, input_shape):
    specs = []
    inputs = model.inputs
    if not inputs:
        raise ValueError("profile() needs a built functional or sequential model with known inputs.")
    shapes = input_shape if input_shape is not None else [None] * len(inputs)
    if input_shape is not None and len(inputs) == 1 and not isinstance(input_shape[0], (list, tuple)):
        shapes = [input_shape]
    for tensor, shape in zip(inputs, shapes):
        full = list(tensor.shape.as_list())
        if shape is not None:
            full = [1] + list(shape)
        full[0] = 1
        if any(d is None for d in full):
            raise ValueError(
                f"Input {tensor.name} has an unknown size {tuple(full[1:])}; pass "
                "input_shape=(height, width, channels) to count costs for a concrete size."
            )
        specs.append(tf.TensorSpec(full, tensor.dtype))
    return specs


def profile(model: tf.keras.Model, *, input_shape=None, float_bits: int = 16) -> CostReport:
    """Per-layer and total costs of ``model`` for one input.

    # Arguments
    model: a built Keras model (functional or sequential; nested layers and models are walked).
    input_shape: (H, W, C) to count for, required when the model's input size is not fixed
        (a list of shapes for multi-input models).
    float_bits: bit-width charged to unquantized operands in ACE (16: bf16, the PokeBNN paper's
        convention; 32 for fp32).

    # Returns
    A :class:`CostReport` (``.totals``, ``.layers``, ``.to_dict()``, ``.to_json()``,
    ``.to_text()``). A layer with a kernel but no MAC formula (e.g. ``EinsumDense``) gets a
    row without MACs and is named in a warning.
    """
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"profile() needs a Keras model, got {type(model).__name__}.")
    if isinstance(float_bits, bool) or not isinstance(float_bits, numbers.Integral) or float_bits < 1:
        raise ValueError(f"float_bits must be a positive integer, got {float_bits!r}.")
    specs = _input_specs(model, input_shape)
    records = _CallRecorder(model).trace(specs)

    rows: List[LayerCost] = []
    uncounted: List[str] = []  # layers with a kernel but no MAC formula
    seen_weights = set()
    for rec in records:
        layer = rec["layer"]
        if isinstance(layer, lq.quantizers.Quantizer):
            continue
        own, _ = _own_weights(layer, seen_weights)
        params = int(sum(np.prod(w.shape) for w in own))
        terms = _layer_cost_terms(layer, rec["input_shape"], rec["output_shape"], rec["producer_bits"])
        known = all(shape is not None and None not in list(shape[1:])
                    for shape in (rec["input_shape"], rec["output_shape"]))
        if not terms and known and any("kernel" in w.name.rpartition("/")[2] for w in own):
            uncounted.append(f"{rec['path']} ({type(layer).__name__})")
        if not terms:
            if params:
                rows.append(
                    LayerCost(rec["path"], type(layer).__name__, tuple(rec["output_shape"] or ()),
                              None, None, params, 0, 0, 0, 0, False)
                )
            continue
        for op, macs, w_bits, a_bits in terms:
            binary = w_bits == 1 and a_bits == 1
            ace = macs * (w_bits or float_bits) * (a_bits or float_bits)
            rows.append(
                LayerCost(
                    name=rec["path"] if len(terms) == 1 else f"{rec['path']}[{op.split('/')[-1]}]",
                    kind=_kind(op, w_bits, a_bits),
                    output_shape=tuple(rec["output_shape"]),
                    weight_bits=w_bits,
                    input_bits=a_bits,
                    params=params,
                    macs=int(macs),
                    bops=int(macs) if binary else 0,
                    ace=int(ace),
                    flops=0 if binary else int(macs),
                    lce_binary=_lce_binary(layer, op, w_bits, a_bits, rec["input_shape"]),
                    input_shape=tuple(rec["input_shape"]),
                )
            )
            params = 0  # a layer's parameters are listed on its first row only

    if uncounted:
        warnings.warn(f"larq_poke.cost: no MAC count for {', '.join(uncounted[:5])}"
                      f"{' ...' if len(uncounted) > 5 else ''}: their MACs are not in the totals "
                      "(counted: dense, conv, depthwise, separable and transposed convs).", stacklevel=2)
    bops = sum(r.bops for r in rows)
    flops = sum(r.flops for r in rows)
    ops = bops / 64 + flops
    ops_8bit = bops / 64 + flops / 8
    totals = {
        "ace": int(sum(r.ace for r in rows)),
        "bops": int(bops),
        "flops": int(flops),
        "ops": ops,
        "ops_8bit": ops_8bit,
        "macs": int(sum(r.macs for r in rows)),
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        **_sizes(rec["layer"] for rec in records),  # the layers the call reached, in call order
        "binarization_degree": bops / (64 * ops) if ops else 0.0,
        "binarization_degree_8bit": bops / (64 * ops_8bit) if ops_8bit else 0.0,
    }
    return CostReport(model.name, tuple(specs[0].shape[1:]), int(float_bits), rows, totals)


# ----------------------------------------------------------------------------------------------
# Formatting.


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3f}{unit}"
    return f"{value:.0f}"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 3) -> List[str]:
    """Lines of a plain-text table: the first ``left`` columns left-aligned, the rest
    right-aligned, a rule under the headers and at the end (the cost and cycle reports')."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(headers))
    return [line(headers), rule] + [line(r) for r in rows] + [rule]


def _format_report(report: CostReport, all_layers: bool) -> str:
    shown = [r for r in report.layers if all_layers or r.macs]
    hidden = [r for r in report.layers if r not in shown]
    headers = ["Layer", "Kind", "Output", "W bits", "A bits", "Params", "MACs", "BOPs", "ACE", "FLOPs", "LCE binary"]
    rows = [
        [r.name, r.kind, "x".join(str(d) for d in r.output_shape[1:]), _bits_label(r.weight_bits) if r.macs else "",
         _bits_label(r.input_bits) if r.macs else "", f"{r.params:,}", _si(r.macs), _si(r.bops), _si(r.ace),
         _si(r.flops), ("yes" if r.lce_binary else "no") if r.macs else ""]
        for r in shown
    ]
    t = report.totals
    size = "x".join(str(d) for d in report.input_shape)
    lines = [f"Costs of {report.model_name} (one {size} input)"]
    lines += text_table(headers, rows)
    if hidden:
        lines.append(f"+ {len(hidden)} layers without MACs ({sum(r.params for r in hidden):,} params)")
    fb = report.float_bits
    lines += [
        f"ACE:                 {t['ace']:.4g}  ({t['ace']:,}; float MACs at {fb}x{fb} bits)",
        f"BOPs:                {t['bops']:.4g}  ({t['bops']:,})",
        f"FLOPs:               {t['flops']:.4g}  ({t['flops']:,} non-binary MACs)",
        f"OPs:                 {t['ops']:.4g}  (BOPs/64 + FLOPs); {t['ops_8bit']:.4g} with non-binary MACs as 8-bit",
        f"Binarization degree: {100 * t['binarization_degree']:.2f} %  (BOPs / (64 OPs)); "
        f"{100 * t['binarization_degree_8bit']:.2f} % with non-binary MACs as 8-bit",
        f"Params:              {t['params']:,}  ({t['trainable_params']:,} trainable)",
        f"Packed size:         {t['packed_size_bytes'] / 2**20:.2f} MiB  ({t['packed_size_bytes']:,} bytes; "
        "binary weights 1 bit, k-bit weights k bits, the rest fp32)",
        f"Storable size:       {t['storable_size_bytes'] / 2**20:.2f} MiB  "
        f"({t['storable_size_bytes']:,} bytes; as packed, but multi-bit weights at 8 bits at least: "
        "what an int8 TFLite file can hold)",
    ]
    return "\n".join(lines)


def summary(model: tf.keras.Model, *, input_shape=None, float_bits: int = 16, print_fn=None) -> CostReport:
    """Print the Keras summary of ``model`` followed by its cost table; return the report.

    ```python
    import larq_poke, larq_zoo
    larq_poke.summary(larq_zoo.sota.QuickNet(weights=None))
    ```
    """
    print_fn = print_fn or print
    tf.keras.Model.summary(model, print_fn=print_fn)
    report = profile(model, input_shape=input_shape, float_bits=float_bits)
    print_fn(report.to_text())
    return report
