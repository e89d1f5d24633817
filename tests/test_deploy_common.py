"""Shared pieces of the deployable rewrites, checked against numpy and the LCE interpreter."""

import numpy as np
import pytest

import larq_compute_engine as lce
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

from larq_poke.converters.rewrites.common import channel_prelu
from larq_poke.converters.flatbuffer import read_flatbuffer


@pytest.mark.parametrize(
    "alpha",
    [[0.25, 0.0, -0.5, 1.0], [1.5, 3.0, 1.0, 2.0], [0.2, 1.5, -0.3, 7.0]],
    ids=["below-one", "above-one", "mixed-signs"],
)
def test_channel_prelu_is_one_prelu_op_with_the_prelu_function(alpha):
    alpha = np.asarray(alpha, np.float32)
    inputs = tf.keras.Input((5, 6, 4))
    model = tf.keras.Model(inputs, tf.keras.layers.Lambda(lambda t: channel_prelu(t, alpha))(inputs))
    flatbuffer = lce.convert_keras_model(model)
    assert read_flatbuffer(flatbuffer).op_counts() == {"PRELU": 1}

    x = np.random.default_rng(0).standard_normal((2, 5, 6, 4)).astype(np.float32)
    x[0, 0, 0] = 0.0
    expected = np.where(x >= 0, x, alpha * x)  # same float products: exact
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    interpreter = Interpreter(flatbuffer)
    np.testing.assert_array_equal(interpreter.predict(x[:1]), expected[:1])
