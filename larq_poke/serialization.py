"""Registration of larq-poke classes as Keras custom objects.

``tf.keras.models.load_model`` finds registered classes once ``larq_poke`` is imported. Classes
are registered under ``larq_poke>Name`` (the Keras serializable convention) and under the bare
``Name``, the spelling the legacy HDF5 format and Larq's quantizer lookup use.

```python
@register_serializable
class MyLayer(tf.keras.layers.Layer):
    ...
```
"""

import tensorflow as tf

__all__ = ["register_serializable"]


def register_serializable(cls):
    """Class decorator: register ``cls`` as ``larq_poke>Name`` and ``Name``."""
    cls = tf.keras.utils.register_keras_serializable(package="larq_poke")(cls)
    tf.keras.utils.get_custom_objects().setdefault(cls.__name__, cls)
    return cls
