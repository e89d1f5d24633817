"""The report of an LCE conversion: what the flatbuffer contains, what each binary layer became,
how big the file is compared with the packed model, and whether it computes what Keras computes.

```python
result = larq_poke.converters.convert(model)
report = result.report
report.fully_binarized            # every binary layer became an LceBconv2d
report.to_dict()["op_counts"]     # {"LceQuantize": 1, "LceBconv2d": 3, ...}
print(report.to_text())
ConversionReport.from_dict(json.loads(report.to_json()))   # round trip
```

Glossary of the dict keys:

* ``op_counts``: ops per type in the flatbuffer (LCE custom ops by name);
* ``binary_layers``: per binary Keras layer, ``became`` (``"LceBconv2d"`` or None), the op index
  and facts of the binary conv, or ``reason_code`` / ``reason`` why it stayed a float op;
* ``bconvs``: every ``LceBconv2d`` with its output kind (``bitpacked`` = writes 1-bit activations
  for the next binary conv; ``float32`` / ``int8`` otherwise), padding mode, fused activation and
  whether BN / scales were folded into its multiplier / bias;
* ``lce_dequantize``: ``LceDequantize`` ops — each marks a binary tensor turned back into float
  for an op that could not take it binary (a failed fusion);
* ``same_zero_padding``: binary convs with SAME zero padding (Larq's default ``pad_values=0``):
  a correction pass, no fused activation, no bit-packed output;
* ``float_ops_between_binary_convs``: elementwise ops (ADD, MUL, PRELU, MAXIMUM, ...) on the
  path from one binary conv to the next, with their output type (float32, or int8 in an int8
  model) and shape; ``other_ops_between_binary_convs`` counts the rest (pooling, float convs, ...);
* ``precision``: ``"float32"``, ``"int8"`` (all compute ops outside the binary convs are int8) or
  ``"mixed"``, read from the tensor types of the file, never from the request;
* ``size_bytes`` vs ``packed_size_bytes`` and ``storable_size_bytes``: the file vs the packed
  model (binary weights at one bit, k-bit weights at k bits) and vs what TFLite can store at best
  (multi-bit weights rounded up to int8 / int16), both from :mod:`larq_poke.cost`; None when that
  module is unavailable;
* ``parity``: Keras vs the LCE interpreter on sample inputs: ``max_abs_diff``, ``top1_agreement``
  (fraction of samples whose arg-max agrees, for outputs shaped ``(batch, classes)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from larq_poke.converters.binary_layers import LayerFate
from larq_poke.converters.flatbuffer import BconvInfo

__all__ = ["ConversionReport", "Parity", "QuantizationInfoError", "StrictConversionError"]


class QuantizationInfoError(ValueError):
    """``int8=True`` for a model without fake-quant ops, or a conversion that produced no int8."""


class MisquantizedBiasError(RuntimeError):
    """The converter wrote a quantized conv whose bias scale is not input scale × weight scale,
    or whose bias saturates int32
    (:meth:`~larq_poke.converters.flatbuffer.FlatbufferModel.misquantized_biases`): the file
    would compute wrong outputs, so it is not returned; it is on the error as ``.flatbuffer``
    for inspection."""

    def __init__(self, message: str, flatbuffer: bytes = b""):
        super().__init__(message)
        self.flatbuffer = flatbuffer


class StrictConversionError(RuntimeError):
    """Raised by ``convert(..., strict=True)`` when a binary layer did not become an
    ``LceBconv2d``. The full :class:`ConversionResult` is available as ``.result``."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


