"""Convert a Larq model to a Larq Compute Engine (LCE) TFLite flatbuffer, with proof that the
binary layers were optimised and that the file computes what the Keras model computes.

```python
import larq_poke
from larq_poke.converters import convert

result = convert(model)                 # LCE conversion + flatbuffer census + parity check
result.save("model.tflite")
print(result.report.to_text())          # op census, per-binary-layer fate, sizes, parity
convert(model, strict=True)             # StrictConversionError if a binary layer stayed float
convert(qat_model, int8=True)           # int8 stem/head from the model's fake-quant ops
```

LCE fails silently: a binary layer it does not recognise becomes a float convolution with float
weights, and the conversion still "succeeds". ``convert`` therefore reads the produced flatbuffer
back (:mod:`larq_poke.converters.flatbuffer`), pairs every binary Keras layer with the
``LceBconv2d`` it became or explains why it did not (:mod:`larq_poke.converters.binary_layers`),
and runs the file in the LCE interpreter against Keras.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from larq_poke.converters.binary_layers import find_binary_layers, match_binary_layers
from larq_poke.converters.conversion_report import (
    ConversionReport,
    Parity,
    MisquantizedBiasError,
    QuantizationInfoError,
    StrictConversionError,
)
from larq_poke.converters.rewrites import apply_rewrites, deployable
from larq_poke.converters.flatbuffer import ELEMENTWISE_OPS, FlatbufferModel, read_flatbuffer

__all__ = [
    "ConversionReport",
    "ConversionResult",
    "deployable",
    "StrictConversionError",
    "MisquantizedBiasError",
    "QuantizationInfoError",
    "convert",
    "fake_quant_ops",
    "check_parity",
]

logger = logging.getLogger("larq_poke.converters")

FAKE_QUANT_OPS = frozenset(
    {
        "FakeQuantWithMinMaxVars",
        "FakeQuantWithMinMaxVarsPerChannel",
        "FakeQuantWithMinMaxArgs",
        "FakeQuantWithMinMaxArgsPerChannel",
        "QuantizeAndDequantizeV2",
        "QuantizeAndDequantizeV3",
        "QuantizeAndDequantizeV4",
    }
)
_NOT_COMPUTE = {"QUANTIZE", "DEQUANTIZE", "LceQuantize", "LceDequantize", "LceBconv2d",
                "LceBMaxPool2d", "RESHAPE"}  # fmt: skip
DEFAULT_NUM_SAMPLES = 4


@dataclass
class ConversionResult:
    """The converted flatbuffer and its :class:`ConversionReport`."""

    flatbuffer: bytes
    report: ConversionReport
    model_info: Optional[FlatbufferModel] = None

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Write the flatbuffer to ``path`` (directories created); return the path."""
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as f:
            f.write(self.flatbuffer)
        return path

    def __repr__(self) -> str:
        report = self.report
        fused = len(report.binary_layers) - len(report.not_binarized)
        return (
            f"ConversionResult({len(self.flatbuffer):,} bytes, {report.precision}, "
            f"{fused}/{len(report.binary_layers)} binary layers -> LceBconv2d)"
        )


