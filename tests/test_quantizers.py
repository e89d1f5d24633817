"""PokeBNN quantizers against independent NumPy versions of the official formulas."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_poke.quantizers import (
    EPS,
    PokeBinaryActivation,
    PokeBinaryWeight,
    SignedActivationQuantizer,
    SignedWeightQuantizer,
    UnsignedActivationQuantizer,
)

RNG = np.random.default_rng(0)


def grad(quantizer, x):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(quantizer(x))
    return tape.gradient(y, x).numpy()


def test_eps_is_float32_machine_epsilon():
    assert EPS == 2.0**-23


def test_binary_activation_values_and_zero():
    x = np.array([-5.0, -1e-6, 0.0, 1e-6, 2.0, 7.0], np.float32)
    y = PokeBinaryActivation()(x).numpy()
    half = np.float32(0.5) * np.float32(3.0 + EPS)
    np.testing.assert_allclose(y, [-half, -half, half, half, half, half], rtol=0, atol=1e-6)
    assert y[2] > 0  # zero maps to +


def test_binary_activation_gradient_window():
    limit = 3.0 * (1 - 2.0**-7)
    x = np.array([-3.5, -limit - 1e-3, -limit + 1e-3, 0.0, 2.5, limit + 1e-3], np.float32)
    np.testing.assert_array_equal(grad(PokeBinaryActivation(), x), [0, 0, 1, 1, 1, 0])


def test_binary_weight_per_output_channel():
    w = RNG.normal(size=(3, 3, 4, 5)).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    y = PokeBinaryWeight()(w).numpy()
    scale = 0.5 * (np.abs(w).max(axis=(0, 1, 2)) + EPS)
    expected = np.where(w >= 0, 1.0, -1.0) * scale
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert y[0, 0, 0, 0] > 0


def test_binary_weight_gradient_zero_only_at_channel_max():
    w = np.array([[0.5, -2.0], [-1.0, 0.25]], np.float32)
    np.testing.assert_array_equal(grad(PokeBinaryWeight(), w), [[1, 0], [0, 1]])


def test_binary_weight_depthwise_axes():
    w = RNG.normal(size=(3, 3, 4, 2)).astype(np.float32)
    y = PokeBinaryWeight(channel_axes=2)(w).numpy()
    np.testing.assert_allclose(np.abs(y), np.broadcast_to(0.5 * (np.abs(w).max(axis=(0, 1)) + EPS), w.shape), rtol=1e-6)


@pytest.mark.parametrize("bits", [4, 8])
def test_signed_weight_round_half_up(bits):
    levels = 2 ** (bits - 1) - 1
    w = RNG.normal(size=(2, 6)).astype(np.float32)
    y = SignedWeightQuantizer(bits=bits)(w).numpy()
    scale = levels / (np.abs(w).max(axis=0) + EPS)
    expected = np.floor(np.clip(w * scale, -levels, levels) + 0.5) / scale
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    # a value exactly halfway between two levels goes up (tf.round would go to even)
    w2 = np.array([[2.5 / 7.0], [1.0], [-1.0]], np.float32)
    y2 = SignedWeightQuantizer(bits=4)(w2).numpy()
    s = 7.0 / (1.0 + EPS)
    assert np.isclose(y2[0, 0] * s, np.floor(np.float32(2.5 / 7.0) * np.float32(s) + 0.5))


def test_signed_activation_per_channel_bounds_and_sentinel():
    q = SignedActivationQuantizer(bits=8)
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32) * 3
    np.testing.assert_array_equal(q(x).numpy(), x)  # bounds start at -1: pass-through
    bounds = np.array([1.0, -1.0, 4.0], np.float32)
    q.bounds.assign(bounds)
    y = q(x).numpy()
    s = 127 / (bounds + EPS)
    expected = np.floor(np.clip(x * s, -127, 127) + 0.5) / s
    expected[..., 1] = x[..., 1]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_signed_activation_one_bound_per_tensor():
    """``per_channel=False`` (BiNeal's 8-bit inputs): one bound, shape (1,), for every channel,
    on int8's grid; calibrated from data, it is the mean over batches of each batch's max |x| over all channels."""
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    q = SignedActivationQuantizer(bits=8, per_channel=False)
    x = RNG.normal(size=(4, 4, 4, 3)).astype(np.float32) * np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(q(x).numpy(), x)  # the -1 sentinel passes through
    assert q.bounds.shape == (1,)
    q.bounds.assign([2.5])
    s = 127 / (2.5 + EPS)
    # int8's two's-complement grid: clipped at -128 steps below, 127 above (PokeBNN's per-channel
    # quantizer clips at -127)
    assert np.sum(x * s < -127.5) > 0 and np.sum(x * s > 127.5) > 0
    np.testing.assert_allclose(q(x).numpy(), np.floor(np.clip(x * s, -128, 127) + 0.5) / s, rtol=1e-6)

    inputs = tf.keras.Input((4, 4, 3))
    with lq.context.quantized_scope(True):
        model = tf.keras.Model(inputs, lq.layers.QuantConv2D(
            2, 1, input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False))(inputs))
    calibrate_activation_bounds(model, x, batch_size=2)
    peaks = [np.abs(x[i:i + 2]).max() for i in (0, 2)]
    np.testing.assert_allclose(model.layers[1].input_quantizer.bounds.numpy(), [np.mean(peaks)], rtol=1e-6)


@pytest.mark.parametrize("per_channel", [True, False])
def test_deployable_activation_arithmetic_clips_as_the_quantizer(per_channel):
    """The deployable rewrites' TFLite-native form of a signed activation quantizer
    (``ActivationQuant``) clips where the quantizer does: at -127 steps per channel, at -128
    per tensor, for inputs far beyond the bound."""
    from larq_poke.converters.rewrites.common import ActivationQuant

    q = SignedActivationQuantizer(bits=8, per_channel=per_channel)
    x = RNG.normal(size=(2, 3, 3, 3)).astype(np.float32) * 4
    q(x)
    q.bounds.assign(np.full(q.bounds.shape, 1.5, np.float32))
    s = np.float32(127) / np.float32(1.5 + EPS)
    expected = np.floor(np.clip(x * s, -127 if per_channel else -128, 127) + 0.5) / s
    arithmetic = ActivationQuant(q, "q")
    np.testing.assert_allclose(q(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(arithmetic.float_call(tf.constant(x)).numpy(), expected, rtol=1e-6)
    low = arithmetic.int8_range()[0]
    assert np.isclose(low, -128 / s, rtol=1e-6)  # int8's lowest step


def test_unsigned_activation_floors_then_clips():
    q = UnsignedActivationQuantizer(bits=4)
    q(np.zeros((1, 1, 1, 2), np.float32))
    q.bounds.assign([2.0, 0.5])
    x = np.array([[[[0.99, 0.7]], [[-0.3, 0.49]]]], np.float32).reshape(2, 1, 1, 2)
    s = 16 / (np.array([2.0, 0.5], np.float32) + EPS)
    expected = np.clip(np.floor(x * s), 0, 15) / s
    np.testing.assert_allclose(q(x).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "quantizer, bits",
    [
        (PokeBinaryActivation(bound=2.0), 1),
        (PokeBinaryWeight(channel_axes=2), 1),
        (SignedWeightQuantizer(bits=4), 4),
        (SignedActivationQuantizer(bits=8), 8),
        (SignedActivationQuantizer(bits=8, per_channel=False), 8),
        (UnsignedActivationQuantizer(bits=4), 4),
    ],
)
def test_serialization_and_precision(quantizer, bits):
    assert quantizer.precision == bits
    restored = lq.quantizers.get(lq.quantizers.serialize(quantizer))
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()
    assert restored.precision == bits


def test_larq_summary_sees_bits():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 32)),
            lq.layers.QuantConv2D(32, 3, input_quantizer=PokeBinaryActivation(),
                                  kernel_quantizer=PokeBinaryWeight(), use_bias=False),
            lq.layers.QuantConv2D(32, 1, input_quantizer=SignedActivationQuantizer(bits=4),
                                  kernel_quantizer=SignedWeightQuantizer(bits=4), use_bias=False),
        ]
    )
    lines = []
    lq.models.summary(model, print_fn=lines.append)
    text = "\n".join(lines)
    assert "1-bit MACs" in text and "4-bit MACs" in text