@dataclass
class Parity:
    """Keras vs LCE interpreter on the same inputs."""

    max_abs_diff: Optional[float]
    top1_agreement: Optional[float]
    max_abs_reference: Optional[float] = None
    num_samples: int = 0
    inputs: str = ""  # how the inputs were made
    interpreter: str = ""  # kernel and threads
    reference: str = ""  # which Keras model was the reference
    outputs: List[dict] = field(default_factory=list)  # per output: name, shape, diffs

    @property
    def checked(self) -> bool:
        return self.max_abs_diff is not None

    @property
    def relative_diff(self) -> Optional[float]:
        if self.max_abs_diff is None or not self.max_abs_reference:
            return None
        return self.max_abs_diff / self.max_abs_reference

    def to_dict(self) -> dict:
        return {
            "checked": self.checked,
            "max_abs_diff": self.max_abs_diff,
            "top1_agreement": self.top1_agreement,
            "max_abs_reference": self.max_abs_reference,
            "num_samples": self.num_samples,
            "inputs": self.inputs,
            "interpreter": self.interpreter,
            "reference": self.reference,
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Parity":
        keys = ("max_abs_reference", "num_samples", "inputs", "interpreter", "reference", "outputs")
        return cls(
            max_abs_diff=data.get("max_abs_diff"),
            top1_agreement=data.get("top1_agreement"),
            **{k: data[k] for k in keys if k in data},
        )

    @classmethod
    def skipped(cls, why: str) -> "Parity":
        return cls(max_abs_diff=None, top1_agreement=None, inputs=why)


@dataclass
class ConversionReport:
    """What an LCE conversion produced. Build it with :func:`larq_poke.converters.convert`."""

    model_name: str
    target: str
    int8_requested: bool
    precision: str
    size_bytes: int
    packed_size_bytes: Optional[int]
    op_counts: Dict[str, int]
    binary_layers: List[LayerFate]
    bconvs: List[BconvInfo]
    unmatched_bconvs: List[int] = field(default_factory=list)
    float_ops_between_binary_convs: List[dict] = field(default_factory=list)
    other_ops_between_binary_convs: Dict[str, int] = field(default_factory=dict)
    fused_activations: Dict[str, int] = field(default_factory=dict)
    op_output_types: Dict[str, int] = field(default_factory=dict)
    float_compute_ops: Dict[str, int] = field(default_factory=dict)
    parity: Parity = field(default_factory=lambda: Parity.skipped("not checked"))
    converter_errors: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    rewrites: List[str] = field(default_factory=list)
    conversion_seconds: Optional[float] = None
    op_sequence: str = ""
    storable_size_bytes: Optional[int] = None

    # --- derived facts ------------------------------------------------------------------------
    @property
    def lce_dequantize(self) -> int:
        return self.op_counts.get("LceDequantize", 0)

    @property
    def same_zero_padding(self) -> int:
        return sum(1 for b in self.bconvs if b.same_zero)

    @property
    def bitpacked_outputs(self) -> int:
        return sum(1 for b in self.bconvs if b.output == "bitpacked")

    @property
    def not_binarized(self) -> List[LayerFate]:
        """Binary layers that did not become an ``LceBconv2d``."""
        return [fate for fate in self.binary_layers if not fate.fused]

    @property
    def fully_binarized(self) -> bool:
        return not self.not_binarized

    def strict_failure_message(self) -> Optional[str]:
        """None when every binary layer became an LceBconv2d, else the explanation."""
        missing = self.not_binarized
        if not missing:
            return None
        lines = [
            f"{len(missing)} of {len(self.binary_layers)} binary layers did not become an "
            "LceBconv2d (they run as float ops):"
        ]
        lines += [f"  {f.layer} ({f.layer_class}): {f.reason}" for f in missing]
        return "\n".join(lines)

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "target": self.target,
            "int8_requested": self.int8_requested,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "packed_size_bytes": self.packed_size_bytes,
            "storable_size_bytes": self.storable_size_bytes,
            "op_counts": dict(self.op_counts),
            "binary_layers": [fate.to_dict() for fate in self.binary_layers],
            "fully_binarized": self.fully_binarized,
            "bconvs": [b.to_dict() for b in self.bconvs],
            "unmatched_bconvs": list(self.unmatched_bconvs),
            "bitpacked_outputs": self.bitpacked_outputs,
            "fused_activations": dict(self.fused_activations),
            "same_zero_padding": self.same_zero_padding,
            "lce_dequantize": self.lce_dequantize,
            "float_ops_between_binary_convs": [
                dict(op) for op in self.float_ops_between_binary_convs
            ],
            "other_ops_between_binary_convs": dict(self.other_ops_between_binary_convs),
            "op_output_types": dict(self.op_output_types),
            "float_compute_ops": dict(self.float_compute_ops),
            "parity": self.parity.to_dict(),
            "converter_errors": list(self.converter_errors),
            "notes": list(self.notes),
            "rewrites": list(self.rewrites),
            "conversion_seconds": self.conversion_seconds,
            "op_sequence": self.op_sequence,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ConversionReport":
        return cls(
            model_name=data["model_name"],
            target=data["target"],
            int8_requested=data["int8_requested"],
            precision=data["precision"],
            size_bytes=data["size_bytes"],
            packed_size_bytes=data.get("packed_size_bytes"),
            storable_size_bytes=data.get("storable_size_bytes"),
            op_counts=dict(data["op_counts"]),
            binary_layers=[LayerFate.from_dict(d) for d in data["binary_layers"]],
            bconvs=[BconvInfo.from_dict(d) for d in data.get("bconvs", [])],
            unmatched_bconvs=list(data.get("unmatched_bconvs", [])),
            float_ops_between_binary_convs=[
                dict(d) for d in data.get("float_ops_between_binary_convs", [])
            ],
            other_ops_between_binary_convs=dict(data.get("other_ops_between_binary_convs", {})),
            fused_activations=dict(data.get("fused_activations", {})),
            op_output_types=dict(data.get("op_output_types", {})),
            float_compute_ops=dict(data.get("float_compute_ops", {})),
            parity=Parity.from_dict(data.get("parity") or {}),
            converter_errors=list(data.get("converter_errors", [])),
            notes=list(data.get("notes", [])),
            rewrites=list(data.get("rewrites", [])),
            conversion_seconds=data.get("conversion_seconds"),
            op_sequence=data.get("op_sequence", ""),
        )

    def to_json(self, **kwargs) -> str:
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    # --- text ---------------------------------------------------------------------------------
    def to_text(self) -> str:
        lines = []
        title = f"LCE conversion of {self.model_name!r} (target {self.target}, {self.precision}"
        if self.int8_requested:
            title += ", int8 requested"
        title += ")"
        lines.append(title)
        if self.rewrites:
            lines.append(f"  deployable rewrites applied: {', '.join(self.rewrites)}")
        size = f"  file size {_bytes(self.size_bytes)}"
        if self.packed_size_bytes:
            ratio = self.size_bytes / self.packed_size_bytes
            size += f"; packed model {_bytes(self.packed_size_bytes)} (file = {ratio:.2f} x packed"
            if self.storable_size_bytes:
                stored = self.size_bytes / self.storable_size_bytes
                size += f", {stored:.2f} x the storable {_bytes(self.storable_size_bytes)}"
            size += ")"
        if self.conversion_seconds is not None:
            size += f"; converted in {self.conversion_seconds:.1f} s"
        lines.append(size)
        census = ", ".join(f"{name} {count}" for name, count in sorted(
            self.op_counts.items(), key=lambda kv: (-kv[1], kv[0])
        ))
        lines.append(f"  ops ({sum(self.op_counts.values())}): {census}")

        total = len(self.binary_layers)
        fused = total - len(self.not_binarized)
        lines.append(f"  binary layers: {fused}/{total} became LceBconv2d")
        width = max([len(f.layer) for f in self.binary_layers] + [8])
        for fate in self.binary_layers:
            if fate.fused:
                lines.append(
                    f"    {fate.layer:<{width}}  op {fate.op_index:<4} {fate.bconv.describe()}"
                )
            else:
                lines.append(
                    f"    {fate.layer:<{width}}  FLOAT   [{fate.reason_code}] {fate.reason}"
                )
        if self.unmatched_bconvs:
            lines.append(
                "  LceBconv2d ops no binary layer accounts for: "
                + ", ".join(str(i) for i in self.unmatched_bconvs)
            )
        activations = ", ".join(f"{k} {v}" for k, v in self.fused_activations.items()) or "none"
        lines.append(
            f"  bit-packed outputs: {self.bitpacked_outputs}/{len(self.bconvs)}   "
            f"same-zero padding: {self.same_zero_padding}   LceDequantize: {self.lce_dequantize}"
        )
        lines.append(f"  fused activations: {activations}")
        if self.float_ops_between_binary_convs:
            counts: Dict[str, int] = {}
            for op in self.float_ops_between_binary_convs:
                key = f"{op['op']}({op['dtype'].lower()})"
                counts[key] = counts.get(key, 0) + 1
            text = ", ".join(f"{k} {v}" for k, v in counts.items())
            count = len(self.float_ops_between_binary_convs)
            lines.append(f"  elementwise ops between binary convs ({count}): {text}")
        else:
            lines.append("  elementwise ops between binary convs: none")
        if self.other_ops_between_binary_convs:
            text = ", ".join(f"{k} {v}" for k, v in self.other_ops_between_binary_convs.items())
            lines.append(f"  other ops between binary convs: {text}")
        if self.int8_requested or self.precision != "float32":
            types = ", ".join(f"{k} {v}" for k, v in self.op_output_types.items())
            lines.append(f"  op output types: {types}")
        if self.float_compute_ops and self.precision != "float32":
            text = ", ".join(f"{k} {v}" for k, v in self.float_compute_ops.items())
            lines.append(f"  compute ops still float: {text}")
        lines.append("  " + _parity_text(self.parity))
        for error in self.converter_errors:
            lines.append(f"  converter: {error}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)


def _bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.2f} MiB ({n:,} B)"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB ({n:,} B)"
    return f"{n} B"


def _parity_text(parity: Parity) -> str:
    if not parity.checked:
        return f"parity: not checked ({parity.inputs})"
    text = f"parity vs Keras ({parity.num_samples} {parity.inputs}; {parity.interpreter}): "
    text += f"max |diff| {parity.max_abs_diff:.3g}"
    if parity.max_abs_reference is not None:
        text += f" (max |keras| {parity.max_abs_reference:.3g})"
    if parity.top1_agreement is not None:
        text += f", top-1 agreement {100 * parity.top1_agreement:.1f} %"
    return text
