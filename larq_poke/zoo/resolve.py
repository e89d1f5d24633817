"""One way to turn a model name or file into a Keras model, for the command line and the trainer.

``source`` is a zoo name (``list_models()``), a larq-zoo reference (``quicknet``,
``quicknet-small``, ``quicknet-large``, random weights), a float reference of
:mod:`larq_poke.zoo.references` (``resnet18``, random weights), a ``tf.keras.applications`` name
(``ResNet50``, random weights, logits), a saved Keras model (``.h5`` / ``.keras`` file or
SavedModel folder), or a weights file (any format :func:`larq_poke.zoo.load_weights` reads)
together with ``arch``.

```python
model = load_model("pokebnn-0.5x", input_size=160)
model = load_model("weights.pth.tar", arch="bnext-t")
teacher = load_model("ResNet50", input_size=32, num_classes=10)
reference = load_model("resnet18", input_size=64, num_classes=10)
```
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Optional

__all__ = ["load_model", "LARQ_ZOO_MODELS", "REFERENCE_MODELS"]

# larq-zoo's reference models, for comparisons (random weights unless --weights is given:
# larq-zoo's default would download the ImageNet weights).
LARQ_ZOO_MODELS = {
    "quicknet": "QuickNet",
    "quicknet-small": "QuickNetSmall",
    "quicknet-large": "QuickNetLarge",
}

# larq-poke's float references (larq_poke.zoo.references; no weights are shipped), for
# comparisons: name -> constructor in that module.
REFERENCE_MODELS = {
    "resnet18": "ResNet18",
}


def _build(name: str, kwargs: dict):
    import tensorflow as tf

    from larq_poke.zoo.registry import build

    key = name.lower().replace("_", "-")
    if key in LARQ_ZOO_MODELS:
        import larq_zoo

        kwargs.setdefault("weights", None)
        return getattr(larq_zoo.sota, LARQ_ZOO_MODELS[key])(**kwargs)
    if key in REFERENCE_MODELS:
        from larq_poke.zoo import references

        return getattr(references, REFERENCE_MODELS[key])(**kwargs)
    if hasattr(tf.keras.applications, name):  # e.g. ResNet50 as a float teacher (logits)
        if "num_classes" in kwargs:
            kwargs["classes"] = kwargs.pop("num_classes")
        kwargs.setdefault("weights", None)
        return getattr(tf.keras.applications, name)(classifier_activation=None, **kwargs)
    try:
        return build(name, **kwargs)
    except KeyError as err:
        known = ", ".join(sorted(LARQ_ZOO_MODELS))
        references = ", ".join(sorted(REFERENCE_MODELS))
        raise ValueError(f"{name!r} is neither a file nor a zoo model: {err.args[0]} (nor a "
                         f"keras.applications name, a larq-zoo reference: {known}, or a float "
                         f"reference: {references})") from None


def _is_weights_only(path: str) -> bool:
    """A weights file (no model config), as opposed to a saved model."""
    if os.path.isdir(path):
        return False  # a SavedModel folder
    if path.endswith(".weights.h5"):
        return True
    if path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            return "model_config" not in f.attrs
    return not path.endswith(".keras")


def load_model(
    source: str,
    *,
    arch: Optional[str] = None,
    weights: Optional[str] = None,
    input_size: Optional[int] = None,
    num_classes: Optional[int] = None,
):
    """The Keras model ``source`` names (see the module docstring).

    ``weights`` ("none" for random), ``input_size`` (square inputs) and ``num_classes`` apply to
    models built by name; a saved model is loaded as it is.
    """
    import larq  # noqa: F401  (registers Larq's layers and quantizers as Keras custom objects)
    import tensorflow as tf

    kwargs = {}
    if weights is not None:
        kwargs["weights"] = None if weights.lower() == "none" else weights
    if input_size:
        kwargs["input_shape"] = (input_size, input_size, 3)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if os.path.exists(source):
        if arch or _is_weights_only(source):
            if not arch:
                raise ValueError(f"{source} holds weights only; name the architecture with --arch")
            kwargs["weights"] = source
            return _build(arch, kwargs)
        import larq_poke.layers  # noqa: F401  (registers larq-poke's layers as custom objects)
        import larq_poke.zoo  # noqa: F401  (and the zoo's model class)

        if source.endswith(".keras") and zipfile.is_zipfile(source):  # what Keras reads as its own format
            return _load_keras_file(source)
        return tf.keras.models.load_model(source, compile=False)
    if arch:
        raise FileNotFoundError(f"weights file {source!r} does not exist")
    if source.endswith((".h5", ".keras", ".tflite", ".hdf5")) or os.sep in source:
        raise FileNotFoundError(f"model file {source!r} does not exist")
    return _build(source, kwargs)


class _MemberInMemory:
    """What Keras' weights store asks of a zip archive (``open(name)``), served from memory."""

    def __init__(self, archive):
        self.archive = archive

    def open(self, name, mode="r"):
        return io.BytesIO(self.archive.read(name))


def _load_keras_file(path: str):
    """``tf.keras.models.load_model(path, compile=False)`` for a ``.keras`` file, with the
    weights read into memory first.

    Keras 2 opens the weights' HDF5 file inside the zip archive and lets h5py seek in it; on
    Python 3.11 every backward seek in an archive member reads the member again from its start
    (``benchmarks/model_loading.py``: a PokeBNN-1.0x file loads in 69 s that way, 16 s here). This
    reads the member once and hands the rest to Keras' own loader (its configuration
    deserializer and weights store). An archive with anything else in it (assets, NumPy
    weights) is Keras' to load as it is.
    """
    import tensorflow as tf
    from tf_keras.src.saving import saving_lib
    from tf_keras.src.saving.serialization_lib import ObjectSharingScope, deserialize_keras_object

    with zipfile.ZipFile(path) as archive:
        if sorted(archive.namelist()) != ["config.json", "metadata.json", "model.weights.h5"]:
            return tf.keras.models.load_model(path, compile=False)
        config = json.loads(archive.read("config.json"))
        config["compile_config"] = None  # compile=False
        enabled = getattr(saving_lib._SAVING_V3_ENABLED, "value", False)
        saving_lib._SAVING_V3_ENABLED.value = True
        try:
            with ObjectSharingScope():
                model = deserialize_keras_object(config, None, safe_mode=True)
            store = saving_lib.H5IOStore("model.weights.h5", archive=_MemberInMemory(archive), mode="r")
            try:
                saving_lib._load_state(model, weights_store=store, assets_store=None, inner_path="",
                                       visited_trackables=set())
            finally:
                store.close()
        finally:
            saving_lib._SAVING_V3_ENABLED.value = enabled
    return model
