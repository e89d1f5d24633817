"""The deployable PokeBNN rewrite: original Keras == deployable Keras == LCE TFLite, the op census
LCE produces from it, and int8.

References are independent of the code under test: the official Flax logits recorded in the
golden file, the original larq_poke model, and op counts derived from PokeBNN's structure.
"""

import numpy as np
import pytest

import larq as lq
import tensorflow as tf

from larq_poke.converters import convert
from larq_poke.converters.flatbuffer import full_resolution_elementwise_ops
from larq_poke.converters.rewrites import applicable_rewrites
from larq_poke.converters.lce import QuantizationInfoError
from larq_poke.converters.rewrites.pokebnn import (
    DeployablePokeConv,
    MissingQuantizationInfoError,
    calibrate_activation_bounds,
    pokebnn_deployable,
)
from larq_poke.layers import poke_conv, poke_init
from larq_poke.layers.pokebnn import pokeconv_names, pokeinit_parts
from larq_poke.zoo.pokebnn import load_pokebnn_flax
from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer
from larq_poke.zoo import PokeBNN

from conftest import golden_path

FORBIDDEN = ("TILE", "TRANSPOSE", "GREATER", "GREATER_EQUAL", "SELECT", "SELECT_V2", "WHERE")


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("pokebnn_small.npz")) as data:
        return {k: data[k] for k in ("input", "output_fp32")} | {
            k: data[k] for k in data.files if k.split("/")[0] in ("params", "batch_stats", "get_bounds")
        }


@pytest.fixture(scope="module")
def model(golden):
    model = PokeBNN(0.5, input_shape=(64, 64, 3))
    load_pokebnn_flax(model, golden)
    return model


@pytest.fixture(scope="module")
def converted(model, golden):
    """One LCE conversion of PokeBNN-0.5x @ 64 with the golden variables (about a minute)."""
    return convert(model, strict=True, sample_inputs=golden["input"])


def logit_tolerance(reference):
    return 1e-3 * float(np.max(np.abs(reference)))


# --- Keras equivalence ------------------------------------------------------------------------
def test_rewrite_is_registered_for_pokebnn(model):
    assert "pokebnn" in applicable_rewrites(model)
    deployable = pokebnn_deployable(model)
    assert "pokebnn" not in applicable_rewrites(deployable)
    assert sum(isinstance(layer, DeployablePokeConv) for layer in deployable.layers) == 48
    assert pokeconv_names(deployable) == [] and pokeinit_parts(deployable) is None


def test_deployable_keras_matches_original_and_official(model, golden):
    x = golden["input"]
    original = model(x, training=False).numpy()
    rewritten = pokebnn_deployable(model)(x, training=False).numpy()
    assert np.abs(rewritten - original).max() <= logit_tolerance(original)
    assert np.abs(rewritten - golden["output_fp32"]).max() <= 1e-2  # the golden file's tolerance
    np.testing.assert_array_equal(rewritten.argmax(1), [96, 96])


def poke_block(seed, pos_slopes):
    """A PokeInit + bottleneck block + head with non-trivial random parameters (BN gammas of both
    signs, DPReLU positive slopes as given) and calibrated bounds."""
    rng = np.random.default_rng(seed)
    inputs = tf.keras.Input((32, 32, 3))
    x = poke_init(inputs, name="init")
    r1 = x
    x = poke_conv(x, 32, 1, name="c1")
    x = poke_conv(x, 32, 3, strides=2, name="c2")
    x = poke_conv(x, 128, 1, block_input=r1, block_strides=2, name="c3")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(
        10, input_quantizer=SignedActivationQuantizer(8), kernel_quantizer=SignedWeightQuantizer(8)
    )(x)
    model = tf.keras.Model(inputs, x)
    for w in model.weights:
        shape = tuple(w.shape)
        if "bounds" in w.name:
            continue
        if "moving_variance" in w.name:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in w.name:
            value = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        elif "pos_slope" in w.name:
            value = np.resize(pos_slopes, shape)
        elif "neg_slope" in w.name:
            value = rng.normal(0.2, 0.3, shape)
        elif any(k in w.name for k in ("moving_mean", "beta", "bias")):
            value = rng.normal(0.0, 0.3, shape)
        else:
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        w.assign(value.astype(np.float32))
    images = rng.standard_normal((6, 32, 32, 3)).astype(np.float32)
    return model, images


def test_dprelu_slopes_of_any_sign_and_zero():
    model, images = poke_block(3, pos_slopes=[1.3, -0.7, 0.0, 0.4])
    calibrate_activation_bounds(model, images)
    expected = model(images, training=False).numpy()
    actual = pokebnn_deployable(model)(images, training=False).numpy()
    assert np.abs(actual - expected).max() <= logit_tolerance(expected)


