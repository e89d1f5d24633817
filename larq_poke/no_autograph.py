"""Opt larq-poke layers and quantizers out of AutoGraph.

Keras runs the ``call`` of every subclassed layer through AutoGraph when it builds a functional
model, and a composite layer's conversion recursively converts the Keras machinery of each
sublayer call: building PokeBNN-0.5x took about a minute that way instead of a few seconds.
larq-poke layers have no data-dependent Python control flow in ``call``, so they opt out; the
sublayers they call still get Keras' normal treatment.

```python
@skip_autograph
class MyLayer(tf.keras.layers.Layer):
    ...
without_autograph(lq.layers.QuantConv2D(...))    # an instance of a class we do not own
```

Subclasses of :class:`larq_poke.layers.base.GraphLayer` inherit it.

Keras 2's own code (``Layer.__call__``, optimizers, losses) is left alone as well:
:func:`keep_autograph_out_of_tf_keras`, applied when larq-poke's quantizers or trainers load.
"""

__all__ = ["skip_autograph", "without_autograph", "keep_autograph_out_of_tf_keras"]


_NEVER = None


def _never():
    """``lambda *_: False``, itself marked not to be converted: AutoGraph otherwise tries to
    convert the lambda when a training step calls it, and warns that it cannot."""
    global _NEVER
    if _NEVER is None:
        import tensorflow as tf  # imported late: larq_poke sets up Keras 2 first

        @tf.autograph.experimental.do_not_convert
        def never(*_):
            return False

        _NEVER = never
    return _NEVER


def skip_autograph(cls):
    """Class decorator: make a Keras layer (or Larq quantizer) and its subclasses skip AutoGraph
    conversion, both when Keras builds a functional model and when a ``tf.function`` (a training
    step, the converter's trace) calls the layer (Keras asks ``_should_use_autograph`` in both)."""
    cls._should_use_autograph = _never()
    return cls


def without_autograph(layer):
    """Make one layer instance (e.g. a Larq ``QuantConv2D`` sublayer) skip AutoGraph; returns it."""
    object.__setattr__(layer, "_should_use_autograph", _never())
    return layer


def keep_autograph_out_of_tf_keras() -> None:
    """Have AutoGraph leave Keras 2's own code alone, as it did before TensorFlow 2.16.

    AutoGraph's conversion rules exclude the ``keras`` package, which was Keras 2 until
    TensorFlow 2.15. Keras 2 is now ``tf_keras``, which the rules do not name, so a
    ``tf.function`` that calls a Keras 2 model converted Keras' ``Layer.__call__``, optimizer
    updates and losses, source and all, once per layer and variable: the first training step of
    PokeBNN-0.5x (32x32, batch 64, traced once) took 116.7 s without the rule, 107.9 s with it
    (``benchmarks/trace_time.py``, one round). Adds the missing ``tf_keras`` rule (once). A
    function that a ``tf.function`` wraps directly is still converted (its own loops over
    ``tf.range`` included), as are the ``call`` methods of layers defined outside Keras.

    ```python
    from larq_poke.no_autograph import keep_autograph_out_of_tf_keras
    keep_autograph_out_of_tf_keras()     # import larq_poke.quantizers does it for you
    ```
    """
    from tensorflow.python.autograph.core import config

    rules = config.CONVERSION_RULES
    if not any(isinstance(rule, config.DoNotConvert) and rule.matches("tf_keras") for rule in rules):
        config.CONVERSION_RULES = tuple(rules) + (config.DoNotConvert("tf_keras"),)
