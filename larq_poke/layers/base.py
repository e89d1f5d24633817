"""Base class of larq-poke layers."""

import logging
from contextlib import contextmanager

import tensorflow as tf

from larq_poke.no_autograph import skip_autograph

__all__ = ["GraphLayer", "quiet_larq_warnings"]


@skip_autograph
class GraphLayer(tf.keras.layers.Layer):
    """A Keras layer whose ``call`` is plain TensorFlow code, so it skips AutoGraph
    (see :mod:`larq_poke.no_autograph`)."""


@contextmanager
def quiet_larq_warnings():
    """Silence larq's "binary quantizer without kernel_constraint" warning while building
    sublayers: PokeBNN trains unconstrained latent weights as its official code does, and BNext
    sets its constraint after larq has already checked."""
    logger = logging.getLogger("larq")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
