"""The deployable BNext rewrite: original Keras == deployable Keras == LCE TFLite on the golden
input, and every binary conv an ``LceBconv2d``.

References are independent of the code under test: the official PyTorch logits in the golden file
(``bnext_small.npz``: stage list [16, 32, 64, 64, 128, 128, 128, 128], 64x64 input, two strided
ELM units), the original larq_poke model, and convs computed with plain ``tf.nn.conv2d`` on
zero-padded signs.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import golden_path
from test_bnext_golden import SMALL_STAGES, official_state

from larq_poke.converters import convert
from larq_poke.zoo.bnext import load_bnext_torch
from larq_poke.converters.rewrites.bnext import (
    ChannelAffine,
    MixedMeans,
    TorchPaddedBinaryConv,
    bnext_deployable,
)
from larq_poke.converters.flatbuffer import full_resolution_elementwise_ops
from larq_poke.converters.rewrites import applicable_rewrites
from larq_poke.layers.bnext import BNextBinaryConv2D, LearnableBias, ScaleMix
from larq_poke.zoo.bnext import BNext

GOLDEN_ARGMAX = [706, 706]


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("bnext_small.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def images(golden):
    return np.ascontiguousarray(golden["input"].transpose(0, 2, 3, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def model(golden):
    model = BNext(SMALL_STAGES, input_shape=(64, 64, 3))
    load_bnext_torch(model, official_state(golden))
    return model


@pytest.fixture(scope="module")
def reference(model, images):
    return model(images, training=False).numpy()


@pytest.fixture(scope="module")
def converted(model, images):
    """One LCE conversion of the golden BNext (about a minute)."""
    return convert(model, strict=True, sample_inputs=images)


def binary_convs(model):
    return [layer for layer in model.layers if isinstance(layer, BNextBinaryConv2D)]


# --- the identity on single convs ---------------------------------------------------------------
@pytest.mark.parametrize("size", [8, 7, 2])
def test_strided_conv_equals_torch_zero_padding(size):
    """conv(pad0(sign x)) with (1, 1) padding, stride 2: even maps (top / left +1 pad and the
    correction) and odd maps (same-zero), on inputs with exact zeros (sign(0) = +1)."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, size, size, 32)).astype(np.float32)
    x[:, ::3, ::2, ::5] = 0.0
    conv = BNextBinaryConv2D(16, 3, strides=2)
    conv.build((None, size, size, 32))
    kernel = rng.standard_normal(conv.kernel.shape).astype(np.float32)
    kernel[0, 0, :4] = 0.0
    conv.kernel.assign(kernel)
    signs = np.where(x >= 0, 1.0, -1.0).astype(np.float32)
    expected = tf.nn.conv2d(
        np.pad(signs, [[0, 0], [1, 1], [1, 1], [0, 0]]), np.where(kernel >= 0, 1.0, -1.0), 2, "VALID"
    ).numpy()
    np.testing.assert_array_equal(conv(x).numpy(), expected)

    new = TorchPaddedBinaryConv(conv)
    raw = new(x).numpy()
    correction = 0.0 if new.correction is None else new.correction
    np.testing.assert_array_equal(raw - correction, expected)
    if size % 2 == 0:
        assert new.correction is not None
        assert not new.correction[:, 1:, 1:].any()  # only the first row and column are padded
    else:
        assert new.correction is None and new.conv.padding == "same"


# --- Keras equivalence --------------------------------------------------------------------------
def test_rewrite_is_registered_and_not_reapplied(model):
    assert "bnext" in applicable_rewrites(model)
    assert "bnext" not in applicable_rewrites(bnext_deployable(model))


def test_rewrite_does_not_apply_to_torch_sign_models():
    model = BNext(SMALL_STAGES, input_shape=(64, 64, 3), zero_sign=0)
    assert "bnext" not in applicable_rewrites(model)


