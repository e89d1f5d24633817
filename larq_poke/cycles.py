"""Execution cycles of one image on a weight-stationary systolic-array accelerator.

BOPs, ACE and model size ignore data movement. The BiNeal paper (Nie et al., DJI,
arXiv 2202.03716) reports *execution cycles* from a closed-form count per block on a 1-bit
systolic-array ASIC and claims that BiNeal needs 2.8–7× fewer cycles than 8-bit models and
2.1–2.7× fewer than other BNN designs. Its closed form is not published; these claims are cited,
not reproduced. This module is our own, parameterized model, applied per MAC layer of
:func:`larq_poke.cost.profile` (bit-widths from the quantizers, as there).

**The array** (:class:`SystolicArray`): ``rows × cols`` processing elements (PEs), weights
stationary, activations streamed in from the left, partial sums flowing down the columns.

**Each MAC layer is a GEMM** (im2col): M = output pixels (rows of a dense input), K = kh·kw·Cin
/ groups (the reduction), N = Cout. A grouped conv is ``groups`` GEMMs of K × N/groups; a
depthwise conv is the grouped case with groups = Cin; a transposed conv is M = input pixels,
K = Cin, N = kh·kw·Cout; a separable conv is its depthwise and its pointwise part, as in the
cost table.

**Bits** (``w`` weights, ``a`` activations; unquantized operands count at ``float_bits``,
16 by default, or at ``as_bits`` when given, e.g. 8 to cost a float model as its 8-bit version):

* both operands 1-bit: a PE does ``pe_bits`` binary MACs per cycle (an XNOR-popcount word: it
  holds ``pe_bits`` weights of consecutive K indices), so a tile covers ``rows·pe_bits`` of K;
* otherwise a PE does one MAC of up to ``pe_bits × pe_bits`` bits per cycle; wider operands are
  split into ``pe_bits``-bit digits and each digit pair is one more pass over the tile:
  ``passes = ceil(w/pe_bits)·ceil(a/pe_bits)`` (1 for 1..8-bit operands on 8-bit PEs, 4 for
  16-bit floats). Sub-``pe_bits`` multi-bit operands (w1a8, w4a4) get no packing gain.

**Compute cycles** (``lanes`` = ``pe_bits`` for binary, else 1): tiles of ``rows·lanes`` K
indices × ``cols`` outputs, T_K = ceil(K/(rows·lanes)), T_N = ceil(N/cols). Each tile streams
the M input rows, one per cycle, plus its pipeline fill and drain: by default the rows and
columns the tile occupies (ceil(K_tile/lanes) + N_tile; partial sums leave at the last
occupied row), or a fixed ``fill_drain`` per tile when set (``rows + cols`` charges the whole
array's latency). Summed over the tile grid::

    compute = passes · (T_K·T_N·M + T_N·ceil(K/lanes) + T_K·N)           (default fill)
    compute = passes · T_K·T_N · (M + fill_drain)                          (fixed fill)

Groups that fit the array side by side are packed block-diagonally (a group takes
ceil(K/lanes) rows and N/groups columns of its own), p = min(rows // ceil(K/lanes),
cols // (N/groups)) groups per tile, ceil(groups/p) tiles, each filled by the rows and columns
its groups occupy; a group larger than the array is tiled on its own (groups × the dense
tiling of K × N/groups).

**Data movement cycles** = ceil(bytes / ``dram_bytes_per_cycle``), bytes =

* the weights once, at their bits (K·N·w/8);
* the layer's input tensor at its bits, once if it fits in ``buffer_bytes`` (the on-chip
  activation buffer; weights do not use it), else once per column tile (ceil(N/groups / cols)
  times): every pass over a column tile streams all the inputs again;
* the output tensor once, at the bits it is stored at: ``output_bits[name]`` when given, else
  read from the model's graph. The output is followed through single-input layers (batch norm,
  activations, signs, pooling) to every reader: a MAC layer stores it at that layer's input bits
  (1 bit when a binary conv reads it: the sign is fused into the writer); an add, concat or any
  other multi-input layer, and the model output, store it at the bits of the last fake-quant
  layer on the way (a layer with an integer ``bits``, e.g. BiNeal's INT4 branch quantizer), else
  at the float precision (``as_bits`` or ``float_bits``). A tensor read at several widths is
  written once at each, and each reader reads its own copy (the writer fuses the sign or the
  requantization): a conv whose output feeds a float residual add and a binary conv writes 16
  + 1 = 17 bits per value (``out_bits`` is the sum over the copies). Where the graph
  does not show a MAC layer's output (the depthwise part of a separable conv, layers inside a
  nested layer, every layer of a model whose graph cannot be read, e.g. with shared layers),
  the input bits of the next MAC layer in the profile order are used, or the float precision
  for the last. Only a layer's first output is followed.

Each byte count is rounded up per tensor. Partial sums of split-K tiles stay in on-chip
accumulators (no traffic).

**Layer cycles** = max(compute, movement): loads and stores are double-buffered and overlap the
compute. Elementwise work (BN, activations, adds, pooling) is not counted, unless
``elementwise_bytes`` (bytes per image) is given: it is added as one movement-only row. The
total is the sum over the layers (layers run one after the other, the array to one layer).

```python
import larq_poke
from larq_poke.cycles import SystolicArray, estimate_cycles
report = estimate_cycles(larq_poke.zoo.BiNeal(1.0))                  # 64x64 array, 8-bit PEs
report.totals["cycles"], print(report.to_text()), report.to_dict()
from larq_poke.zoo.references import ResNet18
estimate_cycles(ResNet18(), as_bits=8)                                # the 8-bit ResNet-18
estimate_cycles(model, SystolicArray(rows=32, cols=32, buffer_bytes=128 * 1024))
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from typing import Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

from larq_poke.cost import DEPTHWISE_CONVS, SEPARABLE_CONVS, LayerCost, profile, text_table
from larq_poke.keras_graph import consumers, model_nodes, walk_layers

__all__ = ["SystolicArray", "LayerCycles", "CycleReport", "estimate_cycles"]


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class SystolicArray:
    """A weight-stationary systolic array (see the module docstring for how each is used).

    rows, cols: PE array size (K along the rows, N along the columns).
    pe_bits: multiplier width of a PE; also the binary MACs a PE does per cycle (XNOR-popcount).
    buffer_bytes: on-chip activation buffer; a layer input that fits is read from DRAM once (0: no
        buffer, every input is re-read per column tile).
    dram_bytes_per_cycle: off-chip bandwidth.
    fill_drain: pipeline fill + drain cycles per tile; None: the rows + columns the tile occupies.
    """

    rows: int = 64
    cols: int = 64
    pe_bits: int = 8
    buffer_bytes: int = 512 * 1024
    dram_bytes_per_cycle: int = 16
    fill_drain: Optional[int] = None

    def __post_init__(self):
        for field in ("rows", "cols", "pe_bits", "buffer_bytes", "dram_bytes_per_cycle", "fill_drain"):
            value = getattr(self, field)
            if field == "fill_drain" and value is None:
                continue
            minimum = 0 if field in ("buffer_bytes", "fill_drain") else 1
            if not _is_integer(value) or value < minimum:
                need = "a positive integer" if minimum else "an integer >= 0"
                raise ValueError(f"SystolicArray.{field} must be {need}, got {value!r}.")
            object.__setattr__(self, field, int(value))  # numpy integers as plain ints


@dataclasses.dataclass
class LayerCycles:
    """Cycles of one GEMM (one MAC row of the cost table)."""

    name: str
    kind: str
    M: int
    K: int
    N: int
    groups: int
    w_bits: int
    a_bits: int
    out_bits: int
    bytes_moved: int
    compute_cycles: int
    movement_cycles: int
    cycles: int

    @property
    def bound(self) -> str:
        return "memory" if self.movement_cycles > self.compute_cycles else "compute"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "bound": self.bound}


@dataclasses.dataclass
class CycleReport:
    """Per-layer rows and totals of :func:`estimate_cycles`."""

    model_name: str
    input_shape: tuple
    array: SystolicArray
    float_bits: int
    as_bits: Optional[int]
    layers: List[LayerCycles]
    totals: Dict[str, int]

    def to_dict(self) -> dict:
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "array": dataclasses.asdict(self.array),
            "float_bits": self.float_bits,
            "as_bits": self.as_bits,
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": dict(self.totals),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_text(self) -> str:
        return _format(self)


# ----------------------------------------------------------------------------------------------
# GEMM shapes from the layers.

_PART = re.compile(r"^(?P<path>.*)\[(?P<part>depthwise|pointwise)\]$")


def _dims(variable) -> Tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def _gemm(layer, part: Optional[str]) -> Tuple[int, int, int]:
    """(K per group, N, groups) of a MAC layer's GEMM."""
    if isinstance(layer, SEPARABLE_CONVS):
        *kernel, channels, multiplier = _dims(layer.depthwise_kernel)
        if part == "pointwise":
            return channels * multiplier, _dims(layer.pointwise_kernel)[-1], 1
        return math.prod(kernel), channels * multiplier, channels
    if isinstance(layer, DEPTHWISE_CONVS):
        *kernel, channels, multiplier = _dims(layer.depthwise_kernel)
        return math.prod(kernel), channels * multiplier, channels
    if isinstance(layer, tf.keras.layers.Conv2DTranspose) or type(layer).__name__.endswith("Transpose"):
        *kernel, cout, cin = _dims(layer.kernel)
        return cin, math.prod(kernel) * cout, 1
    if isinstance(layer, (tf.keras.layers.Conv1D, tf.keras.layers.Conv2D, tf.keras.layers.Conv3D)):
        shape = _dims(layer.kernel)
        return math.prod(shape[:-1]), shape[-1], int(getattr(layer, "groups", 1) or 1)
    if isinstance(layer, tf.keras.layers.Dense):
        cin, cout = _dims(layer.kernel)
        return cin, cout, 1
    raise ValueError(f"estimate_cycles: no GEMM mapping for layer {layer.name!r} ({type(layer).__name__}).")


