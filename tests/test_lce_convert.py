"""larq_poke.converters.convert: census, per-binary-layer fate, strict mode, int8, parity, report.

Expectations come from the structure of the test models (see tests/lce_models.py) and the fusion
rules of LCE 0.16, never from what the code under test produced.
"""

import argparse
import json
import tempfile

import numpy as np
import pytest

import lce_models
from larq_poke.converters import ConversionReport, StrictConversionError, convert
from larq_poke.converters.lce import QuantizationInfoError

REQUIRED_KEYS = {"op_counts", "binary_layers", "size_bytes", "packed_size_bytes", "parity"}


@pytest.fixture(scope="module")
def good():
    model, result, error = lce_models.converted("good")
    assert error is None
    return model, result


@pytest.fixture(scope="module")
def bad():
    return lce_models.converted("bad", strict=True)


# --- an LCE-friendly model -------------------------------------------------------------------
def test_every_binary_layer_becomes_a_bconv(good):
    result = good[1]
    binary = ["b1", "b2", "b3", "b4"]
    report = result.report
    assert [fate.layer for fate in report.binary_layers] == binary
    assert report.op_counts["LceBconv2d"] == len(binary) == 4
    assert all(fate.became == "LceBconv2d" for fate in report.binary_layers)
    assert report.fully_binarized
    ops = [fate.op_index for fate in report.binary_layers]
    assert ops == sorted(ops) and len(set(ops)) == 4  # one distinct op each, in graph order


def test_batch_norms_fold_and_nothing_is_dequantized(good):
    counts = good[1].report.op_counts
    assert counts.get("LceDequantize", 0) == 0
    assert counts.get("MUL", 0) == 0 and counts.get("SUB", 0) == 0
    assert counts.get("ADD", 0) == 1  # the residual Add layer; no BN became MUL + ADD
    assert counts["CONV_2D"] == 1  # the stem
    assert counts["LceQuantize"] == 3  # stem output, MaxPool output, Add output


def test_bconv_facts_follow_the_layers(good):
    model, result = good
    fates = {fate.layer: fate for fate in result.report.binary_layers}
    for name, fate in fates.items():
        layer = model.get_layer(name)
        bconv = fate.bconv
        assert bconv.filters == layer.filters
        assert bconv.kernel_size == tuple(layer.kernel_size)
        assert bconv.strides == tuple(layer.strides)
        assert bconv.groups == layer.groups
        assert bconv.channels_in == layer.input_shape[-1]
        assert bconv.padding_mode == "same-one"
    # b1 -> ReLU -> BN -> b2 only: bit-packed output with the ReLU fused
    assert fates["b1"].bconv.output == "bitpacked"
    assert fates["b1"].bconv.fused_activation == "RELU"
    assert fates["b1"].bconv.thresholds
    # b2 feeds MaxPool -> {b3, Add}; b3 feeds the Add; b4 feeds GAP: float outputs, BN folded
    for name in ("b2", "b3", "b4"):
        assert fates[name].bconv.output == "float32"
        assert fates[name].bconv.fused_activation == "NONE"
        assert fates[name].bconv.multiplier == "folded"
    report = result.report
    assert report.bitpacked_outputs == 1
    assert report.same_zero_padding == 0
    assert report.fused_activations == {"LceBconv2d:RELU": 1}


def test_float_glue_between_binary_convs(good):
    report = good[1].report
    assert [op["op"] for op in report.float_ops_between_binary_convs] == ["ADD"]
    add = report.float_ops_between_binary_convs[0]
    assert add["dtype"] == "FLOAT32" and add["shape"] == [1, 16, 16, 64]
    assert report.other_ops_between_binary_convs == {"MAX_POOL_2D": 1}


def test_float_model_is_labelled_float(good):
    report = good[1].report
    assert report.precision == "float32"
    assert "INT8" not in report.op_output_types
    assert not report.int8_requested


def test_parity_with_keras(good):
    parity = good[1].report.parity
    assert parity.checked and parity.num_samples == 4
    assert parity.max_abs_reference > 1.0
    assert parity.max_abs_diff <= 1e-4 * parity.max_abs_reference
    assert parity.top1_agreement == 1.0


def test_parity_on_given_inputs(good):
    from larq_poke.converters.lce import check_parity

    model, result = good
    x = np.random.default_rng(7).uniform(-2, 2, (3, 32, 32, 3)).astype(np.float32)
    parity = check_parity(model, result.flatbuffer, x)
    assert parity.num_samples == 3
    assert parity.max_abs_diff <= 1e-4 * parity.max_abs_reference


