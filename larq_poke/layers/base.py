"""Base class of larq-poke layers."""

import tensorflow as tf

from larq_poke.no_autograph import skip_autograph

__all__ = ["GraphLayer"]


@skip_autograph
class GraphLayer(tf.keras.layers.Layer):
    """A Keras layer whose ``call`` is plain TensorFlow code, so it and every subclass skip
    AutoGraph (see :mod:`larq_poke.no_autograph`)."""