# --- conversion -------------------------------------------------------------------------------
def convert(
    model,
    *,
    int8: bool = False,
    target: str = "arm",
    strict: bool = False,
    verify: bool = True,
    sample_inputs=None,
) -> ConversionResult:
    """Convert a Larq Keras model with LCE and report what became of its binary layers.

    The model first goes through :func:`larq_poke.converters.rewrites.deployable` (registered
    rewrites into an LCE-friendly equivalent; the model itself when none applies), is exported as
    its inference graph (:func:`larq_poke.converters.export.inference_saved_model`) and converted
    with ``larq_compute_engine.convert_saved_model`` (``convert_keras_model`` if that fails, with a
    note in the report). The converter's console noise is swallowed; its
    ``error:`` lines (e.g. grouped convs falling back to float) go into the report.

    # Arguments
        model: a built ``tf.keras.Model`` with binary Larq layers (input and/or kernel quantizer
            with ``precision == 1``).
        int8: require int8 for the non-binary parts. LCE quantizes from fake-quant ops in the
            graph (``tf.quantization.fake_quant_with_min_max_vars``, tfmot): without them this
            raises :class:`QuantizationInfoError` before converting; after converting, the tensor
            types are checked, and a file without int8 compute ops raises too. (LCE quantizes a
            model with fake-quant ops even when ``int8=False``; the report then says so.) Input
            and output stay float32 (QUANTIZE / DEQUANTIZE at the ends).
        target: ``"arm"`` (default) or ``"xcore"``.
        strict: raise :class:`StrictConversionError` (carrying the result as ``.result``) when
            any binary layer did not become an ``LceBconv2d``.
        verify: run the file in the LCE interpreter (indirect BGEMM kernel, 1 thread, which also
            runs grouped binary convs) and compare with Keras on ``sample_inputs``.
        sample_inputs: an array with a leading batch axis (a list of arrays for several inputs);
            default: 4 seeded standard-normal samples.

    # Returns
        A :class:`ConversionResult` (``.flatbuffer``, ``.save(path)``, ``.report``).

    # Raises
        TypeError: ``model`` is not a ``tf.keras.Model``.
        ValueError: the model has no binary Larq layer. This is an error rather than a warning:
            ``convert`` exists to prove binary optimisation, and for a model without binary
            layers LCE only produces a plain float TFLite model with an empty, trivially
            "strict" report — almost always the wrong model (the float teacher, a model whose
            custom quantizers lack a ``precision`` attribute). Use ``tf.lite.TFLiteConverter``
            for float models; tag custom quantizers with ``precision = 1``.
        QuantizationInfoError: see ``int8``.
        MisquantizedBiasError: the file has a quantized conv whose bias scale is not its input
            scale × weight scale (two fake quants with different ranges in a row), or whose bias
            saturates int32.
        StrictConversionError: see ``strict``.
        RuntimeError: LCE itself failed (the converter's error lines are in the message).
    """
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model):
        raise TypeError(
            f"convert expects a tf.keras.Model (Keras 2, as used by Larq), got "
            f"{type(model).__module__}.{type(model).__name__}; load files with "
            "tf.keras.models.load_model first"
        )
    if target not in ("arm", "xcore"):
        raise ValueError(f"target must be 'arm' or 'xcore', got {target!r}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; call it on an input first")

    original = model
    model, rewrites = apply_rewrites(model, int8=int8, calibration_inputs=sample_inputs)
    if rewrites:
        logger.info("applied deployable rewrites: %s", ", ".join(rewrites))

    binary_layers = find_binary_layers(model, target=target)
    if not binary_layers:
        raise ValueError(
            f"model {model.name!r} has no binary Larq layer (no QuantConv2D / QuantDense / ... "
            "whose input or kernel quantizer has precision 1), so LCE has nothing to optimise. "
            "Use tf.lite.TFLiteConverter for float models; if the model does binarize through "
            "custom quantizers, give them a `precision = 1` attribute (lq.utils.set_precision)."
        )

    if int8:
        found = fake_quant_ops(model)
        if not found:
            raise QuantizationInfoError(
                "int8 requested without quantization information: the model's graph has no "
                "fake-quant ops (tf.quantization.fake_quant_with_min_max_vars[_per_channel], "
                "tfmot quantize wrappers), so LCE would return a float model. Train or fine-tune "
                "with fake-quant ops around the non-binary layers first (LCE's dummy "
                "`experimental_default_int8_range` is for latency tests only and is not used)."
            )
        logger.info("fake-quant ops in the graph: %s", dict(found))

    logger.info("converting %r with LCE (target %s); this can take a minute", model.name, target)
    start = time.perf_counter()
    flatbuffer, converter_errors, converter_notes = _run_converter(model, target)
    seconds = time.perf_counter() - start
    logger.info("converted in %.1f s: %s bytes", seconds, f"{len(flatbuffer):,}")

    info = read_flatbuffer(flatbuffer)
    misquantized = info.misquantized_biases()
    if misquantized:
        raise MisquantizedBiasError(
            f"LCE wrote {len(misquantized)} quantized op(s) whose bias does not match its input and weight "
            f"scales or saturates int32, so the file would compute wrong outputs: {'; '.join(misquantized)}. "
            "A bias scale off by a factor comes from two fake quants with different ranges in a row (one "
            "tensor, two grids): give the tensor one range. A saturated bias needs a wider weight range "
            "for that channel.", flatbuffer)
    fates, unmatched = match_binary_layers(binary_layers, info)
    report = _build_report(
        original, info, fates, unmatched, target=target, int8=int8, rewrites=rewrites
    )
    for check in getattr(model, "_deployment_checks", ()):  # a rewrite's claims, checked on the file
        note = check(report)
        if note:
            report.notes.append(note)
    report.conversion_seconds = round(seconds, 2)
    report.converter_errors = converter_errors
    report.notes.extend(converter_notes)

    if report.precision == "float32" and int8:
        raise QuantizationInfoError(
            "int8 requested, but the converted model has no int8 compute op (tensor types: "
            f"{report.op_output_types}); refusing to label a float model int8"
        )
    if report.precision != "float32" and not int8:
        report.notes.append(
            "the model carries fake-quant ops, so LCE quantized it although int8=False "
            f"(precision read from the file: {report.precision})"
        )

    if verify:
        logger.info("checking parity with the LCE interpreter")
        reference = "original Keras model" if rewrites else "Keras model"
        report.parity = check_parity(original, flatbuffer, sample_inputs, reference=reference)
        _add_parity_notes(report)
    else:
        report.parity = Parity.skipped("verify=False")

    # Last, after conversion and parity: the cost profile instruments the model while tracing it.
    sizes, size_note = _packed_sizes(original)
    report.packed_size_bytes = sizes.get("packed_size_bytes")
    report.storable_size_bytes = sizes.get("storable_size_bytes")
    if size_note:
        report.notes.append(size_note)

    result = ConversionResult(flatbuffer=flatbuffer, report=report, model_info=info)
    if strict:
        message = report.strict_failure_message()
        if message:
            raise StrictConversionError(message, result=result)
    return result