def test_report_dict_and_json_round_trip(good, tmp_path):
    result = good[1]
    data = result.report.to_dict()
    assert REQUIRED_KEYS <= set(data)
    assert {"max_abs_diff", "top1_agreement"} <= set(data["parity"])
    assert data["size_bytes"] == len(result.flatbuffer)
    assert data["lce_dequantize"] == 0 and data["same_zero_padding"] == 0
    assert len(data["binary_layers"]) == 4
    restored = ConversionReport.from_dict(json.loads(json.dumps(data)))
    assert restored.to_dict() == data
    assert restored.to_text() == result.report.to_text()

    path = result.save(tmp_path / "sub" / "good.tflite")
    assert open(path, "rb").read() == result.flatbuffer


def test_text_report(good):
    text = good[1].report.to_text()
    assert "'good'" in text
    assert "4/4 became LceBconv2d" in text
    assert "LceDequantize: 0" in text
    assert "parity" in text


def test_packed_size_from_the_cost_report_or_a_note(good):
    report = good[1].report
    try:
        from larq_poke.cost import profile  # noqa: F401
    except ImportError:
        assert report.packed_size_bytes is None
        assert any("packed size unavailable" in note for note in report.notes)
    else:
        assert report.packed_size_bytes > 0, report.notes
        # only binary and float weights: nothing to round up to int8
        assert report.storable_size_bytes == report.packed_size_bytes
        assert report.to_dict()["storable_size_bytes"] == report.storable_size_bytes
        assert "storable" in report.to_text()


# --- a model with binary layers LCE cannot accelerate ----------------------------------------
def test_strict_raises_and_names_every_float_layer(bad):
    model, result, error = bad
    assert isinstance(error, StrictConversionError)
    assert error.result is result
    not_fused = [name for name, code in lce_models.BAD_MODEL_EXPECTED.items() if code]
    for name in not_fused:
        assert name in str(error)
    assert "same_zero" not in str(error)


def test_reasons_follow_the_layer_configuration(bad):
    _, result, _ = bad
    fates = {fate.layer: fate for fate in result.report.binary_layers}
    assert set(fates) == set(lce_models.BAD_MODEL_EXPECTED)
    for name, code in lce_models.BAD_MODEL_EXPECTED.items():
        fate = fates[name]
        assert fate.reason_code == code, (name, fate.reason)
        assert fate.fused == (code is None)
        if code:
            assert fate.reason and fate.op_index is None
    assert "1.5" in fates["scaled"].reason
    assert "16" in fates["grouped16"].reason
    assert "1x1 QuantConv2D" in fates["dense"].reason


def test_what_the_failures_leave_in_the_file(bad):
    _, result, _ = bad
    report = result.report
    assert report.op_counts["LceBconv2d"] == 1
    assert report.binary_layers[5].bconv.padding_mode == "same-zero"
    assert report.same_zero_padding == 1
    # binarized inputs of the float convs / depthwise / dense are decoded back to float
    assert report.lce_dequantize >= 3
    assert any("per-group must be a multiple of 32" in e for e in report.converter_errors)
    assert report.parity.max_abs_diff <= 1e-4 * max(1.0, report.parity.max_abs_reference)


# --- bad input ------------------------------------------------------------------------------
def test_non_keras_input_is_rejected():
    with pytest.raises(TypeError, match="tf.keras.Model"):
        convert("model.h5")


def test_model_without_binary_layers_is_rejected():
    with pytest.raises(ValueError, match="no binary Larq layer"):
        convert(lce_models.float_model())


def test_int8_without_fake_quant_is_rejected():
    model = lce_models.good_model()
    with pytest.raises(QuantizationInfoError, match="without quantization information"):
        convert(model, int8=True)


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="target"):
        convert(lce_models.good_model(), target="riscv")


# --- int8 ------------------------------------------------------------------------------------
def test_int8_from_fake_quant_ops():
    _, result, _ = lce_models.converted("qat", int8=True)
    report = result.report
    assert report.precision == "int8"
    assert report.int8_requested
    ops = [op.op_type for op in result.model_info.operators]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"  # float I/O around an int8 body
    info = result.model_info
    for op in info.operators:
        if op.op_type in ("CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"):
            assert info.op_output_dtype(op) == "INT8", op
    (bconv,) = report.bconvs
    assert bconv.output == "int8"
    assert report.fully_binarized
    # output fake-quant range [-8, 8] in 255 steps: allow a few steps of difference
    assert report.parity.max_abs_diff <= 4 * 16 / 255


