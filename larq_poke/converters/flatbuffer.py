"""Read a TFLite flatbuffer produced by the Larq Compute Engine converter: the op census, the facts
of every binary convolution and the non-binary glue between binary convolutions.

The flatbuffer is parsed with the `tflite` package (the generated TFLite schema); custom-op options
are decoded with `flatbuffers.flexbuffers`. Nothing is executed, so this works on any machine.

```python
from larq_poke.converters.flatbuffer import read_flatbuffer

fb = read_flatbuffer(open("quicknet.tflite", "rb").read())
fb.op_counts()                  # {"CONV_2D": 5, "LceQuantize": 16, "LceBconv2d": 16, ...}
fb.bconvs[0].output             # "float32" | "int8" | "bitpacked"
fb.bconvs[0].same_zero          # SAME padding with pad_values=0 (no fusion of activations)
fb.ops_between_binary_convs()   # ADD, PRELU, MAXIMUM, ... on the path from one bconv to the next
```

What a binary convolution (`LceBconv2d`) looks like in the file (LCE 0.16): inputs are the
bit-packed activations, the bit-packed OHWI filter (``[filters, kh, kw, ceil(channels_in_per_group / 32)]``
int32 words), the post-activation multiplier and bias (float, per output channel, or absent) and the
output thresholds (int32, present only when the output is bit-packed). Its options are a flexbuffer
map with ``channels_in``, ``dilation_{height,width}_factor``, ``fused_activation_function``
(0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6), ``padding`` (0 SAME, 1 VALID), ``pad_values`` (0 or 1)
and ``stride_{height,width}``. The output tensor is INT32 when the conv writes bit-packed
activations (1 bit per channel, its consumer is the next binary conv), FLOAT32 or INT8 otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "BconvInfo",
    "full_resolution_elementwise_ops",
    "FlatbufferModel",
    "NotAnLceModelError",
    "NotATFLiteModelError",
    "OperatorInfo",
    "TensorInfo",
    "ELEMENTWISE_OPS",
    "LCE_OPS",
    "read_flatbuffer",
]

_BIASED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})  # inputs: x, weights, bias
LCE_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")

# Builtin ops that act element by element (activations, arithmetic, comparisons, selects and the
# int8 <-> float conversions). Between two binary convs each of them is a full pass over the
# activation tensor, which is what makes a "binary" network slow on a phone.
ELEMENTWISE_OPS = frozenset(
    {
        "ADD", "SUB", "MUL", "DIV", "PRELU", "MAXIMUM", "MINIMUM", "RELU", "RELU6",
        "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "TANH", "LOGISTIC", "HARD_SWISH", "GELU",
        "ELU", "ABS", "NEG", "SQUARE", "SQRT", "RSQRT", "EXP", "LOG", "POW",
        "SQUARED_DIFFERENCE", "FLOOR", "CEIL", "ROUND", "SIGN", "GREATER", "GREATER_EQUAL",
        "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL", "SELECT", "SELECT_V2", "LOGICAL_AND",
        "LOGICAL_OR", "LOGICAL_NOT", "CAST", "QUANTIZE", "DEQUANTIZE", "FLOOR_DIV", "FLOOR_MOD",
        "ADD_N",
    }  # fmt: skip
)

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "FLOAT64": np.float64,
    "BOOL": np.bool_,
}  # fmt: skip


class NotATFLiteModelError(ValueError):
    """The bytes are not a TFLite flatbuffer (missing ``TFL3`` identifier or unparsable)."""


class NotAnLceModelError(ValueError):
    """A valid TFLite model that contains no Larq Compute Engine op."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of subgraph 0: name, element type (``"FLOAT32"``, ``"INT8"``, ...), shape, and
    whether it is a constant (has data in the file)."""

    index: int
    name: str
    dtype: str
    shape: Tuple[int, ...]
    is_constant: bool
    nbytes: int = 0
    scales: Tuple[float, ...] = ()  # quantization scales (one per channel, or one), () for float


@dataclass(frozen=True)
class OperatorInfo:
    """One operator in execution order: type (builtin name or custom code), tensor indices (-1 for
    an omitted optional input) and the builtin fused activation where the op has one."""

    index: int
    op_type: str
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    fused_activation: Optional[str] = None

    @property
    def is_lce(self) -> bool:
        return self.op_type in LCE_OPS


@dataclass(frozen=True)
class BconvInfo:
    """Facts of one ``LceBconv2d`` op, read from its options and tensors.

    ``output`` is ``"bitpacked"`` (INT32 output: 1 bit per channel, consumed by the next binary
    conv), ``"float32"`` or ``"int8"``. ``multiplier`` / ``bias`` are ``"folded"`` when they carry
    non-trivial per-channel constants (BN, scales, shifts folded into the conv), ``"trivial"`` when
    they are all ones / zeros, ``"absent"`` when the input is omitted (bit-packed output uses
    ``thresholds`` instead), ``"dynamic"`` when not a constant.
    """

    op_index: int
    filters: int
    kernel_size: Tuple[int, int]
    channels_in: int
    groups: int
    strides: Tuple[int, int]
    dilations: Tuple[int, int]
    padding: str
    pad_values: int
    fused_activation: str
    output: str
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    multiplier: str
    bias: str
    thresholds: bool
    output_tensor: str = ""

    @property
    def same_zero(self) -> bool:
        """SAME padding with zeros (Larq's default ``pad_values=0``): needs a correction step,
        cannot fuse an activation and cannot write bit-packed output."""
        return self.padding == "SAME" and self.pad_values == 0

    @property
    def padding_mode(self) -> str:
        """``"valid"``, ``"same-one"`` or ``"same-zero"``."""
        if self.padding == "VALID":
            return "valid"
        return "same-one" if self.pad_values == 1 else "same-zero"

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["padding_mode"] = self.padding_mode
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "BconvInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**kwargs)

    def describe(self) -> str:
        """One line, e.g. ``3x3/2 same-one 64->128 g1 act RELU out float32 m/b folded``."""
        kh, kw = self.kernel_size
        stride = self.strides[0] if self.strides[0] == self.strides[1] else self.strides
        dil = "" if self.dilations == (1, 1) else f" dil {self.dilations[0]}"
        groups = f" groups {self.groups}" if self.groups != 1 else ""
        if self.output == "bitpacked":
            transform = "thresholds"
        else:
            transform = f"m/b {self.multiplier}/{self.bias}"
        return (
            f"{kh}x{kw}/{stride}{dil} {self.padding_mode} {self.channels_in}->{self.filters}"
            f"{groups} act {self.fused_activation} out {self.output} {transform}"
        )


@dataclass
class FlatbufferModel:
    """A parsed TFLite model (subgraph 0), with helpers for the LCE-specific questions."""

    size_bytes: int
    tensors: List[TensorInfo]
    operators: List[OperatorInfo]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    output_names: Dict[int, str] = field(default_factory=dict)  # tensor index -> signature name
    bconvs: List[BconvInfo] = field(default_factory=list)
    num_subgraphs: int = 1
    constants: Dict[int, bytes] = field(default_factory=dict, repr=False)

    def constant_values(self, tensor_index: int) -> Optional[np.ndarray]:
        """The data of a constant tensor as a numpy array (None for activations)."""
        if tensor_index < 0 or tensor_index not in self.constants:
            return None
        tensor = self.tensors[tensor_index]
        dtype = _NUMPY_TYPES.get(tensor.dtype)
        if dtype is None:
            return np.frombuffer(self.constants[tensor_index], dtype=np.uint8)
        values = np.frombuffer(self.constants[tensor_index], dtype=dtype)
        if tensor.shape and int(np.prod(tensor.shape)) == values.size:
            values = values.reshape(tensor.shape)
        return values

    # --- census -------------------------------------------------------------------------------
    def op_counts(self) -> Dict[str, int]:
        """Number of ops per type (builtin names, custom codes for LCE ops), in first-seen order."""
        return dict(Counter(op.op_type for op in self.operators))

    def has_lce_ops(self) -> bool:
        return any(op.is_lce for op in self.operators)

    def require_lce(self) -> "FlatbufferModel":
        """Return self, or raise :class:`NotAnLceModelError` if there is no LCE op at all."""
        if not self.has_lce_ops():
            census = ", ".join(f"{k} {v}" for k, v in self.op_counts().items()) or "no ops"
            raise NotAnLceModelError(
                "this TFLite model contains no Larq Compute Engine op (LceQuantize, LceBconv2d, "
                f"...): it is a plain TFLite model ({census}). Convert a Larq model with "
                "binary layers using larq_poke.converters.convert."
            )
        return self

    def op_output_dtype(self, op: OperatorInfo) -> Optional[str]:
        outs = [t for t in op.outputs if t >= 0]
        return self.tensors[outs[0]].dtype if outs else None

    def op_output_shape(self, op: OperatorInfo) -> Tuple[int, ...]:
        outs = [t for t in op.outputs if t >= 0]
        return self.tensors[outs[0]].shape if outs else ()

    def output_dtype_counts(self) -> Dict[str, int]:
        """Ops per output element type (``{"FLOAT32": 12, "INT8": 30, "INT32": 4}``)."""
        return dict(Counter(self.op_output_dtype(op) or "NONE" for op in self.operators))

    def fused_activation_counts(self) -> Dict[str, int]:
        """Activations fused into ops (binary convs and builtin ops), ``NONE`` left out."""
        counts: Counter = Counter()
        for bconv in self.bconvs:
            if bconv.fused_activation != "NONE":
                counts[f"LceBconv2d:{bconv.fused_activation}"] += 1
        for op in self.operators:
            if op.fused_activation not in (None, "NONE"):
                counts[f"{op.op_type}:{op.fused_activation}"] += 1
        return dict(counts)

    def misquantized_biases(self, rtol: float = 1e-3) -> List[str]:
        """Quantized convs and fully-connected ops (of subgraph 0, as everything here) whose int32
        bias scale is not input scale × weight scale, one line each (empty when all agree).

        TFLite's integer kernels add the bias to an accumulator counted in units of input scale
        × weight scale, so any other bias scale silently rescales the bias. The TFLite converter
        writes such files when two fake quants with different ranges follow each other: it keeps
        the first range for the tensor but quantizes the bias for the second. A bias clipped at
        the int32 limit (a channel whose weight scale is far too small for its bias, e.g. all-zero
        weights) is listed too.

        >>> read_flatbuffer("model.tflite").misquantized_biases()
        []
        """
        problems = []
        for op in self.operators:
            if op.op_type not in _BIASED_OPS or len(op.inputs) < 3 or min(op.inputs[:3]) < 0:
                continue
            x, w, b = (np.asarray(self.tensors[i].scales, np.float64) for i in op.inputs[:3])
            if not (x.size and w.size and b.size):
                continue
            expected = x * w
            if b.shape != expected.shape and expected.size != 1:
                problems.append(f"{op.op_type} #{op.index} ({self._output_name(op)}): {b.size} bias scales "
                                f"for {expected.size} channels")
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                deviation = np.abs(b / expected - 1.0)
            deviation = np.where(np.isfinite(deviation), deviation, np.inf)  # a zero scale is a mismatch too
            if np.max(deviation) > rtol:
                worst = float((b / np.where(expected == 0, np.nan, expected)).flat[int(np.argmax(deviation))])
                problems.append(f"{op.op_type} #{op.index} ({self._output_name(op)}): bias scale {worst:.4g} × "
                                "input scale × weight scale")
            values = self.constant_values(op.inputs[2])
            if values is not None and self.tensors[op.inputs[2]].dtype == "INT32":
                saturated = int(np.sum(np.abs(values.astype(np.int64)) >= 2**31 - 1))
                if saturated:
                    problems.append(f"{op.op_type} #{op.index} ({self._output_name(op)}): {saturated} bias value(s) "
                                    "at the int32 limit (a weight scale too small for the bias)")
        return problems

    def _output_name(self, op: OperatorInfo) -> str:
        outs = [t for t in op.outputs if t >= 0]
        return self.tensors[outs[0]].name if outs else "no output"

    # --- graph structure ----------------------------------------------------------------------
    def _producers_consumers(self):
        producer: Dict[int, int] = {}
        consumers: Dict[int, List[int]] = {}
        for op in self.operators:
            for t in op.outputs:
                if t >= 0:
                    producer[t] = op.index
            for t in op.inputs:
                if t >= 0:
                    consumers.setdefault(t, []).append(op.index)
        return producer, consumers

    def ops_between_binary_convs(self) -> List[OperatorInfo]:
        """Non-LCE ops that lie on a path from one ``LceBconv2d`` to another (downstream of a
        binary conv and upstream of a binary conv), in execution order: the glue that runs at
        (float or int8) precision inside the binary part of the network."""
        producer, consumers = self._producers_consumers()
        bconv_ops = [op.index for op in self.operators if op.op_type == "LceBconv2d"]
        if len(bconv_ops) < 2:
            return []

        downstream = set()
        stack = list(bconv_ops)
        while stack:
            i = stack.pop()
            for t in self.operators[i].outputs:
                for j in consumers.get(t, ()):
                    if j not in downstream:
                        downstream.add(j)
                        stack.append(j)
        upstream = set()
        stack = list(bconv_ops)
        while stack:
            i = stack.pop()
            for t in self.operators[i].inputs:
                j = producer.get(t)
                if j is not None and j not in upstream:
                    upstream.add(j)
                    stack.append(j)
        return [
            op
            for op in self.operators
            if op.index in downstream and op.index in upstream and not op.is_lce
        ]

    def elementwise_ops_between_binary_convs(self) -> List[OperatorInfo]:
        """The elementwise subset of :meth:`ops_between_binary_convs` (ADD, MUL, PRELU, ...)."""
        return [op for op in self.ops_between_binary_convs() if op.op_type in ELEMENTWISE_OPS]

    def op_sequence(self) -> str:
        """Ops in execution order joined with ``>``, binary convs annotated, e.g.
        ``LceQuantize > LceBconv2d[bitpacked, same-one] > LceBconv2d[float32, same-one]``."""
        by_index = {b.op_index: b for b in self.bconvs}
        parts = []
        for op in self.operators:
            if op.index in by_index:
                b = by_index[op.index]
                extra = "" if b.fused_activation == "NONE" else f", {b.fused_activation}"
                parts.append(f"LceBconv2d[{b.output}, {b.padding_mode}{extra}]")
            else:
                parts.append(op.op_type)
        return " > ".join(parts)


# --- parsing ----------------------------------------------------------------------------------
def _enum_names(enum_cls) -> Dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _buffer_bytes(model, data: bytes, buffer_index: int) -> bytes:
    if buffer_index <= 0 or buffer_index >= model.BuffersLength():
        return b""
    buf = model.Buffers(buffer_index)
    if buf is None:
        return b""
    offset, size = buf.Offset(), buf.Size()
    if offset > 1 and size > 0:  # large models store buffers after the flatbuffer
        return data[offset : offset + size]
    if buf.DataLength() == 0:
        return b""
    return buf.DataAsNumpy().tobytes()


def _builtin_fused_activation(tflite, op, options_names: Dict[int, str]) -> Optional[str]:
    options_type = op.BuiltinOptionsType()
    if options_type == 0:
        return None
    class_name = options_names.get(options_type)
    options_cls = getattr(tflite, class_name, None) if class_name else None
    if options_cls is None or not hasattr(options_cls, "FusedActivationFunction"):
        return None
    table = op.BuiltinOptions()
    if table is None:
        return None
    options = options_cls()
    options.Init(table.Bytes, table.Pos)
    code = options.FusedActivationFunction()
    return _ACTIVATIONS.get(code, str(code))


def _classify_constant(values: Optional[np.ndarray], trivial_value: float) -> str:
    if values is None:
        return "dynamic"
    if values.size and np.all(values == trivial_value):
        return "trivial"
    return "folded"


def read_flatbuffer(data: Union[bytes, bytearray, str, os.PathLike]) -> FlatbufferModel:
    """Parse a ``.tflite`` flatbuffer (bytes or a path) into a :class:`FlatbufferModel`.

    Raises :class:`NotATFLiteModelError` for anything that is not a TFLite model. A valid model
    without LCE ops parses fine; call :meth:`FlatbufferModel.require_lce` to insist on LCE ops.
    """
    import tflite
    from flatbuffers import flexbuffers

    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            data = f.read()
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        head = data[:8]
        raise NotATFLiteModelError(
            f"not a TFLite model: expected the flatbuffer identifier 'TFL3' at bytes 4-8, got "
            f"{head[4:8]!r} ({len(data)} bytes in all)"
        )
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        num_subgraphs = model.SubgraphsLength()
        if num_subgraphs < 1:
            raise NotATFLiteModelError("not a usable TFLite model: it has no subgraph")
        subgraph = model.Subgraphs(0)
        op_names = _enum_names(tflite.BuiltinOperator)
        type_names = _enum_names(tflite.TensorType)
        options_names = _enum_names(tflite.BuiltinOptions)

        tensors = []
        constants: Dict[int, bytes] = {}
        for i in range(subgraph.TensorsLength()):
            t = subgraph.Tensors(i)
            raw = _buffer_bytes(model, data, t.Buffer())
            if raw:
                constants[i] = raw
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(
                TensorInfo(
                    index=i,
                    name=(t.Name() or b"").decode("utf-8", "replace"),
                    dtype=type_names.get(t.Type(), str(t.Type())),
                    shape=shape,
                    is_constant=bool(raw),
                    nbytes=len(raw),
                    scales=_scales(t),
                )
            )

        operators, bconvs = [], []
        for i in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = (code.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
            inputs = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outputs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            info = OperatorInfo(
                index=i,
                op_type=name,
                inputs=inputs,
                outputs=outputs,
                fused_activation=_builtin_fused_activation(tflite, op, options_names),
            )
            operators.append(info)
            if name == "LceBconv2d":
                options = {}
                if op.CustomOptionsLength():
                    options = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
                bconvs.append(_bconv_info(info, options, tensors, constants))

        output_names: Dict[int, str] = {}
        if model.SignatureDefsLength():
            signature = model.SignatureDefs(0)
            for j in range(signature.OutputsLength()):
                entry = signature.Outputs(j)
                output_names[int(entry.TensorIndex())] = (entry.Name() or b"").decode()
    except NotATFLiteModelError:
        raise
    except Exception as err:  # a truncated or corrupt file fails deep inside the generated reader
        raise NotATFLiteModelError(f"not a readable TFLite model ({type(err).__name__}: {err})") from err

    return FlatbufferModel(
        size_bytes=len(data),
        tensors=tensors,
        operators=operators,
        inputs=_indices(subgraph.InputsAsNumpy()) if subgraph.InputsLength() else (),
        outputs=_indices(subgraph.OutputsAsNumpy()) if subgraph.OutputsLength() else (),
        output_names=output_names,
        bconvs=bconvs,
        num_subgraphs=num_subgraphs,
        constants=constants,
    )


def _scales(tensor) -> Tuple[float, ...]:
    quantization = tensor.Quantization()
    if quantization is None or not quantization.ScaleLength():
        return ()
    return tuple(float(v) for v in quantization.ScaleAsNumpy())


def _indices(array) -> Tuple[int, ...]:
    return tuple(int(x) for x in array)


def _bconv_info(
    op: OperatorInfo, options: dict, tensors: Sequence[TensorInfo], constants: Dict[int, bytes]
) -> BconvInfo:
    def tensor(position: int) -> Optional[TensorInfo]:
        if position < len(op.inputs) and op.inputs[position] >= 0:
            return tensors[op.inputs[position]]
        return None

    def constant_values(position: int, dtype) -> Optional[np.ndarray]:
        t = tensor(position)
        if t is None or t.index not in constants:
            return None
        return np.frombuffer(constants[t.index], dtype=dtype)

    def transform(position: int, trivial: float) -> str:
        if tensor(position) is None:
            return "absent"
        return _classify_constant(constant_values(position, np.float32), trivial)

    activations = tensor(0)
    filt = tensor(1)
    output = tensors[op.outputs[0]]
    filters, kh, kw, words = (filt.shape + (0, 0, 0, 0))[:4] if filt else (0, 0, 0, 0)
    channels_in = int(options.get("channels_in", 0))
    # The filter holds ceil(channels_in_per_group / 32) words; grouped convs need a multiple of 32
    # channels per group, so channels_in / (32 * words) is the number of groups.
    groups = max(1, channels_in // (32 * words)) if words else 1
    output_kind = {"INT32": "bitpacked", "FLOAT32": "float32", "INT8": "int8"}.get(
        output.dtype, output.dtype.lower()
    )
    return BconvInfo(
        op_index=op.index,
        filters=int(filters),
        kernel_size=(int(kh), int(kw)),
        channels_in=channels_in,
        groups=int(groups),
        strides=(int(options.get("stride_height", 1)), int(options.get("stride_width", 1))),
        dilations=(
            int(options.get("dilation_height_factor", 1)),
            int(options.get("dilation_width_factor", 1)),
        ),
        padding=_PADDING.get(int(options.get("padding", 1)), str(options.get("padding"))),
        pad_values=int(options.get("pad_values", 0)),
        fused_activation=_ACTIVATIONS.get(
            int(options.get("fused_activation_function", 0)),
            str(options.get("fused_activation_function")),
        ),
        output=output_kind,
        input_shape=activations.shape if activations else (),
        output_shape=output.shape,
        multiplier=transform(2, 1.0),
        bias=transform(3, 0.0),
        thresholds=tensor(4) is not None,
        output_tensor=output.name,
    )


def full_resolution_elementwise_ops(info) -> dict:
    """Census of the elementwise ops on full-resolution tensors of the binary part of a
    converted model (a :class:`~larq_poke.converters.flatbuffer.FlatbufferModel`): ops of
    :data:`~larq_poke.converters.flatbuffer.ELEMENTWISE_OPS` after the first ``LceQuantize``
    whose output is a 4-D map larger than 1×1 (the SE's 1×1 arithmetic is not counted; neither
    are the stem's ops before the first binary conv).

    Returns ``{"counts": {op: n}, "total": n, "binary_convs": n, "per_binary_conv": x}``.
    """
    quantize = [op.index for op in info.operators if op.op_type == "LceQuantize"]
    start = min(quantize) if quantize else len(info.operators)
    counts: Counter = Counter()
    for op in info.operators[start:]:
        shape = info.op_output_shape(op)
        if op.op_type in ELEMENTWISE_OPS and len(shape) == 4 and shape[1] * shape[2] > 1:
            counts[op.op_type] += 1
    total = sum(counts.values())
    bconvs = len(info.bconvs)
    return {
        "counts": dict(counts),
        "total": total,
        "binary_convs": bconvs,
        "per_binary_conv": total / bconvs if bconvs else None,
    }