@contextlib.contextmanager
def _captured_native_output():
    """Redirect file descriptors 1 and 2 (C++ logging of TF / MLIR) and Python warnings and TF
    logging into a buffer; yields a list that receives the captured text at exit."""
    import tensorflow as tf

    captured: List[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    loggers = [tf.get_logger(), logging.getLogger("absl")]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            for lg in loggers:
                lg.setLevel(logging.ERROR)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))
            captured.extend(f"warning: {w.message}" for w in caught)


_ERROR_LINE = re.compile(r"(?:^|\s)error:\s*(.+)$")


def _run_converter(model, target: str) -> Tuple[bytes, List[str], List[str]]:
    import larq_compute_engine as lce

    from larq_poke.converters.export import inference_saved_model

    notes: List[str] = []
    try:
        with _captured_native_output() as captured:
            try:
                policy = getattr(getattr(model, "dtype_policy", None), "name", "float32")
                if policy != "float32":  # LCE's own route raises its clear error for these
                    raise ValueError(f"a {policy} model")
                with tempfile.TemporaryDirectory(prefix="larq-poke-export-") as directory:
                    inference_saved_model(model, directory)
                    flatbuffer = lce.convert_saved_model(directory, target=target)
            except Exception as lean_error:  # LCE's own route: Keras' export, then its graphdef fallback
                notes.append(f"the inference-only SavedModel did not convert ({type(lean_error).__name__}: "
                             f"{str(lean_error).splitlines()[0] if str(lean_error) else ''}); used LCE's Keras export")
                flatbuffer = lce.convert_keras_model(model, target=target)
    except Exception as err:
        errors = _error_lines("\n".join(captured))
        detail = ("\n" + "\n".join(errors)) if errors else ""
        raise RuntimeError(f"LCE conversion of {model.name!r} failed: {err}{detail}") from err
    text = "\n".join(captured)
    if "falling back to graphdef-based conversion" in text:
        notes.append(
            "LCE's saved-model conversion failed and it used its graphdef fallback "
            "(usually harmless; subclassed models and some custom layers trigger it)"
        )
    return flatbuffer, _error_lines(text), notes


def _error_lines(text: str) -> List[str]:
    seen, errors = set(), []
    for line in text.splitlines():
        match = _ERROR_LINE.search(line)
        if match:
            message = match.group(1).strip()
            if message not in seen:
                seen.add(message)
                errors.append(message)
    return errors


