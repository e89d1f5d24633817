"""Cost accounting against the official PokeBNN ACE numbers, larq's own MAC counts, and hand
computations."""

import json

import larq as lq
import larq_zoo
import numpy as np
import pytest
import tensorflow as tf

import larq_poke
from larq_poke.cost import profile, stored_sizes
from larq_poke.zoo import PokeBNN
from larq_poke.zoo.zoo_model import width_label

# ACE at 224x224 computed from the official code (pokebnn.md section 3.2).
OFFICIAL_ACE_G = {0.5: 1.410, 0.75: 2.588, 1.0: 4.223, 1.5: 8.863, 2.0: 15.331}
OFFICIAL_TRAINABLE_PARAMS_M = {0.5: 7.21, 0.75: 15.37, 1.0: 26.57, 2.0: 101.7}


@pytest.mark.slow
@pytest.mark.parametrize("width", sorted(OFFICIAL_ACE_G))
def test_pokebnn_ace_matches_official(width, zoo_cost):
    report = zoo_cost(f"pokebnn-{width_label(width)}x")
    totals = report.totals
    assert round(totals["ace"] / 1e9, 3) == OFFICIAL_ACE_G[width]
    if width in OFFICIAL_TRAINABLE_PARAMS_M:
        digits = 1 if width == 2.0 else 2
        assert round(totals["trainable_params"] / 1e6, digits) == OFFICIAL_TRAINABLE_PARAMS_M[width]
    assert sum(r.lce_binary for r in report.layers) == 48
    if width == 1.0:  # pinned exactly by the official pokebnn_test.py
        dense = sum(r.ace for r in report.layers if r.name == "dense")
        assert dense == 131_072_000
        assert totals["ace"] - dense == 4_091_469_824


@pytest.fixture(scope="module")
def small_pokebnn():
    """PokeBNN-0.5x at 64x64 (the golden-vector configuration) and its cost profile, built once."""
    model = PokeBNN(0.5, input_shape=(64, 64, 3))
    return model, profile(model)


def test_pokebnn_golden_configuration_ace(small_pokebnn):
    _, report = small_pokebnn
    dense = sum(r.ace for r in report.layers if r.name == "dense")
    assert (report.totals["ace"] - dense, dense) == (123_066_368, 65_536_000)


def test_stored_sizes_without_a_trace_are_the_profiles(small_pokebnn):
    """What ``convert`` reports (weights only) against the profile's count along the traced call:
    SE blocks, 4- and 8-bit weights, switchable quantizers and their bounds."""
    model, report = small_pokebnn
    assert stored_sizes(model) == {k: report.totals[k] for k in ("packed_size_bytes", "storable_size_bytes")}
    assert report.totals["storable_size_bytes"] > report.totals["packed_size_bytes"]  # 4-bit weights round up


@pytest.mark.slow
def test_quicknet_matches_larq_counts():
    report = profile(larq_zoo.sota.QuickNet(weights=None))
    assert report.totals["bops"] == 1_849_688_064
    assert report.totals["flops"] == 29_651_712