# ----------------------------------------------------------------------------------------------
# The cycle arithmetic (module docstring).


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _tiling_compute(array: SystolicArray, M: int, K: int, N: int, lanes: int) -> int:
    """One pass of a dense K × N GEMM over the array, fill included."""
    k_slots = array.rows * lanes
    t_k, t_n = _ceil_div(K, k_slots), _ceil_div(N, array.cols)
    if array.fill_drain is not None:
        return t_k * t_n * (M + array.fill_drain)
    return t_k * t_n * M + t_n * _ceil_div(K, lanes) + t_k * N


def _compute_cycles(array: SystolicArray, M: int, K: int, N: int, groups: int, w: int, a: int) -> int:
    binary = w == 1 and a == 1
    lanes = array.pe_bits if binary else 1
    passes = 1 if binary else _ceil_div(w, array.pe_bits) * _ceil_div(a, array.pe_bits)
    if groups == 1:
        return passes * _tiling_compute(array, M, K, N, lanes)
    n_group, rows_group = N // groups, _ceil_div(K, lanes)
    per_tile = min(array.rows // rows_group, array.cols // n_group)
    if per_tile < 1:  # a group is larger than the array: tile each on its own
        return passes * groups * _tiling_compute(array, M, K, n_group, lanes)
    full, rest = divmod(groups, per_tile)
    tiles = [per_tile] * full + ([rest] if rest else [])
    if array.fill_drain is not None:
        return passes * len(tiles) * (M + array.fill_drain)
    return passes * sum(M + g * rows_group + g * n_group for g in tiles)


def _stored_output_bits(model, mac_rows: List[LayerCost], bits) -> Dict[str, int]:
    """{MAC row name: bits its output is stored at}, read from a functional model's graph (rule:
    the module docstring); {} for other models. ``bits(None)`` is the float precision."""
    try:
        nodes = model_nodes(model)
    except ValueError:
        return {}
    # A reading layer with MAC rows (its own, or its parts' and sublayers') reads at the input
    # bits of its first row.
    reads_at: Dict[str, int] = {}
    for row in mac_rows:
        top = _PART.sub(r"\g<path>", row.name).split("/")[0]
        reads_at.setdefault(top, bits(row.input_bits))
    readers = consumers(model)
    arity = {layer.name: len(inbound) for layer, inbound, _ in nodes}
    produced = {layer.name: output for layer, _, output in nodes}
    model_outputs = {id(tensor) for tensor in model.outputs}

    stored: Dict[str, int] = {}
    for row in mac_rows:
        part = _PART.match(row.name)
        layer_name = part.group("path") if part and part.group("part") == "pointwise" else row.name
        if layer_name not in produced:  # a depthwise part, a nested layer: the next-row rule
            continue
        widths, seen = [], set()
        pending = [(produced[layer_name], None)]  # (tensor, bits of the last fake quant on the way)
        while pending:
            tensor, quantized = pending.pop()
            if (id(tensor), quantized) in seen:
                continue
            seen.add((id(tensor), quantized))
            kept = quantized if quantized is not None else bits(None)
            if id(tensor) in model_outputs:
                widths.append(kept)
            for layer in readers.get(id(tensor), []):
                if layer.name in reads_at:
                    widths.append(reads_at[layer.name])
                elif arity[layer.name] > 1:
                    widths.append(kept)
                else:
                    fake_quant = getattr(layer, "bits", None)
                    is_fake_quant = isinstance(fake_quant, int) and not isinstance(fake_quant, bool)
                    pending.append((produced[layer.name], fake_quant if is_fake_quant else quantized))
        if widths:
            stored[row.name] = sum(set(widths))  # one copy per width its readers read
    return stored


def _bytes(elements: int, bits: int) -> int:
    return _ceil_div(elements * bits, 8)


def estimate_cycles(
    model: tf.keras.Model,
    array: SystolicArray = SystolicArray(),  # noqa: B008  (frozen: a shared default is safe)
    *,
    input_shape=None,
    float_bits: int = 16,
    as_bits: Optional[int] = None,
    output_bits: Optional[Mapping[str, int]] = None,
    elementwise_bytes: int = 0,
) -> CycleReport:
    """Cycles of one ``model`` inference on ``array`` (rules: the module docstring).

    # Arguments
    model: a built Keras model (as :func:`larq_poke.cost.profile` takes).
    array: the accelerator.
    input_shape: (H, W, C), required when the model's input size is not fixed.
    float_bits: bits of unquantized operands (16: bf16/fp16).
    as_bits: when given, unquantized operands count at this precision instead (8: the model's
        8-bit version).
    output_bits: {cost-table layer name: bits written per output value}, overriding the bits
        read from the graph.
    elementwise_bytes: extra DRAM bytes per image for elementwise work (0: not counted).

    # Returns
    A :class:`CycleReport` (``.totals["cycles"]``, ``.layers``, ``.to_text()``, ``.to_dict()``).
    """
    if as_bits is not None and (not _is_integer(as_bits) or as_bits < 1):
        raise ValueError(f"as_bits must be None or a positive integer, got {as_bits!r}.")
    if not _is_integer(elementwise_bytes) or elementwise_bytes < 0:
        raise ValueError(f"elementwise_bytes must be an integer >= 0, got {elementwise_bytes!r}.")
    as_bits = None if as_bits is None else int(as_bits)  # numpy integers as plain ints (JSON)
    bad = {name: value for name, value in (output_bits or {}).items() if not _is_integer(value) or value < 1}
    if bad:
        raise ValueError(f"output_bits values must be positive integers (bits per stored value), got {bad}.")
    cost = profile(model, input_shape=input_shape, float_bits=float_bits)
    unquantized = as_bits if as_bits is not None else int(float_bits)
    layers = dict(walk_layers(model))
    output_bits = dict(output_bits or {})

    def bits(value: Optional[int]) -> int:
        return int(value) if value else unquantized

    mac_rows: List[LayerCost] = [row for row in cost.layers if row.macs]
    unknown = set(output_bits) - {row.name for row in mac_rows}
    if unknown:
        raise ValueError(f"output_bits names no MAC layer of the cost table: {sorted(unknown)}.")
    stored_bits = _stored_output_bits(model, mac_rows, bits)
    rows: List[LayerCycles] = []
    for index, row in enumerate(mac_rows):
        path, part = row.name, None
        if path not in layers and _PART.match(path):
            path, part = _PART.match(path).group("path", "part")
        K, N, groups = _gemm(layers[path], part)
        M = row.macs // (K * N)
        if M * K * N != row.macs:
            raise ValueError(f"estimate_cycles: {row.name}: {row.macs} MACs are not M x {K} x {N}.")
        w, a = bits(row.weight_bits), bits(row.input_bits)
        if row.name in output_bits:
            o = int(output_bits[row.name])
        elif row.name in stored_bits:
            o = stored_bits[row.name]
        elif index + 1 < len(mac_rows):
            o = bits(mac_rows[index + 1].input_bits)
        else:
            o = unquantized
        in_elements = M * K if part == "pointwise" else math.prod(row.input_shape[1:])
        out_elements = M * N if part == "depthwise" else math.prod(row.output_shape[1:])
        in_bytes = _bytes(in_elements, a)
        reads = 1 if in_bytes <= array.buffer_bytes else _ceil_div(N // groups, array.cols)
        moved = _bytes(K * N, w) + reads * in_bytes + _bytes(out_elements, o)
        compute = _compute_cycles(array, M, K, N, groups, w, a)
        movement = _ceil_div(moved, array.dram_bytes_per_cycle)
        rows.append(LayerCycles(row.name, row.kind, M, K, N, groups, w, a, o, moved, compute, movement,
                                max(compute, movement)))
    if elementwise_bytes:
        movement = _ceil_div(int(elementwise_bytes), array.dram_bytes_per_cycle)
        rows.append(LayerCycles("(elementwise)", "elementwise", 0, 0, 0, 1, 0, 0, 0, int(elementwise_bytes),
                                0, movement, movement))
    totals = {
        "cycles": sum(r.cycles for r in rows),
        "compute_cycles": sum(r.compute_cycles for r in rows),
        "movement_cycles": sum(r.movement_cycles for r in rows),
        "bytes_moved": sum(r.bytes_moved for r in rows),
        "macs": int(cost.totals["macs"]),
        "memory_bound_layers": sum(r.bound == "memory" for r in rows),
        "layers": len(rows),
    }
    return CycleReport(cost.model_name, cost.input_shape, array, int(float_bits), as_bits, rows, totals)


# ----------------------------------------------------------------------------------------------
# Formatting.


def _format(report: CycleReport) -> str:
    a = report.array
    fill = "occupied rows + cols" if a.fill_drain is None else str(a.fill_drain)
    floats = f"{report.as_bits} bits (as_bits)" if report.as_bits is not None else f"{report.float_bits} bits"
    headers = ["Layer", "Kind", "M", "K", "N", "G", "W", "A", "Out", "Bytes", "Compute", "Movement", "Cycles", "Bound"]
    rows = [
        [r.name, r.kind, r.M, r.K, r.N, r.groups, r.w_bits, r.a_bits, r.out_bits, f"{r.bytes_moved:,}",
         f"{r.compute_cycles:,}", f"{r.movement_cycles:,}", f"{r.cycles:,}", r.bound]
        for r in report.layers
    ]
    t = report.totals
    size = "x".join(str(d) for d in report.input_shape)
    lines = [
        f"Cycles of {report.model_name} (one {size} input) on a {a.rows}x{a.cols} weight-stationary array, "
        f"{a.pe_bits}-bit PEs, {a.buffer_bytes:,} B buffer, {a.dram_bytes_per_cycle} B/cycle DRAM, "
        f"fill/drain per tile: {fill}; unquantized operands at {floats}",
    ]
    lines += text_table(headers, rows, left=2)
    lines += [
        f"Cycles:           {t['cycles']:,}  (sum of max(compute, movement) per layer)",
        f"Compute cycles:   {t['compute_cycles']:,}",
        f"Movement cycles:  {t['movement_cycles']:,}  ({t['bytes_moved']:,} bytes)",
        f"Memory-bound:     {t['memory_bound_layers']} of {t['layers']} layers",
    ]
    return "\n".join(lines)
