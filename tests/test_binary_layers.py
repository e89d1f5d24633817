"""Which layers are binary and what LCE is expected to make of them (no conversion here)."""

import larq_poke  # noqa: F401

import larq as lq
import pytest
import tensorflow as tf

from larq_poke.converters.binary_layers import find_binary_layers


class XnorSign(lq.quantizers.Quantizer):
    """XNOR-Net style activations: mean(|x|) * sign(x), one bit plus a data-dependent scale."""

    precision = 1

    def call(self, inputs):
        scale = tf.reduce_mean(tf.abs(inputs), axis=[1, 2, 3], keepdims=True)
        return scale * lq.quantizers.ste_sign(inputs)


class Block(tf.keras.layers.Layer):
    """A model-family block owning its binary conv (as PokeBNN / BNext blocks do)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = lq.layers.QuantConv2D(
            32, 3, padding="same", pad_values=1.0, use_bias=False,
            input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="conv",
        )

    def call(self, x):
        return self.conv(x)


def one_layer(layer, channels=32):
    inputs = tf.keras.Input((8, 8, channels))
    return tf.keras.Model(inputs, layer(inputs))


def conv(**overrides):
    kwargs = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", padding="same",
                  pad_values=1.0, use_bias=False)
    kwargs.update(overrides)
    return lq.layers.QuantConv2D(32, 3, **kwargs)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"input_quantizer": "approx_sign"},
        {"input_quantizer": "swish_sign"},
        {"input_quantizer": lq.quantizers.SteSign(clip_value=1.25)},
        {"kernel_quantizer": "magnitude_aware_sign"},
        {"pad_values": 0.0},
        {"padding": "valid"},
        {"groups": 1, "dilation_rate": 2},
    ],
    ids=["ste_sign", "approx_sign", "swish_sign", "clip", "magnitude_aware", "same_zero",
         "valid", "dilated"],
)
def test_lce_friendly_layers_are_expected_to_fuse(overrides):
    (layer,) = find_binary_layers(one_layer(conv(**overrides)))
    assert layer.expected_to_fuse, layer.reason
    assert layer.signature["filters"] == 32 and layer.signature["channels_in"] == 32


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"input_quantizer": None}, "input_not_binarized"),
        ({"input_quantizer": "ste_heaviside"}, "input_not_sign"),
        ({"input_quantizer": XnorSign()}, "data_dependent_scale"),
        ({"kernel_quantizer": None}, "float_weights"),
        ({"kernel_quantizer": "ste_tern"}, "weights_not_binary"),
        ({"kernel_quantizer": lq.quantizers.NoOp(precision=1)}, "weights_not_binary"),
        ({"groups": 4}, "grouped_channels"),  # 8 channels per group
    ],
    ids=["float_input", "heaviside", "xnor", "float_kernel", "ternary", "noop_tag", "groups"],
)
def test_reasons(overrides, code):
    (layer,) = find_binary_layers(one_layer(conv(**overrides)))
    assert layer.reason_code == code, layer.reason


def test_groups_with_32_channels_per_group_fuse():
    (layer,) = find_binary_layers(one_layer(conv(groups=2), channels=64))
    assert layer.expected_to_fuse and layer.signature["groups"] == 2


def test_same_zero_is_float_on_xcore_only():
    model = one_layer(conv(pad_values=0.0))
    assert find_binary_layers(model, target="arm")[0].expected_to_fuse
    assert find_binary_layers(model, target="xcore")[0].reason_code == "same_zero_xcore"


def test_standalone_sign_layer_counts_as_binary_input():
    inputs = tf.keras.Input((8, 8, 32))
    x = lq.quantizers.SteSign()(inputs)
    model = tf.keras.Model(inputs, conv(input_quantizer=None)(x))
    (layer,) = find_binary_layers(model)
    assert layer.expected_to_fuse and "standalone" in layer.input_quantizer


def test_layer_types_without_binary_kernel():
    binary = dict(input_quantizer="ste_sign")
    layers = [
        lq.layers.QuantDepthwiseConv2D(3, depthwise_quantizer="ste_sign", **binary),
        lq.layers.QuantConv2DTranspose(8, 3, kernel_quantizer="ste_sign", **binary),
    ]
    for layer in layers:
        (found,) = find_binary_layers(one_layer(layer))
        assert found.reason_code == "not_accelerated"
    inputs = tf.keras.Input((32,))
    dense = lq.layers.QuantDense(8, kernel_quantizer="ste_sign", **binary)
    (found,) = find_binary_layers(tf.keras.Model(inputs, dense(inputs)))
    assert found.kind == "dense" and found.reason_code == "not_accelerated"


def test_float_layers_are_not_binary_layers():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3)(inputs)
    x = lq.layers.QuantConv2D(8, 3)(x)  # a Larq layer without quantizers
    x = lq.layers.QuantConv2D(8, 3, input_quantizer="dorefa_quantizer")(x)  # 2 bits
    assert find_binary_layers(tf.keras.Model(inputs, x)) == []


def test_nested_layers_get_qualified_names():
    inputs = tf.keras.Input((8, 8, 32))
    x = Block(name="block_1")(inputs)
    x = Block(name="block_2")(x)
    found = find_binary_layers(tf.keras.Model(inputs, x))
    assert [layer.name for layer in found] == ["block_1/conv", "block_2/conv"]
    assert all(layer.expected_to_fuse for layer in found)
    assert found[0].signature["channels_in"] == 32  # from the kernel: no functional node inside
