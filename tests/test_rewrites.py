"""The deployable-rewrite registry (no conversion here; tests/test_lce_convert.py checks that
convert applies registered rewrites)."""

import numpy as np
import pytest

import larq_poke  # noqa: F401

import tensorflow as tf

from larq_poke.converters import deployable as deployable_function
from larq_poke.converters.rewrites import (
    apply_rewrites,
    applicable_rewrites,
    deployable,
    register_rewrite,
    registered_rewrites,
    unregister_rewrite,
)


class Tagged(tf.keras.layers.Layer):
    def call(self, x):
        return x


class Wrapper(tf.keras.layers.Layer):
    """A layer that owns a Tagged sublayer (as model-family blocks do)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = Tagged()

    def call(self, x):
        return self.inner(x)


def model_with(layer):
    inputs = tf.keras.Input((4,))
    return tf.keras.Model(inputs, layer(inputs))


@pytest.fixture(autouse=True)
def clean_registry():
    before = [r.name for r in registered_rewrites()]
    yield
    for rewrite in registered_rewrites():
        if rewrite.name not in before:
            unregister_rewrite(rewrite.name)


def test_identity_when_nothing_matches():
    model = model_with(tf.keras.layers.Dense(2))
    register_rewrite(Tagged, lambda m: pytest.fail("must not run"), name="tagged")
    assert deployable(model) is model
    assert apply_rewrites(model) == (model, [])


def test_package_exports_the_function():
    model = model_with(tf.keras.layers.Dense(2))
    assert deployable_function(model) is model


def test_layer_type_rewrite_runs_once_and_is_reported():
    model = model_with(Tagged())
    replacement = model_with(tf.keras.layers.Dense(2))
    calls = []

    def rewrite(m):
        calls.append(m)
        return replacement

    register_rewrite((Tagged,), rewrite, name="tagged")
    assert applicable_rewrites(model) == ["tagged"]
    assert apply_rewrites(model) == (replacement, ["tagged"])
    assert calls == [model]


def test_nested_layers_are_found():
    model = model_with(Wrapper())
    register_rewrite(Tagged, lambda m: m, name="tagged")
    assert applicable_rewrites(model) == ["tagged"]


def test_predicate_and_decorator_forms_chain_in_order():
    model = model_with(Tagged())
    order = []

    @register_rewrite(lambda m: True, name="first")
    def first(m):
        order.append("first")
        return m

    @register_rewrite(Tagged)
    def second(m):
        order.append("second")
        return m

    assert first.__name__ == "first"  # the decorator returns the function
    assert apply_rewrites(model)[1] == ["first", "second"]
    assert order == ["first", "second"]


def test_registering_a_name_again_replaces_it():
    register_rewrite(Tagged, lambda m: "old", name="tagged")
    register_rewrite(Tagged, lambda m: "new", name="tagged")
    names = [r.name for r in registered_rewrites()]
    assert names.count("tagged") == 1
    assert deployable(model_with(Tagged())) == "new"


def test_bad_registrations_and_results():
    with pytest.raises(TypeError):
        register_rewrite("Tagged", lambda m: m)
    with pytest.raises(TypeError):
        register_rewrite([], lambda m: m)
    with pytest.raises(KeyError):
        unregister_rewrite("never-registered")
    register_rewrite(Tagged, lambda m: None, name="broken")
    with pytest.raises(TypeError, match="returned None"):
        deployable(model_with(Tagged()))


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (2, 5)])
def test_zero_padded_binary_convs_on_maps_smaller_than_the_kernel_convert_exactly(shape, tmp_path):
    """LCE 0.16 miscompiles SAME zero-padded binary convs whose input has a side below the kernel
    size (the last stage of a network at 32x32); the small_maps rewrite makes the file match
    Keras (checked in the LCE interpreter, independently of the converter's own parity check)."""
    import larq as lq

    from larq_poke.converters import convert
    from larq_poke.layers import BNextBinaryConv2D
    from larq_poke.train.evaluate import TFLiteClassifier

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((*shape, 16))
    a = lq.layers.QuantConv2D(8, 3, padding="same", pad_values=0.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", bias_initializer="ones", name="larq")(inputs)
    b = BNextBinaryConv2D(8, 3, name="bnext")(inputs)
    c = lq.layers.QuantConv2D(8, 3, strides=2, padding="same", pad_values=0.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", name="strided")(inputs)
    flat = [tf.keras.layers.Flatten()(t) for t in (a, b, c)]
    model = tf.keras.Model(inputs, tf.keras.layers.Concatenate()(flat))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(rng.normal(size=layer.kernel.shape))
    x = rng.normal(size=(6, *shape, 16)).astype(np.float32)
    result = convert(model, sample_inputs=x)
    assert "small_maps" in result.report.rewrites
    assert result.report.op_counts["LceBconv2d"] == 3
    (tmp_path / "m.tflite").write_bytes(result.flatbuffer)
    np.testing.assert_allclose(TFLiteClassifier(str(tmp_path / "m.tflite"))(x), model.predict(x, verbose=0), atol=1e-4)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_the_shared_batch_norm_fold_refuses_a_variance_without_a_finite_scale(bad):
    # bn_affine serves the PokeBNN, BNext and BiNeal rewrites alike.
    from larq_poke.converters.rewrites.common import bn_affine

    bn = tf.keras.layers.BatchNormalization(epsilon=1e-3, name="bn7")
    bn.build((None, 3))
    rng = np.random.default_rng(0)
    for weight in (bn.gamma, bn.beta, bn.moving_mean):
        weight.assign(rng.normal(size=3).astype(np.float32))
    bn.moving_variance.assign(np.array([0.5, bad, 2.0], np.float32))
    with pytest.raises(ValueError, match=r"bn7: moving variance \+ epsilon is not positive in channels \[1\]"):
        bn_affine(bn)
    # a variance of exactly 0 is fine: Keras' own inference output, from the folded scale and shift
    bn.moving_variance.assign(np.array([0.5, 0.0, 2.0], np.float32))
    x = rng.normal(size=(5, 3)).astype(np.float32)
    scale, shift = bn_affine(bn)
    np.testing.assert_allclose(x * scale + shift, bn(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
