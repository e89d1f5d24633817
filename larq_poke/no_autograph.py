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
"""

__all__ = ["skip_autograph", "without_autograph"]


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