def test_hand_computed_model():
    """Every counted quantity of a small model, computed by hand."""
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)  # float
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(64, 3, padding="same", use_bias=False,
                              input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x)  # binary
    x = lq.quantizers.SteSign()(x)  # standalone sign layer feeding the next conv
    x = lq.layers.QuantConv2D(64, 1, use_bias=False, kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x)  # binary via the sign layer
    x = lq.layers.QuantConv2D(64, 3, groups=2, padding="same", use_bias=False,
                              input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x)  # grouped, 32 per group
    x = tf.keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)  # float
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = lq.layers.QuantDense(10, kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    model = tf.keras.Model(inputs, outputs)

    report = profile(model, float_bits=32)
    macs = [r.macs for r in report.layers if r.macs]
    stem = 8 * 8 * 3 * 3 * 3 * 32
    b1 = 8 * 8 * 3 * 3 * 32 * 64
    b2 = 8 * 8 * 64 * 64
    b3 = 8 * 8 * 3 * 3 * 32 * 64
    dw = 8 * 8 * 3 * 3 * 128
    dense = 128 * 10
    assert macs == [stem, b1, b2, b3, dw, dense]
    t = report.totals
    assert t["bops"] == b1 + b2 + b3
    assert t["flops"] == stem + dw + dense  # binary weights with a float input are not BOPs
    assert t["ace"] == (stem + dw) * 32 * 32 + b1 + b2 + b3 + dense * 1 * 32
    assert t["ops"] == pytest.approx(t["bops"] / 64 + t["flops"])
    assert t["binarization_degree_8bit"] == pytest.approx(t["bops"] / (t["bops"] + 8 * t["flops"]))
    lce = [r.lce_binary for r in report.layers if r.macs]
    assert lce == [False, True, True, True, False, False]
    # packed: binary kernels 1 bit; float kernels, depthwise bias, dense bias, BN (2/channel) 32 bits
    bits = (b1 // 64 + 64 * 64 + 9 * 32 * 64) + 10 * 128 + 32 * (3 * 3 * 3 * 32 + 2 * 32 + 9 * 64 * 2 + 128 + 10)
    assert t["packed_size_bytes"] == int(np.ceil(bits / 8))
    assert stored_sizes(model)["packed_size_bytes"] == int(np.ceil(bits / 8))  # no trace, same count
    assert t["params"] == model.count_params()


def test_packed_and_storable_size_of_multibit_weights():
    from larq_poke.quantizers import SignedWeightQuantizer

    inputs = tf.keras.Input((8, 8, 16))
    x = lq.layers.QuantConv2D(32, 3, padding="same", kernel_quantizer=SignedWeightQuantizer(4))(inputs)
    x = lq.layers.QuantConv2D(32, 1, use_bias=False, kernel_quantizer=SignedWeightQuantizer(12))(x)
    x = lq.layers.QuantConv2D(64, 3, padding="same", use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    model = tf.keras.Model(inputs, x)
    w4, bias, w12, w1 = 3 * 3 * 16 * 32, 32, 32 * 32, 3 * 3 * 32 * 64
    t = profile(model).totals
    assert t["packed_size_bytes"] == (4 * w4 + 32 * bias + 12 * w12 + w1) // 8
    # TFLite holds the 4-bit kernel as int8 and the 12-bit one as int16; binary stays 1 bit.
    assert t["storable_size_bytes"] == (8 * w4 + 32 * bias + 16 * w12 + w1) // 8
    assert stored_sizes(model) == {"packed_size_bytes": (4 * w4 + 32 * bias + 12 * w12 + w1) // 8,
                                   "storable_size_bytes": (8 * w4 + 32 * bias + 16 * w12 + w1) // 8}


def test_float_bits_parameter():
    inputs = tf.keras.Input((4, 4, 8))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 1, use_bias=False)(inputs))
    macs = 4 * 4 * 8 * 8
    assert profile(model).totals["ace"] == macs * 256
    assert profile(model, float_bits=32).totals["ace"] == macs * 1024


def test_unknown_input_size_needs_input_shape():
    inputs = tf.keras.Input((None, None, 3))
    x = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match="input_shape"):
        profile(model)
    report = profile(model, input_shape=(10, 10, 3))
    assert report.input_shape == (10, 10, 3)
    assert report.totals["bops"] == 8 * 8 * 8 * 3 * 3 * 3  # an 8x8 output map, 3x3x3 binary MACs per value


def test_report_dict_and_json_shape(small_pokebnn):
    model, report = small_pokebnn
    d = json.loads(report.to_json())
    assert set(d["totals"]) >= {"ace", "bops", "flops", "ops", "params", "packed_size_bytes",
                                "binarization_degree", "binarization_degree_8bit"}
    row = d["layers"][0]
    assert set(row) >= {"name", "kind", "output_shape", "weight_bits", "input_bits", "params",
                        "macs", "bops", "ace", "flops", "lce_binary"}
    assert sum(r["params"] for r in d["layers"]) == model.count_params()


def test_zoo_summary_prints_cost_table(small_pokebnn):
    model, _ = small_pokebnn
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params" in text and "ACE:" in text and "188,602,368" in text
    lines.clear()
    plain = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    larq_poke.summary(plain, print_fn=lines.append)
    assert "ACE:" in "\n".join(lines)


def test_not_a_model():
    with pytest.raises(ValueError, match="Keras model"):
        profile(tf.keras.layers.Dense(3))