def test_uncalibrated_bounds_pass_through():
    model, images = poke_block(4, pos_slopes=[1.0])  # bounds still the -1 sentinel
    expected = model(images, training=False).numpy()
    actual = pokebnn_deployable(model)(images, training=False).numpy()
    assert np.abs(actual - expected).max() <= logit_tolerance(expected)


# --- the converted file -------------------------------------------------------------------------
def test_tflite_matches_original_and_official(converted, model, golden):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    x = golden["input"]
    interpreter = Interpreter(converted.flatbuffer, num_threads=1, use_indirect_bgemm=True)
    logits = np.asarray(interpreter.predict(x))
    original = model(x, training=False).numpy()
    assert np.abs(logits - original).max() <= logit_tolerance(original)
    assert np.abs(logits - golden["output_fp32"]).max() <= 1e-2
    np.testing.assert_array_equal(logits.argmax(1), [96, 96])
    parity = converted.report.parity
    assert parity.reference == "original Keras model" and parity.top1_agreement == 1.0


def test_census_every_binary_conv_is_an_lce_bconv(converted):
    report = converted.report
    assert report.rewrites == ["pokebnn"]
    assert len(report.binary_layers) == 48 and report.fully_binarized
    assert report.op_counts["LceBconv2d"] == 48
    assert report.op_counts.get("LceDequantize", 0) == 0
    assert not {op: report.op_counts[op] for op in FORBIDDEN if op in report.op_counts}
    assert report.precision == "float32"
    # BN_a (with the binarization scales and DPReLU's input shift) folded into every conv
    assert all(b.multiplier == "folded" and b.bias == "folded" for b in report.bconvs)
    assert report.op_counts["CONCATENATION"] == 4  # tiled block shortcuts: blocks 0, 3, 7, 13
    assert report.op_counts["PRELU"] == 50  # 48 PokeConvs + 2 in the stem


def test_float_glue_per_pokeconv_is_the_derived_minimum(converted):
    """4 full-resolution elementwise ops per PokeConv (shortcut ADD, PRELU, gate MUL, offset ADD)
    plus one ADD per block shortcut (16 blocks). At 64x64, stage 4 runs on 2x2 maps, where LCE's
    same-zero kernels are wrong; the two stride-1 3x3 convs there (blocks 14, 15) use same-one
    padding with an exact correction: one more ADD each."""
    census = full_resolution_elementwise_ops(converted.model_info)
    assert census["counts"] == {"ADD": 48 + 16 + 48 + 2, "PRELU": 48, "MUL": 48}
    assert census["binary_convs"] == 48
    assert census["per_binary_conv"] == pytest.approx(210 / 48)
    same_one = [b.op_index for b in converted.report.bconvs if b.padding_mode == "same-one"]
    assert len(same_one) == 2


# --- int8 ---------------------------------------------------------------------------------------
def test_int8_without_calibrated_bounds_is_a_clear_error():
    model, _ = poke_block(5, pos_slopes=[1.0])
    with pytest.raises(MissingQuantizationInfoError, match="-1 sentinel"):
        pokebnn_deployable(model, int8=True)
    with pytest.raises(QuantizationInfoError):
        convert(model, int8=True, verify=False)


def test_int8_stem_se_and_head():
    model, images = poke_block(6, pos_slopes=[1.1, 0.8])
    calibrate_activation_bounds(model, images)
    float_result = convert(model, sample_inputs=images)
    result = convert(model, int8=True, sample_inputs=images)
    report = result.report
    assert report.int8_requested and report.precision == "mixed"
    assert report.fully_binarized and report.op_counts.get("LceDequantize", 0) == 0
    int8_ops = {}
    for op in result.model_info.operators:
        if result.model_info.op_output_dtype(op) == "INT8" and op.op_type != "QUANTIZE":
            int8_ops[op.op_type] = int8_ops.get(op.op_type, 0) + 1
    # stem conv + 3 SE x (fc1, fc2) + head conv; the stem's grouped conv
    assert int8_ops.get("CONV_2D") == 1 + 2 * 3 + 1
    assert int8_ops.get("DEPTHWISE_CONV_2D") == 1
    assert report.size_bytes < float_result.report.size_bytes
    parity = report.parity
    assert parity.top1_agreement >= 0.5
    assert parity.max_abs_diff <= 0.5 * parity.max_abs_reference
    # Ranges from the sample images: no note; without them the report says they came from noise.
    assert not [note for note in report.notes if "standard-normal" in note]
    checks = pokebnn_deployable(model, int8=True)._deployment_checks
    assert "standard-normal images" in checks[0](report)