def test_two_fake_quants_in_a_row_are_refused():
    """Fake quants over [−4, 4] then [−2, 2] before a conv: the converters keep the first grid
    for the conv's input and quantize its bias for the second (the file's bias is half what it
    should be), so ``convert`` and ``convert_int8`` refuse the file and name the conv."""
    import tensorflow as tf

    from larq_poke.converters import MisquantizedBiasError
    from larq_poke.converters.flatbuffer import read_flatbuffer
    from larq_poke.converters.int8 import convert_int8

    def stem(inputs):
        x = lce_models.fake_quant(lce_models.fake_quant(inputs, -4.0, 4.0, "fq_in"), -2.0, 2.0, "fq_again")
        return tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)

    inputs = tf.keras.Input((16, 16, 3))
    x = lce_models.fake_quant(tf.keras.layers.ReLU()(stem(inputs)), 0.0, 6.0, "fq_stem")
    x = lce_models.fake_quant(lce_models.binary_conv(8, "b1")(x), -4.0, 4.0, "fq_b1")
    x = lce_models.fake_quant(tf.keras.layers.GlobalAveragePooling2D()(x), -4.0, 4.0, "fq_pool")
    binary = tf.keras.Model(inputs, lce_models.fake_quant(tf.keras.layers.Dense(4)(x), -8.0, 8.0, "fq_out"))
    with pytest.raises(MisquantizedBiasError, match=r"CONV_2D #\d+ \(.*stem.*\): bias scale 0.5 × input scale") as err:
        convert(binary, int8=True)
    assert len(read_flatbuffer(err.value.flatbuffer).misquantized_biases()) == 1

    inputs = tf.keras.Input((16, 16, 3))
    real = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(stem(inputs))))
    images = np.random.default_rng(0).uniform(-3, 3, (8, 16, 16, 3)).astype(np.float32)
    with pytest.raises(MisquantizedBiasError, match="CONV_2D .*stem.*bias scale"):
        convert_int8(real, images)


# --- deployable rewrites are applied and checked against the original -----------------------
def test_convert_applies_registered_rewrites():
    import tensorflow as tf

    from larq_poke.converters.rewrites import register_rewrite, unregister_rewrite

    class Marker(tf.keras.layers.Layer):
        def call(self, x):
            return x * 1.0

    inputs = tf.keras.Input((8, 8, 32))
    x = Marker(name="marker")(inputs)
    x = lce_models.binary_conv(32, "b1")(x)
    model = tf.keras.Model(inputs, x, name="marked")

    def drop_marker(m):
        out = lce_models.binary_conv(32, "b1_deployable")(m.input)
        rewritten = tf.keras.Model(m.input, out, name="unmarked")
        rewritten.get_layer("b1_deployable").set_weights(m.get_layer("b1").get_weights())
        return rewritten

    register_rewrite(Marker, drop_marker, name="drop-marker")
    try:
        result = convert(model)
    finally:
        unregister_rewrite("drop-marker")
    assert result.report.rewrites == ["drop-marker"]
    assert result.report.parity.reference == "original Keras model"
    assert result.report.parity.max_abs_diff <= 1e-4 * result.report.parity.max_abs_reference
    assert [fate.layer for fate in result.report.binary_layers] == ["b1_deployable"]


# --- command line ----------------------------------------------------------------------------
def _cli(argv):
    from larq_poke.cli import convert as convert_command

    parser = argparse.ArgumentParser()
    convert_command.add_subcommand(parser.add_subparsers())
    args = parser.parse_args(["convert"] + argv)
    return args.func(args)


def test_cli_writes_tflite_and_report(tmp_path, capsys):
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 32))
    x = lce_models.binary_conv(32, "b1")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lce_models.binary_conv(32, "b2")(x)
    model_path = tmp_path / "tiny.keras"
    tf.keras.Model(inputs, x, name="tiny").save(model_path)

    out, report_path = tmp_path / "tiny.tflite", tmp_path / "tiny.json"
    rc = _cli([str(model_path), "-o", str(out), "--report", str(report_path), "--strict"])
    assert rc == 0
    data = json.loads(report_path.read_text())
    assert data["op_counts"]["LceBconv2d"] == 2
    assert data["size_bytes"] == out.stat().st_size
    captured = capsys.readouterr()
    assert "2/2 became LceBconv2d" in captured.out
    assert "converting" in captured.err and "wrote" in captured.err


