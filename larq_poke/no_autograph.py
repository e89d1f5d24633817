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
```
"""

__all__ = ["skip_autograph", "without_autograph"]


def skip_autograph(cls):
    """Class decorator: make a Keras layer (or Larq quantizer) skip AutoGraph conversion."""
    cls._should_use_autograph = lambda self: False
    return cls


def without_autograph(layer):
    """Make one layer instance (e.g. a Larq ``QuantConv2D`` sublayer) skip AutoGraph; returns it."""
    object.__setattr__(layer, "_should_use_autograph", lambda: False)
    return layer
