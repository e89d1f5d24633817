"""BNext layers: binarizers, the binary conv's padding, the three unit types, serialization.

Unit outputs are compared with a direct NumPy (NHWC) implementation of the official forward pass
(bnext.md sections 1.3-1.4), written independently of the Keras code.
"""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_poke.layers import bnext
from larq_poke.layers.bnext import (
    BNextBinaryConv2D,
    BNextSign,
    BNextWeightSign,
    LearnableBias,
    ScaleMix,
    SymmetricMaxPool2D,
)

# ------------------------------------------------------------------------------------------------
# NumPy reference (torch semantics: sign(0) = 0, zero padding after binarization).


def np_conv(x, kernel, stride, pad, bias=None):
    """NHWC conv, HWIO kernel, symmetric zero padding."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, cout = kernel.shape
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += patch @ kernel[i, j]
    return out if bias is None else out + bias


def np_bn(x, w):
    gamma, beta, mean, var = w
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def np_prelu(x, alpha):
    return np.maximum(x, 0) + alpha * np.minimum(x, 0)


def np_pool(x):
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def np_se(m, w1, b1, w2, b2):
    g = m.mean(axis=(1, 2), keepdims=True)
    h = np.maximum(g @ w1[0, 0] + b1, 0)
    return 1 / (1 + np.exp(-(h @ w2[0, 0] + b2)))


def np_unit(x, p, kind, stride, kernel_size, clamp=False):
    """Official unit forward with the parameters ``p`` (a dict of NumPy arrays)."""
    binary = np.sign(x + p["move"])
    conv = np_conv(binary, np.sign(p["kernel"]), stride, kernel_size // 2)
    branch = np_prelu(np_bn(conv, p["norm1"]), p["act2"])
    pooled = np_pool(x) if stride == 2 else x
    scale = np.clip(p["scale"], 0, 1) if clamp else p["scale"]
    if kind == "elm":
        residual = np_prelu(x, p["act1"])
        residual = np_pool(residual) if stride == 2 else residual
    else:
        residual = pooled
    mix = scale * pooled + (1 - scale) * branch
    y = np_se(mix, *p["se"]) * branch
    if kind == "elm":
        y = y * residual
    return np_bn(y, p["norm2"]) + residual


def random_unit_params(rng, c, k):
    def bn():
        return [
            rng.uniform(0.5, 1.5, c),
            rng.normal(0, 0.2, c),
            rng.normal(0, 0.3, c),
            rng.uniform(0.5, 1.5, c),
        ]

    return {
        "move": rng.normal(0, 0.3, c),
        "kernel": rng.choice([-1.0, 1.0], (k, k, c, c)) * rng.choice([0.05, 0.6, 1.2], (k, k, c, c)),
        "norm1": bn(),
        "norm2": bn(),
        "act1": rng.uniform(-0.2, 0.6, c),
        "act2": rng.uniform(-0.2, 0.6, c),
        "scale": rng.uniform(-0.1, 1.1, c),  # outside [0, 1] to see the FFN_1x1 clamp
        "se": [
            rng.normal(0, 1, (1, 1, c, c // 8)) / np.sqrt(c),
            rng.normal(0, 0.5, c // 8),
            rng.normal(0, 1, (1, 1, c // 8, c)) / np.sqrt(c // 8),
            rng.normal(0, 0.5, c),
        ],
    }


def assign_unit(model, name, p, kind):
    def f32(a):
        return np.asarray(a, np.float32)

    model.get_layer(f"{name}.move").set_weights([f32(p["move"])])
    model.get_layer(f"{name}.binary_conv").set_weights([f32(p["kernel"])])
    model.get_layer(f"{name}.norm1").set_weights([f32(a) for a in p["norm1"]])
    model.get_layer(f"{name}.norm2").set_weights([f32(a) for a in p["norm2"]])
    model.get_layer(f"{name}.activation2").set_weights([f32(p["act2"]).reshape(1, 1, -1)])
    if kind == "elm":
        model.get_layer(f"{name}.activation1").set_weights([f32(p["act1"]).reshape(1, 1, -1)])
    model.get_layer(f"{name}.scale").set_weights([f32(p["scale"])])
    model.get_layer(f"{name}.se.se.1").set_weights([f32(p["se"][0]), f32(p["se"][1])])
    model.get_layer(f"{name}.se.se.3").set_weights([f32(p["se"][2]), f32(p["se"][3])])


# ------------------------------------------------------------------------------------------------
# Binarizers.


def test_activation_sign_forward_and_gradient():
    x = tf.constant([-2.0, -1.5, -0.3, 0.0, 0.7, 1.5, 1.6])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        larq_style = BNextSign()(x)
        torch_style = BNextSign(zero_sign=0)(x)
    np.testing.assert_array_equal(larq_style, [-1, -1, -1, 1, 1, 1, 1])
    np.testing.assert_array_equal(torch_style, [-1, -1, -1, 0, 1, 1, 1])
    expected_grad = [0, 1, 1, 1, 1, 1, 0]  # clamp(x, -1.5, 1.5)' : inside the closed interval
    np.testing.assert_array_equal(tape.gradient(larq_style, x), expected_grad)
    np.testing.assert_array_equal(tape.gradient(torch_style, x), expected_grad)


def test_weight_sign_identity_gradient():
    w = tf.constant([-3.0, -0.01, 0.0, 0.5, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = BNextWeightSign()(w) * tf.constant([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(BNextWeightSign()(w), [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(BNextWeightSign(zero_sign=0)(w), [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(tape.gradient(y, w), [1, 2, 3, 4, 5])  # no clipping mask


@pytest.mark.parametrize("cls", [BNextSign, BNextWeightSign])
def test_quantizers_are_binary_and_serializable(cls):
    q = cls(zero_sign=0)
    assert q.precision == 1
    restored = lq.quantizers.get(lq.quantizers.serialize(q))
    assert type(restored) is cls and restored.zero_sign == 0
    with pytest.raises(ValueError, match="zero_sign"):
        cls(zero_sign=-1)


# ------------------------------------------------------------------------------------------------
# Binary conv.


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_binary_conv_pads_zeros_after_binarizing(stride, size):
    rng = np.random.default_rng(stride * 10 + size)
    x = rng.normal(0, 1, (2, size, size, 4)).astype(np.float32)
    kernel = rng.normal(0, 1, (3, 3, 4, 5)).astype(np.float32)
    layer = BNextBinaryConv2D(5, 3, strides=stride, zero_sign=0)
    layer.build(x.shape)
    layer.set_weights([kernel])
    expected = np_conv(np.sign(x), np.sign(kernel), stride, 1)
    out = layer(x).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert tuple(layer.compute_output_shape(x.shape)) == expected.shape
    # Padding before binarizing (with +1 border) would differ at the border:
    wrong = np_conv(
        np.sign(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1)), np.sign(kernel), stride, 0
    )
    assert not np.allclose(out, wrong)


def test_binary_conv_is_a_binary_quantconv():
    layer = BNextBinaryConv2D(8, 3, strides=2)
    assert isinstance(layer, lq.layers.QuantConv2D)
    assert layer.input_quantizer.precision == 1 and layer.kernel_quantizer.precision == 1
    assert not layer.use_bias
    restored = BNextBinaryConv2D.from_config(layer.get_config())
    assert restored.strides == (2, 2) and restored.explicit_padding == 1
    assert restored.input_quantizer.clip_value == 1.5
    with pytest.raises(ValueError, match="odd kernel"):
        BNextBinaryConv2D(8, 2)


def test_symmetric_max_pool_matches_torch_padding():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (1, 8, 8, 2)).astype(np.float32) - 5.0  # all negative: -inf padding matters
    out = SymmetricMaxPool2D(3, 2, padding=1)(x).numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack(
        [
            np.stack([padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(0, 1)) for j in range(4)])
            for i in range(4)
        ]
    )[None]
    np.testing.assert_array_equal(out, expected)


# ------------------------------------------------------------------------------------------------
# Units against the NumPy reference.


@pytest.mark.parametrize(
    "kind, stride, kernel_size",
    [("elm", 2, 3), ("elm", 1, 3), ("ffn_3x3", 1, 3), ("ffn_3x3", 2, 3), ("ffn_1x1", 1, 1)],
)
def test_units_match_reference(kind, stride, kernel_size):
    c = 16
    rng = np.random.default_rng(hash((kind, stride)) % 2**32)
    x = rng.normal(0, 1, (2, 8, 8, c)).astype(np.float32)
    inputs = tf.keras.Input((8, 8, c))
    if kind == "elm":
        y = bnext.elm_attention_unit(inputs, stride=stride, name="u", zero_sign=0)
    elif kind == "ffn_3x3":
        y = bnext.ffn_3x3_unit(inputs, stride=stride, name="u", zero_sign=0)
    else:
        y = bnext.ffn_1x1_unit(inputs, name="u", zero_sign=0)
    model = tf.keras.Model(inputs, y)
    params = random_unit_params(rng, c, kernel_size)
    assign_unit(model, "u", params, kind)
    expected = np_unit(x.astype(np.float64), params, kind, stride, kernel_size, clamp=kind == "ffn_1x1")
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)
    # The binary conv is the only quantized layer; the SE convs are real-valued.
    binary = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert [layer.name for layer in binary] == ["u.binary_conv"]
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D) and layer not in binary:
            assert (
                getattr(layer, "kernel_quantizer", None) is None
                and getattr(layer, "input_quantizer", None) is None
            )


def test_unit_layers_round_trip_through_config():
    layers = [LearnableBias(name="b"), ScaleMix(clamp=True, name="s"), SymmetricMaxPool2D(3, 2, 1, name="p")]
    for layer in layers:
        config = tf.keras.layers.serialize(layer)
        restored = tf.keras.layers.deserialize(config)
        assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


def test_se_needs_eight_channels():
    with pytest.raises(ValueError, match="at least 8 channels"):
        bnext.squeeze_excite(tf.keras.Input((4, 4, 4)), "se")


# ------------------------------------------------------------------------------------------------
# Save / load round trip (h5 and SavedModel) of a BNext with every layer type.


@pytest.fixture(scope="module")
def small_bnext():
    from larq_poke.zoo import BNext

    zoo_model = BNext([8, 16, 32], input_shape=(16, 16, 3), num_classes=10)  # FFN_3x3 + ELM/2, both doubling
    # A plain functional model with the same layers: this tests the BNext layers' serialization
    # (the ZooModel wrapper class is tested with the zoo).
    model = tf.keras.Model(zoo_model.input, zoo_model.output)
    rng = np.random.default_rng(0)
    model.set_weights(
        [
            rng.uniform(0.5, 1.0, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape)
            for w in model.weights
        ]
    )
    x = rng.normal(0, 1, (2, 16, 16, 3)).astype(np.float32)
    return model, x, model(x, training=False).numpy()


@pytest.mark.parametrize("fmt", ["h5", "tf"])
def test_save_load_round_trip(small_bnext, tmp_path, fmt):
    model, x, expected = small_bnext
    path = str(tmp_path / ("model.h5" if fmt == "h5" else "saved_model"))
    if fmt == "h5":
        model.save(path, save_format="h5")
    else:
        # Without traced call functions: restoring then goes through the registered classes'
        # get_config / from_config (tracing would add ~40 s to this test and is not what we test).
        model.save(path, save_format="tf", save_traces=False)
    restored = tf.keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(restored(x, training=False).numpy(), expected)
    conv = restored.get_layer("feature.2.Attention.binary_conv")
    assert isinstance(conv, BNextBinaryConv2D) and conv.explicit_padding == 1
    assert isinstance(conv.input_quantizer, BNextSign) and isinstance(conv.kernel_quantizer, BNextWeightSign)