def test_cli_strict_failure_writes_report_but_no_model(tmp_path):
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 32))
    x = lce_models.binary_conv(32, "float_input", input_quantizer=None)(inputs)
    model_path = tmp_path / "tiny_bad.h5"
    tf.keras.Model(inputs, x, name="tiny_bad").save(model_path)

    out, report_path = tmp_path / "bad.tflite", tmp_path / "bad.json"
    with pytest.raises(StrictConversionError, match="float_input"):
        _cli([str(model_path), "-o", str(out), "--report", str(report_path), "--strict",
              "--no-verify"])
    assert not out.exists()
    data = json.loads(report_path.read_text())
    assert data["binary_layers"][0]["reason_code"] == "input_not_binarized"
    assert data["parity"]["checked"] is False


def test_cli_rejects_missing_files_and_unknown_names(tmp_path):
    with pytest.raises(FileNotFoundError):
        _cli([str(tmp_path / "missing.h5")])
    with pytest.raises(ValueError, match="neither a file nor a zoo model"):
        _cli(["no-such-model"])


# --- the reference design --------------------------------------------------------------------
@pytest.mark.slow
def test_quicknet_is_fully_binarized():
    """larq-zoo's QuickNet, LCE's reference design (lce.md §1.4 "zoo"): 16 binary convs, all with
    the ReLU fused, float outputs feeding the residual adds."""
    import larq_zoo

    model = larq_zoo.sota.QuickNet(weights=None)
    result = convert(model, strict=True, verify=False)
    report = result.report
    assert report.op_counts == {
        "LceQuantize": 16, "LceBconv2d": 16, "ADD": 16, "CONV_2D": 5, "DEPTHWISE_CONV_2D": 4,
        "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1,
    }  # fmt: skip
    assert len(report.binary_layers) == 16 and report.fully_binarized
    assert all(b.fused_activation == "RELU" and b.padding_mode == "same-one" for b in report.bconvs)
    assert all(b.output == "float32" for b in report.bconvs)
    assert report.lce_dequantize == 0
    assert [op["op"] for op in report.float_ops_between_binary_convs] == ["ADD"] * 15


def test_convert_leaves_the_model_unchanged():
    """convert() traces the model several times (conversion, fake-quant scan, cost profile);
    afterwards the Keras model must compute exactly what it computed before. `x + y` becomes a
    TFOpLambda layer whose `call` is an instance attribute, the easiest thing to break."""
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 32))
    x = lce_models.binary_conv(32, "b1")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    outputs = x + inputs
    model = lce_models.randomize_batch_norms(tf.keras.Model(inputs, outputs, name="oplambda"))
    sample = np.random.default_rng(3).standard_normal((2, 8, 8, 32)).astype(np.float32)
    before = model(sample, training=False).numpy()
    weights = [w.copy() for w in model.get_weights()]
    result = convert(model, sample_inputs=sample)
    np.testing.assert_array_equal(model(sample, training=False).numpy(), before)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    assert result.report.parity.max_abs_diff <= 1e-4 * result.report.parity.max_abs_reference


# --- the inference-only export -----------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs", [("good", {}), ("qat", {"int8": True})])
def test_inference_export_converts_like_lces_keras_route(name, kwargs):
    """``convert`` exports only the inference graph (larq_poke.converters.export); LCE's own
    ``convert_keras_model`` (Keras' full SavedModel export) must give the same operators, tensor
    types, file size and outputs, for a binary model and for one with fake-quant (int8) ops."""
    import larq_compute_engine as lce
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from larq_poke.converters.export import inference_saved_model
    from larq_poke.converters.flatbuffer import read_flatbuffer

    model, result, _ = lce_models.converted(name, **kwargs)  # the conversions the other tests use
    reference = lce.convert_keras_model(model)
    with tempfile.TemporaryDirectory() as directory:
        inference_saved_model(model, directory)
        ours = lce.convert_saved_model(directory)

    def ops(flatbuffer):
        info = read_flatbuffer(flatbuffer)
        return [(op.op_type, info.op_output_dtype(op)) for op in info.operators]

    assert ops(ours) == ops(reference)
    assert len(ours) == len(reference)
    x = np.random.default_rng(3).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    outputs = [Interpreter(f, num_threads=1, use_indirect_bgemm=True).predict(x) for f in (reference, ours)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not [note for note in result.report.notes if "inference-only" in note]  # no fallback