def fake_quant_ops(model) -> Counter:
    """Count the fake-quant ops (the quantization information LCE uses) in the model's inference
    graph, nested functions included."""
    import tensorflow as tf

    specs = []
    for tensor in model.inputs:
        shape = [1] + list(tensor.shape[1:])
        specs.append(tf.TensorSpec(shape, tensor.dtype))

    @tf.function
    def call(*inputs):
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    graph_def = call.get_concrete_function(*specs).graph.as_graph_def()
    found: Counter = Counter()
    for node in graph_def.node:
        if node.op in FAKE_QUANT_OPS:
            found[node.op] += 1
    for function in graph_def.library.function:
        for node in function.node_def:
            if node.op in FAKE_QUANT_OPS:
                found[node.op] += 1
    return found


# --- report -----------------------------------------------------------------------------------
def _packed_sizes(model) -> Tuple[dict, Optional[str]]:
    """``{"packed_size_bytes": ..., "storable_size_bytes": ...}`` (``larq_poke.cost.stored_sizes``),
    or ``{}`` and a note saying why not."""
    try:
        from larq_poke.cost import stored_sizes
    except ImportError as err:
        return {}, f"packed size unavailable: larq_poke.cost cannot be imported ({err})"
    try:
        return stored_sizes(model), None
    except Exception as err:  # the cost model is optional for a conversion; say why it is missing
        return {}, f"packed size unavailable: larq_poke.cost failed ({type(err).__name__}: {err})"


def _build_report(model, info: FlatbufferModel, fates, unmatched, *, target, int8, rewrites):
    between = info.ops_between_binary_convs()
    elementwise = [
        {
            "op": op.op_type,
            "index": op.index,
            "dtype": info.op_output_dtype(op) or "NONE",
            "shape": list(info.op_output_shape(op)),
        }
        for op in between
        if op.op_type in ELEMENTWISE_OPS
    ]
    others = dict(Counter(op.op_type for op in between if op.op_type not in ELEMENTWISE_OPS))

    compute = [op for op in info.operators if op.op_type not in _NOT_COMPUTE]
    float_compute = Counter(op.op_type for op in compute if info.op_output_dtype(op) == "FLOAT32")
    int8_compute = [op for op in compute if info.op_output_dtype(op) == "INT8"]
    int8_compute += [b for b in info.bconvs if b.output == "int8"]
    if not int8_compute:
        precision = "float32"
    elif not float_compute:
        precision = "int8"
    else:
        precision = "mixed"

    report = ConversionReport(
        model_name=model.name,
        target=target,
        int8_requested=int8,
        precision=precision,
        size_bytes=info.size_bytes,
        packed_size_bytes=None,
        op_counts=info.op_counts(),
        binary_layers=fates,
        bconvs=list(info.bconvs),
        unmatched_bconvs=unmatched,
        float_ops_between_binary_convs=elementwise,
        other_ops_between_binary_convs=others,
        fused_activations=info.fused_activation_counts(),
        op_output_types=info.output_dtype_counts(),
        float_compute_ops=dict(float_compute),
        rewrites=list(rewrites),
        op_sequence=info.op_sequence(),
    )
    grouped = [b.op_index for b in info.bconvs if b.groups > 1]
    if grouped:
        report.notes.append(
            f"{len(grouped)} grouped binary conv(s) (ops {grouped}): they run only with the "
            "indirect-BGEMM or reference kernel (lce_benchmark_model --use_indirect_bgemm=true)"
        )
    return report


# --- parity -----------------------------------------------------------------------------------
def _as_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def default_sample_inputs(model, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0) -> list:
    """``num_samples`` seeded standard-normal inputs shaped like the model's inputs."""
    if not model.inputs:
        raise ValueError(f"model {model.name!r} has no symbolic inputs; pass sample_inputs")
    rng = np.random.default_rng(seed)
    samples = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"input {tensor.name} has an unknown dimension {tensor.shape}; pass sample_inputs"
            )
        samples.append(rng.standard_normal((num_samples,) + shape).astype(np.float32))
    return samples


