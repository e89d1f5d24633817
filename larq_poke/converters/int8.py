"""Full-int8 post-training quantization of a real-valued Keras model: the 8-bit counterparts that
binary models are compared with.

```python
from larq_poke.converters.int8 import convert_int8
flatbuffer = convert_int8(float_model, calibration_images)   # bytes of a .tflite file
```

The TFLite converter quantizes every weight to int8 (per channel) and every activation to int8
with ranges measured on ``representative_inputs``; input and output stay float32 (one QUANTIZE /
DEQUANTIZE at each end), so the file runs on the same inputs as the Keras model. A model that
keeps a float compute op (one the converter cannot quantize) is refused, because its latency
would not be an 8-bit latency.
"""

from __future__ import annotations

import tempfile

import numpy as np

__all__ = ["convert_int8"]

_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def convert_int8(model, representative_inputs, *, max_samples: int = 64) -> bytes:
    """Full-int8 TFLite flatbuffer of ``model`` (float input and output).

    ``representative_inputs``: an array with a leading batch axis, drawn from the data the model
    will see (at most ``max_samples`` are used, one at a time).

    Raises ``ValueError`` for inputs of the wrong shape or a file left with float compute ops,
    and :class:`~larq_poke.converters.conversion_report.MisquantizedBiasError` for a conv whose
    bias scale is not input scale × weight scale or whose bias saturates int32.
    """
    import tensorflow as tf

    from larq_poke.converters.export import inference_saved_model
    from larq_poke.converters.flatbuffer import read_flatbuffer

    samples = np.asarray(representative_inputs, np.float32)
    if samples.ndim < 2 or samples.shape[0] < 1:
        raise ValueError(
            f"representative_inputs must be a batch of model inputs (leading batch axis), got shape {samples.shape}."
        )
    if tuple(samples.shape[1:]) != tuple(d for d in model.input_shape[1:]) and None not in model.input_shape[1:]:
        raise ValueError(f"representative_inputs have shape {samples.shape[1:]}, the model takes {model.input_shape[1:]}.")
    with tempfile.TemporaryDirectory(prefix="larq-poke-export-") as directory:
        inference_saved_model(model, directory)  # not from_keras_model: Keras' export is slow
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in samples[:max_samples])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        flatbuffer = converter.convert()
    info = read_flatbuffer(flatbuffer)
    misquantized = info.misquantized_biases()
    if misquantized:
        from larq_poke.converters.conversion_report import MisquantizedBiasError

        raise MisquantizedBiasError(f"{model.name}: the converter wrote misquantized biases: {'; '.join(misquantized)}.",
                                    flatbuffer)
    float_ops = sorted({op.op_type for op in info.operators
                        if op.op_type not in _BOUNDARY_OPS and info.op_output_dtype(op) == "FLOAT32"})
    if float_ops:
        raise ValueError(f"{model.name} is not fully int8 after quantization: float ops {', '.join(float_ops)}.")
    return flatbuffer