def test_deployable_keras_equals_original(model, images, reference, golden):
    deployable = bnext_deployable(model)
    out = deployable(images, training=False).numpy()
    assert np.abs(out - reference).max() < 1e-5
    assert list(out.argmax(1)) == list(reference.argmax(1)) == GOLDEN_ARGMAX
    assert np.abs(reference - golden["output"]).max() <= 1e-4
    strided = [layer for layer in deployable.layers if isinstance(layer, TorchPaddedBinaryConv)]
    assert len(strided) == 2  # the two strided ELM units of the reduced model
    # every unit's SE input from two pools (no full-resolution mix) and BN_2 split into a 1x1
    # scale on the attention and a full-resolution shift
    mixes = [layer for layer in model.layers if isinstance(layer, ScaleMix)]
    norm2 = [layer for layer in model.layers if layer.name.endswith(".norm2")]
    assert len(mixes) == len(norm2) == 17
    assert sum(isinstance(layer, MixedMeans) for layer in deployable.layers) == len(mixes)
    affine = [layer for layer in deployable.layers if isinstance(layer, ChannelAffine)]
    assert sorted(layer.name for layer in affine if layer.name.endswith(".norm2")) == sorted(
        layer.name for layer in norm2
    )
    # move biases: folded except before ELM units (their input feeds PReLU_1) and the second of
    # two FFN_1x1 units on one tensor (only the difference of the two biases remains)
    kept = sorted(layer.name for layer in deployable.layers if isinstance(layer, LearnableBias))
    elm_moves = [layer.name.replace(".elm_mul", ".move") for layer in model.layers
                 if layer.name.endswith(".elm_mul")]
    assert kept == sorted(elm_moves)
    residual = sorted(layer.name for layer in affine if layer.name.endswith(".move"))
    assert residual == sorted(layer.name for layer in model.layers if layer.name.endswith(".FFN_2.move"))


# --- LCE ----------------------------------------------------------------------------------------
def test_tflite_equals_original(converted, images, reference, golden):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(converted.flatbuffer, num_threads=1, use_indirect_bgemm=True)
    logits = np.asarray(interpreter.predict(images))
    assert np.abs(logits - reference).max() < 1e-3
    assert np.abs(logits - golden["output"]).max() < 1e-3
    assert list(logits.argmax(1)) == GOLDEN_ARGMAX
    parity = converted.report.parity
    assert parity.max_abs_diff < 1e-3 and parity.top1_agreement == 1.0


def test_census_every_binary_conv_is_an_lce_bconv(converted, model):
    report = converted.report
    n = len(binary_convs(model))
    assert n == 17
    assert report.rewrites == ["bnext"]
    assert len(report.binary_layers) == n and report.fully_binarized
    assert report.op_counts["LceBconv2d"] == n
    assert report.op_counts.get("LceDequantize", 0) == 0
    assert all(b.multiplier == "folded" and b.bias == "folded" for b in report.bconvs)
    # One PAD(+1) before and one ADD_N (the padding correction) after each strided conv; the
    # stem keeps its own PAD (top / left only) before its CONV_2D.
    assert report.op_counts["PADV2"] == 2 and report.op_counts["ADD_N"] == 2
    assert report.op_counts["PAD"] == 1


def test_float_glue_per_unit(converted, model):
    """Full-resolution elementwise ops per unit, derived from BNext's formulas after the rewrite:
    PReLU_2, the attention MUL, BN_2's shift ADD and the residual ADD (4); the move ADD only
    where its input also feeds PReLU_1 (the ELM units) and for the second of two FFN_1x1 units
    on one tensor (the first one's bias is folded into the shifts that make the tensor); an ELM
    unit adds PReLU_1 and the ELM MUL (2); each strided conv its correction ADD_N. The mix
    (2 MUL + 1 ADD) and BN_2's scale MUL no longer run at full resolution. Upper bounds: ops before
    the first binarizer are not counted."""
    units = [layer for layer in model.layers if isinstance(layer, ScaleMix)]
    elm = [layer for layer in model.layers if layer.name.endswith(".elm_mul")]
    second_ffn = [layer for layer in model.layers if layer.name.endswith(".FFN_2.move")]
    moves = len(elm) + len(second_ffn)
    census = full_resolution_elementwise_ops(converted.model_info)
    counts = census["counts"]
    assert census["total"] <= 4 * len(units) + moves + 2 * len(elm) + 2 + 1
    assert counts["MUL"] <= len(units) + len(elm)
    assert counts["ADD"] <= 2 * len(units) + moves
    assert counts["PRELU"] <= sum(isinstance(layer, tf.keras.layers.PReLU) for layer in model.layers)
