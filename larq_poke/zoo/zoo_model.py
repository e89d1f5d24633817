"""What every zoo model shares: the keras.applications-style input handling and a Keras model
whose ``summary()`` ends with the cost table.

```python
inputs = model_input(input_shape=None, input_tensor=None, include_top=True,
                     weights=None, num_classes=1000)
model = ZooModel(inputs, outputs, name="pokebnn-1.0x")
model.summary()   # Keras summary, then larq_poke.cost table
```
"""

from __future__ import annotations

import numbers
import os

import tensorflow as tf
from tf_keras.src.engine.functional import Functional

from larq_poke.serialization import register_serializable
from larq_poke.zoo.loading import existing_weights_file, records_settings, save_keras_weights

__all__ = ["ZooModel", "model_input", "check_num_classes", "check_weights_argument", "width_label"]


@register_serializable
class ZooModel(tf.keras.Model):
    """A functional Keras model whose :meth:`summary` also prints the larq-poke cost table.

    It is an ordinary functional model otherwise: it saves and loads like one (the class is a
    registered Keras serializable, so ``tf.keras.models.load_model`` restores it when
    ``larq_poke`` has been imported).
    """

    def save(self, filepath, *args, **kwargs):
        """``tf.keras.Model.save``, with ``save_traces=False`` by default for SavedModel.

        Tracing every layer of a binary network for a SavedModel takes minutes (PokeBNN has
        about a thousand layers and quantizers). larq-poke's layers are registered Keras
        serializables, so ``tf.keras.models.load_model`` rebuilds them from their config after
        ``import larq_poke``; pass ``save_traces=True`` to also store the traced functions.
        """
        native = str(filepath).endswith(".keras") or kwargs.get("save_format") == "keras"
        if not native:  # the .keras format stores no traces and refuses the argument
            kwargs.setdefault("save_traces", False)
        return super().save(filepath, *args, **kwargs)

    def _lookup_dependency(self, name, cached_dependencies=None):
        """Keras' checkpoint-dependency lookup, answered without rebuilding the table per name.

        A functional model names its layers ``layer-I`` (every layer) and ``layer_with_weights-K``
        (the K-th layer that holds weights) in checkpoints and SavedModels. Keras answers each
        lookup by rebuilding that whole table, gathering every layer's weights, and a SavedModel
        load looks up every layer: quadratic in the layer count (a quarter to a third of loading
        a PokeBNN SavedModel, ``benchmarks/model_loading.py``). Same answers here: ``layer-I`` is
        ``self.layers[I]``, and ``layer_with_weights-K`` stops at the K-th layer with weights.
        """
        if cached_dependencies:
            return cached_dependencies.get(name)
        prefix, _, index = name.rpartition("-")
        if (prefix in ("layer", "layer_with_weights") and index.isascii() and index.isdigit() and len(index) < 19
                and str(int(index)) == index):
            position = int(index)
            if prefix == "layer":
                if position < len(self.layers):
                    return self.layers[position]
            else:
                for layer in self.layers:
                    try:
                        if not layer.weights:
                            continue
                    except ValueError:  # not built yet: Keras counts it as a layer without weights
                        continue
                    if position == 0:
                        return layer
                    position -= 1
        # Not a layer's name: what Keras' functional model does after its table.
        return super(Functional, self)._lookup_dependency(name)

    def save_weights(self, filepath, overwrite=True, save_format=None, options=None):
        """``tf.keras.Model.save_weights``; to a ``.h5`` file it also records the layers' settings.

        ```python
        model.save_weights("bineal.h5")                       # weights + settings, atomically
        BiNeal(1.0, weights="bineal.h5")                      # refused if built with other settings
        ```

        An ``.h5`` name (not ``.weights.h5``) is written by
        :func:`~larq_poke.zoo.loading.save_keras_weights`: the same Keras h5 weights, plus the
        model's configuration, through a temporary file (an interrupted save leaves the old
        file). ``tf.keras.callbacks.ModelCheckpoint(..., save_weights_only=True)`` writes that
        way too. Other names and formats are Keras' own, and so is ``overwrite=False`` with an
        existing file (Keras asks first, then writes plain weights).
        """
        if records_settings(filepath, save_format) and (overwrite or not os.path.exists(os.fspath(filepath))):
            save_keras_weights(self, filepath)
            return
        return super().save_weights(filepath, overwrite=overwrite, save_format=save_format, options=options)

    def summary(self, *args, include_costs: bool = True, float_bits: int = 16, **kwargs):
        super().summary(*args, **kwargs)
        if include_costs:
            from larq_poke.cost import profile

            print_fn = kwargs.get("print_fn") or print
            print_fn(profile(self, float_bits=float_bits).to_text())


