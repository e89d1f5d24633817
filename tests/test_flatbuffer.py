"""larq_poke.converters.flatbuffer: census and binary-conv facts of converted models, checked
against an independent parse (TensorFlow's own generated schema, object API) and against what the
Keras structure implies; files that are not (LCE) TFLite models."""

import math

import numpy as np
import pytest

import lce_models
from larq_poke.converters.flatbuffer import (
    NotAnLceModelError,
    NotATFLiteModelError,
    read_flatbuffer,
)


@pytest.fixture(scope="module")
def good():
    model, result, error = lce_models.converted("good")
    assert error is None
    return model, result.flatbuffer


def independent_census(flatbuffer: bytes) -> dict:
    """Count ops per type with TensorFlow's bundled schema module (object API), not `tflite`."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    counts = {}
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name == "CUSTOM":
            name = code.customCode.decode()
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_census_matches_an_independent_parse(good):
    _, flatbuffer = good
    assert read_flatbuffer(flatbuffer).op_counts() == independent_census(flatbuffer)


def test_census_matches_the_model_structure(good):
    # see lce_models.good_model: stem conv, 3 signs not fed by a bit-packed conv, 4 binary convs,
    # MaxPool (its output feeds a float Add, so no binary max-pool), the residual Add, GAP, Dense
    expected = {
        "CONV_2D": 1, "LceQuantize": 3, "LceBconv2d": 4, "MAX_POOL_2D": 1, "ADD": 1, "MEAN": 1,
        "FULLY_CONNECTED": 1,
    }  # fmt: skip
    assert read_flatbuffer(good[1]).op_counts() == expected


def test_bconv_options_and_tensors(good):
    model, flatbuffer = good
    info = read_flatbuffer(flatbuffer)
    layers = [model.get_layer(name) for name in ("b1", "b2", "b3", "b4")]
    assert len(info.bconvs) == len(layers)
    for layer, bconv in zip(layers, info.bconvs):
        channels_in = layer.input_shape[-1]
        assert bconv.channels_in == channels_in
        assert bconv.filters == layer.filters
        assert bconv.strides == tuple(layer.strides)
        assert bconv.dilations == (1, 1)
        assert (bconv.padding, bconv.pad_values) == ("SAME", 1)
        assert bconv.groups == layer.groups
        # binary input: ceil(channels per ... / 32) int32 words along the channel axis
        assert bconv.input_shape[-1] == math.ceil(channels_in / 32)
        filt = info.tensors[info.operators[bconv.op_index].inputs[1]]
        words = math.ceil(channels_in // layer.groups / 32)
        assert filt.dtype == "INT32" and filt.shape == (layer.filters, 3, 3, words)
        out_hw = tuple(layer.output_shape[1:3])
        assert bconv.output_shape[1:3] == out_hw
    first, *rest = info.bconvs
    # bit-packed: int32 output with ceil(filters / 32) words, thresholds instead of m/b
    assert first.output == "bitpacked" and first.output_shape[-1] == 1
    assert first.thresholds and first.multiplier == "absent" and first.bias == "absent"
    assert first.fused_activation == "RELU"
    for bconv in rest:
        assert bconv.output == "float32" and bconv.output_shape[-1] == bconv.filters
        assert not bconv.thresholds and bconv.multiplier == "folded"


def test_ops_between_binary_convs(good):
    info = read_flatbuffer(good[1])
    between = info.ops_between_binary_convs()
    assert sorted(op.op_type for op in between) == ["ADD", "MAX_POOL_2D"]
    assert [op.op_type for op in info.elementwise_ops_between_binary_convs()] == ["ADD"]
    # the stem conv is before the first binary conv, MEAN / FULLY_CONNECTED after the last
    assert "CONV_2D" not in [op.op_type for op in between]


def test_output_names_come_from_the_signature(good):
    model, flatbuffer = good
    info = read_flatbuffer(flatbuffer)
    assert [info.output_names[t] for t in info.outputs] == model.output_names


def test_reads_from_a_path(good, tmp_path):
    path = tmp_path / "good.tflite"
    path.write_bytes(good[1])
    assert read_flatbuffer(path).op_counts() == read_flatbuffer(good[1]).op_counts()
    assert read_flatbuffer(str(path)).size_bytes == len(good[1])


@pytest.mark.parametrize(
    "data",
    [b"", b"not a model at all", b"\x00" * 64, b"PK\x03\x04" + b"\x00" * 60],
    ids=["empty", "text", "zeros", "zip"],
)
def test_not_a_tflite_model(data):
    with pytest.raises(NotATFLiteModelError, match="not a TFLite model"):
        read_flatbuffer(data)


def test_truncated_model(good):
    with pytest.raises(NotATFLiteModelError):
        read_flatbuffer(good[1][:64])


def test_plain_tflite_model_is_not_an_lce_model():
    import tensorflow as tf

    model = lce_models.float_model()
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    info = read_flatbuffer(flatbuffer)
    assert not info.has_lce_ops() and info.bconvs == []
    assert info.op_counts().get("CONV_2D") == 1 and info.op_counts().get("FULLY_CONNECTED") == 1
    with pytest.raises(NotAnLceModelError, match="no Larq Compute Engine op"):
        info.require_lce()


def test_folded_batch_norm_constants(good):
    """b2's BN (randomised, gamma > 0) folds into multiplier gamma / sqrt(var + eps) and bias
    beta - mean * multiplier."""
    model, flatbuffer = good
    info = read_flatbuffer(flatbuffer)
    op = info.operators[info.bconvs[1].op_index]
    multiplier = info.constant_values(op.inputs[2])
    bias = info.constant_values(op.inputs[3])
    bn = model.get_layer("b2_bn")
    gamma, beta, mean, variance = bn.get_weights()
    expected = gamma / np.sqrt(variance + bn.epsilon)
    np.testing.assert_allclose(multiplier, expected, rtol=1e-5)
    np.testing.assert_allclose(bias, beta - mean * expected, rtol=1e-4, atol=1e-5)
    assert info.constant_values(op.inputs[0]) is None  # activations are not constants


def _fake_quant_conv_file(second_range: float, zero_channel: bool = False):
    """A TFLite file from TensorFlow's own converter: x → fake quant over [−1, 1] → fake quant over
    ±``second_range`` → int8 conv with a bias → fake quant; and the graph it came from.
    ``zero_channel``: output channel 0's weights are 0, with the range max |w| (floored at 1e-12)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = (0.2 * rng.normal(size=(3, 3, 4, 8))).astype(np.float32)
    if zero_channel:
        kernel[..., 0] = 0.0
    bias = rng.normal(size=8).astype(np.float32)
    bias[0] = 1.0
    bound = np.maximum(np.abs(kernel).max(axis=(0, 1, 2)), 1e-12)

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 4), tf.float32)])
    def graph(x):
        x = tf.quantization.fake_quant_with_min_max_vars(x, -1.0, 1.0)
        x = tf.quantization.fake_quant_with_min_max_vars(x, -second_range, second_range)
        w = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -bound, bound, narrow_range=True)
        return tf.quantization.fake_quant_with_min_max_vars(tf.nn.conv2d(x, w, 1, "SAME") + bias, -8.0, 8.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([graph.get_concrete_function()], graph)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert(), graph


@pytest.mark.parametrize("second_range", [1.0, 3.0])
def test_misquantized_biases_catch_a_rescaled_bias(second_range):
    """Two fake quants in a row with different ranges: the converter keeps the first grid for
    the conv's input but quantizes the bias for the second, and the file's output is off by
    dozens of output steps; with one range the file matches the graph within one step."""
    import tensorflow as tf

    flatbuffer, graph = _fake_quant_conv_file(second_range)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 4)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    error = np.abs(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]) - graph(x).numpy()).max()
    step = 16.0 / 255.0
    problems = read_flatbuffer(flatbuffer).misquantized_biases()
    if second_range == 1.0:
        assert problems == [] and error <= step * 1.01
    else:
        assert len(problems) == 1 and "CONV_2D" in problems[0] and "bias scale 3 × input scale" in problems[0]
        assert error > 10 * step


def test_misquantized_biases_catch_a_saturated_bias():
    """An all-zero weight channel quantized over max |w|: its bias in units of input scale ×
    weight scale is far beyond int32, and the file saturates it (the channel's output is wrong)."""
    flatbuffer, _ = _fake_quant_conv_file(1.0, zero_channel=True)
    info = read_flatbuffer(flatbuffer)
    conv, = [op for op in info.operators if op.op_type == "CONV_2D"]
    assert np.abs(info.constant_values(conv.inputs[2]).astype(np.int64)[0]) == 2**31 - 1
    problems = info.misquantized_biases()
    assert len(problems) == 1 and "1 bias value(s) at the int32 limit" in problems[0], problems
