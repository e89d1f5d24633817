"""The inference graph of a Keras model as a SavedModel, for converters.

```python
from larq_poke.converters.export import inference_saved_model
inference_saved_model(model, "exported")          # serving_default: model(x, training=False)
flatbuffer = larq_compute_engine.convert_saved_model("exported")
```

Converters read a SavedModel. Keras' own SavedModel export (what ``lce.convert_keras_model`` and
``tf.lite.TFLiteConverter.from_keras_model`` use) also traces every layer's call on its own, so
that the layers can be reloaded as Keras objects, and every custom gradient; a converter needs
none of it. Exporting only the inference function makes LCE's step 7 to 9 times faster
(``benchmarks/conversion_export.py``: PokeBNN-0.5x at 64x64 45.0 s to 5.0 s, BiNeal-1.0x at
32x32 17.9 s to 2.5 s) with the same flatbuffer size and operators, and the same outputs
(``tests/test_lce_convert.py``).
"""

from __future__ import annotations

__all__ = ["inference_saved_model"]


def inference_saved_model(model, directory) -> None:
    """Write ``model``'s inference function, ``model(x, training=False)`` with a free batch
    dimension, as the ``serving_default`` signature of a SavedModel in ``directory``, with the
    variables it reads and nothing else (outputs keyed by ``model.output_names``)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
    names = list(model.output_names)

    @tf.function(input_signature=specs, autograph=False)  # Keras layers need no AutoGraph to trace
    def serve(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs))

    # The variables are tracked, so that those the function captures are saved. Larq's quantized
    # variables (and Keras' autocast ones) are unwrapped: tracked whole, they bring their
    # quantizer layers and with them Keras' per-layer export. The function is only the
    # signature, not an attribute: as an attribute it would be traced again for saving.
    module = tf.Module()
    module.weights = [_plain_variable(w) for w in model.weights]
    # No gradient functions: a converter never differentiates (Larq's straight-through
    # estimators would otherwise be traced once per binarizer).
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, str(directory), signatures=serve.get_concrete_function(), options=options)


def _plain_variable(variable):
    """The ``tf.Variable`` under Larq's ``QuantizedVariable`` / Keras' ``AutoCastVariable``."""
    for attribute in ("latent_variable", "_variable"):
        inner = getattr(variable, attribute, None)
        if inner is not None and inner is not variable:
            return _plain_variable(inner)
    return variable