def check_parity(
    model, flatbuffer: bytes, sample_inputs=None, *, reference: str = "Keras model"
) -> Parity:
    """Run ``flatbuffer`` in the LCE interpreter and ``model`` in Keras (inference mode) on the
    same inputs. Outputs are paired by signature name (the TFLite output order can differ from
    Keras'), else by shape, else by position."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if sample_inputs is None:
        inputs = default_sample_inputs(model)
        description = "seeded standard-normal samples"
    else:
        inputs = [np.asarray(x, dtype=np.float32) for x in _as_list(sample_inputs)]
        description = "given samples"
    num_samples = int(inputs[0].shape[0])

    feed = inputs if len(inputs) > 1 else inputs[0]
    with _captured_native_output():  # the first Keras call logs XLA start-up lines
        keras_outputs = [np.asarray(y) for y in _as_list(model(feed, training=False))]
    try:
        with _captured_native_output() as captured:
            interpreter = Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    except RuntimeError as err:
        lines = [line for line in "\n".join(captured).splitlines() if "ERROR" in line]
        return Parity.skipped(f"the LCE interpreter could not load the model: {err} {lines}")
    if any(np.dtype(t) != np.float32 for t in interpreter.input_types):
        return Parity.skipped(f"interpreter inputs are {interpreter.input_types}, not float32")
    with _captured_native_output():
        lce_outputs = [np.asarray(y) for y in _as_list(interpreter.predict(feed))]

    info = read_flatbuffer(flatbuffer)
    names = [info.output_names.get(t) for t in info.outputs]
    pairs = _pair_outputs(model, keras_outputs, lce_outputs, names)

    per_output, diffs, refs, agreements = [], [], [], []
    for k_index, l_index in pairs:
        expected = keras_outputs[k_index].astype(np.float64)
        actual = lce_outputs[l_index].astype(np.float64).reshape(expected.shape)
        diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
        ref = float(np.max(np.abs(expected))) if expected.size else 0.0
        entry = {
            "name": _keras_output_names(model)[k_index],
            "shape": list(expected.shape[1:]),
            "max_abs_diff": diff,
            "max_abs_reference": ref,
            "top1_agreement": None,
        }
        if expected.ndim == 2 and expected.shape[1] > 1:
            agree = float(np.mean(np.argmax(expected, -1) == np.argmax(actual, -1)))
            entry["top1_agreement"] = agree
            agreements.append(agree)
        per_output.append(entry)
        diffs.append(diff)
        refs.append(ref)
    return Parity(
        max_abs_diff=max(diffs) if diffs else None,
        top1_agreement=min(agreements) if agreements else None,
        max_abs_reference=max(refs) if refs else None,
        num_samples=num_samples,
        inputs=description,
        interpreter="LCE interpreter, indirect BGEMM, 1 thread",
        reference=reference,
        outputs=per_output,
    )


def _keras_output_names(model) -> List[str]:
    names = getattr(model, "output_names", None)
    if names and len(names) == len(model.outputs):
        return list(names)
    return [t.name.split("/")[0] for t in model.outputs]


def _pair_outputs(model, keras_outputs, lce_outputs, lce_names: Sequence[Optional[str]]):
    if len(keras_outputs) != len(lce_outputs):
        raise RuntimeError(
            f"the Keras model has {len(keras_outputs)} outputs, the flatbuffer {len(lce_outputs)}"
        )
    keras_names = _keras_output_names(model)
    if len(keras_outputs) == 1:
        return [(0, 0)]
    names_unique = len(set(keras_names)) == len(keras_names)
    if all(lce_names) and names_unique and sorted(lce_names) == sorted(keras_names):
        return [(keras_names.index(name), j) for j, name in enumerate(lce_names)]
    pairs, used = [], set()
    for k, y in enumerate(keras_outputs):
        candidates = [
            j
            for j, z in enumerate(lce_outputs)
            if j not in used and z.size == y.size and z.shape[1:] == y.shape[1:]
        ]
        if not candidates:
            raise RuntimeError(
                f"no flatbuffer output has the shape of Keras output {keras_names[k]} {y.shape}"
            )
        j = k if k in candidates else candidates[0]
        used.add(j)
        pairs.append((k, j))
    return pairs


def _add_parity_notes(report: ConversionReport) -> None:
    parity = report.parity
    if not parity.checked:
        return
    if report.precision == "float32" and (parity.relative_diff or 0.0) > 1e-3:
        report.notes.append(
            f"parity: max |diff| {parity.max_abs_diff:.3g} is large for a float model "
            f"({parity.relative_diff:.2%} of max |keras|); a sign flipping on values near zero "
            "or a rewrite that is not equivalent can cause this"
        )
    if parity.top1_agreement is not None and parity.top1_agreement < 1.0:
        report.notes.append(f"parity: top-1 agreement is only {100 * parity.top1_agreement:.1f} %")