def check_num_classes(num_classes, minimum: int = 1, counted: str = "") -> None:
    """ValueError unless ``num_classes`` is an integer (numpy's too, not a bool) >= ``minimum``;
    ``counted`` says what is counted, in the message."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < minimum:
        need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`num_classes` must be {need}{f' ({counted})' if counted else ''}, got {num_classes!r}.")


def check_weights_argument(weights, include_top: bool, num_classes: int) -> None:
    """The keras.applications rules for ``weights``; ValueError naming what is wrong."""
    if not (weights is None or weights == "imagenet" or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            f"`weights` must be None, 'imagenet' or a path to a weights file, got {weights!r}."
        )
    if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
        existing_weights_file(weights, "`weights` file")
    if weights == "imagenet" and include_top and num_classes != 1000:
        raise ValueError(
            "weights='imagenet' with include_top=True needs num_classes=1000 "
            f"(got num_classes={num_classes}); use include_top=False for another head."
        )


def model_input(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    default_size: int = 224,
    min_size: int = 32,
):
    """The model's input tensor, from ``input_shape`` / ``input_tensor`` as in keras.applications.

    ``input_shape`` is (height, width, channels); ``None`` means ``(default_size, default_size, 3)``
    with ``include_top=True`` and ``(None, None, 3)`` otherwise. Returns ``(inputs, img_input)``:
    the tensor to pass to the Model and the one to build on.
    """
    check_weights_argument(weights, include_top, num_classes)
    check_num_classes(num_classes)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(tf.keras.backend.int_shape(input_tensor)[1:])
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels), got {input_shape}.")
    height, width, _ = input_shape
    for size in (height, width):
        if size is not None and size < min_size:
            raise ValueError(
                f"Input size {height}x{width} is too small: this model needs at least "
                f"{min_size}x{min_size} (its strides reduce the image {min_size}-fold)."
            )
    if input_tensor is None:
        img_input = tf.keras.layers.Input(shape=input_shape)
        return img_input, img_input
    if not tf.keras.backend.is_keras_tensor(input_tensor):
        img_input = tf.keras.layers.Input(tensor=input_tensor, shape=input_shape)
        return img_input, img_input
    inputs = tf.keras.utils.get_source_inputs(input_tensor)
    return inputs, input_tensor


def width_variant(family: str, constructor, width: float):
    """The zoo constructor of ``constructor`` at a fixed ``width``: keyword arguments as the
    family's (its signature, less ``width_multiplier``, so that the registry can refuse a width).

    ```python
    MODELS = {f"bineal-{width_label(w)}x": width_variant("BiNeal", BiNeal, w) for w in (1.0, 1.5)}
    ```
    """
    import inspect

    def build(**kwargs):
        return constructor(width, **kwargs)

    signature = inspect.signature(constructor)
    build.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "width_multiplier"])
    build.__doc__ = f"{family}-{width_label(width)}x; keyword arguments as :func:`{constructor.__name__}`."
    return build


def width_label(width_multiplier: float) -> str:
    """``0.5 -> "0.5"``, ``1 -> "1.0"``: the width as written in zoo names (``pokebnn-1.0x``)."""
    label = f"{float(width_multiplier):g}"
    return label if "." in label or "e" in label else label + ".0"
