"""Tiny Keras models for the LCE conversion tests, and their conversions cached per pytest run
(LCE conversions take seconds each, so every model is converted once and shared by the test
modules).

Each builder documents what the model's structure implies for the flatbuffer (following the
fusion rules of LCE 0.16); the tests compare the conversion report against those implications.
"""

import functools

import larq_poke  # noqa: F401  (Keras 2 before TensorFlow)

import larq as lq
import numpy as np
import tensorflow as tf

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
    padding="same",
    pad_values=1.0,
)


def binary_conv(filters, name, **overrides):
    kwargs = dict(BINARY)
    kwargs.update(overrides)
    return lq.layers.QuantConv2D(filters, 3, name=name, **kwargs)


def randomize_batch_norms(model, seed=1):
    """Non-trivial BN statistics, so that folding them into the binary convs is visible."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            gamma, beta = rng.uniform(0.5, 2.0, n), rng.normal(0, 1, n)
            mean, variance = rng.normal(0, 1, n), rng.uniform(0.5, 2.0, n)
            layer.set_weights([gamma, beta, mean, variance])
    return model


def good_model():
    """Every binary layer is LCE-friendly (sign input, sign weights, same-one padding).

    Structure and what it implies:
    * stem float Conv2D -> BN                               -> 1 CONV_2D, BN folded into it
    * b1: QuantConv2D(32, relu) -> BN, only consumer b2     -> RELU fused, BN folded, bit-packed
    * b2: QuantConv2D(64) -> BN -> MaxPool -> {b3, Add}     -> float output (two consumers)
    * b3: QuantConv2D(64, groups=2: 32 ch/group) -> BN      -> grouped binary conv, float output
    * Add(maxpool, b3)                                      -> the only ADD; a float op between
                                                               binary convs
    * b4: QuantConv2D(64, strides=2) -> BN -> GAP -> Dense  -> float output, MEAN, FULLY_CONNECTED
    So: 4 LceBconv2d, 1 bit-packed, 1 fused RELU, no MUL/SUB, exactly 1 ADD, no LceDequantize,
    3 LceQuantize (stem output, MaxPool output read by b3, Add output read by b4).
    """
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = binary_conv(32, "b1", activation="relu")(x)
    x = tf.keras.layers.BatchNormalization(name="b1_bn")(x)
    x = binary_conv(64, "b2")(x)
    x = tf.keras.layers.BatchNormalization(name="b2_bn")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool")(x)
    y = binary_conv(64, "b3", groups=2)(x)
    y = tf.keras.layers.BatchNormalization(name="b3_bn")(y)
    x = tf.keras.layers.Add(name="residual")([x, y])
    x = binary_conv(64, "b4", strides=2)(x)
    x = tf.keras.layers.BatchNormalization(name="b4_bn")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = tf.keras.layers.Dense(10, name="logits")(x)
    return randomize_batch_norms(tf.keras.Model(inputs, outputs, name="good"))


class ScaledSign(lq.quantizers.SteSign):
    """±1.5 activations (a PokeBNN-style scale) — 1 bit, but not a plain sign."""

    def call(self, inputs):
        return 1.5 * super().call(inputs)


# layer name -> the reason code the structure implies (None: becomes an LceBconv2d)
BAD_MODEL_EXPECTED = {
    "float_input": "input_not_binarized",
    "grouped16": "grouped_channels",
    "heaviside": "input_not_sign",
    "scaled": "scaled_activations",
    "noop_kernel": "weights_not_binary",
    "same_zero": None,
    "depthwise": "not_accelerated",
    "dense": "not_accelerated",
}


def bad_model():
    """Binary layers LCE cannot accelerate (see ``BAD_MODEL_EXPECTED``); ``same_zero`` is the
    only one that fuses (SAME zero padding still fuses on arm, with float output)."""
    inputs = tf.keras.Input((16, 16, 32))
    x = binary_conv(32, "float_input", input_quantizer=None)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(32, "grouped16", groups=2)(x)  # 16 input channels per group
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(32, "heaviside", input_quantizer="ste_heaviside")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(32, "scaled", input_quantizer=ScaledSign())(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(
        32, "noop_kernel", kernel_quantizer=lq.quantizers.NoOp(precision=1), kernel_constraint=None
    )(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(32, "same_zero", pad_values=0.0)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantDepthwiseConv2D(
        3, input_quantizer="ste_sign", depthwise_quantizer="ste_sign",
        depthwise_constraint="weight_clip", padding="same", use_bias=False, name="depthwise",
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = lq.layers.QuantDense(
        10, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip", name="dense",
    )(x)
    return randomize_batch_norms(tf.keras.Model(inputs, outputs, name="bad"))


def fake_quant(x, low, high, name):
    return tf.keras.layers.Lambda(
        lambda t: tf.quantization.fake_quant_with_min_max_vars(t, low, high), name=name
    )(x)


def qat_model():
    """Fake-quant ops around a float stem conv, a binary conv, the residual add and the head:
    LCE (lce.md §1.7) turns stem, add, pooling and dense into int8 ops and lets the binary conv
    write int8. Input and output stay float (QUANTIZE first, DEQUANTIZE last)."""
    inputs = tf.keras.Input((32, 32, 3))
    x = fake_quant(inputs, -4.0, 4.0, "fq_in")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(x)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    shortcut = x = fake_quant(x, 0.0, 6.0, "fq_stem")
    x = binary_conv(32, "b1")(x)
    x = tf.keras.layers.BatchNormalization(name="b1_bn")(x)
    x = fake_quant(x, -4.0, 4.0, "fq_b1")
    x = tf.keras.layers.Add()([x, shortcut])
    x = fake_quant(x, -4.0, 4.0, "fq_add")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = fake_quant(x, -4.0, 4.0, "fq_pool")
    x = tf.keras.layers.Dense(10, name="logits")(x)
    outputs = fake_quant(x, -8.0, 8.0, "fq_out")
    return randomize_batch_norms(tf.keras.Model(inputs, outputs, name="qat"))


def float_model():
    """No Larq layer at all."""
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, name="conv")(inputs)
    outputs = tf.keras.layers.Dense(4, name="dense")(tf.keras.layers.Flatten()(x))
    return tf.keras.Model(inputs, outputs, name="float")


@functools.lru_cache(maxsize=None)
def converted(name: str, **kwargs):
    """``(model, result, error)`` for ``convert(<name>_model(), **kwargs)``, converted once per
    pytest run; ``error`` is the StrictConversionError of a strict failure (its result is
    ``result``), else None."""
    from larq_poke.converters import StrictConversionError, convert

    model = globals()[f"{name}_model"]()
    try:
        return model, convert(model, **kwargs), None
    except StrictConversionError as err:
        return model, err.result, err
