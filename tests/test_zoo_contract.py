"""The keras.applications contract, once for every registered zoo model (``list_models()``).

Like timm's ``tests/test_models.py`` and larq-zoo's ``models_test.py``: whatever a family adds to
the registry must take ``input_shape``, ``input_tensor``, ``include_top``, ``num_classes`` and
``weights`` the keras.applications way and reject bad values with an error that names them. The
argument errors are raised before any layer is built, so they are checked for every model; the
builds use the smallest input each model accepts.
"""

import numpy as np
import pytest
import tensorflow as tf

from larq_poke.zoo import build, list_models
from larq_poke.zoo.registry import model_constructor

MODELS = list_models()
# The builds run for one width of each family (its smallest) and for BNext-18 (its own layout):
# a family's widths share one constructor and differ only in channel counts. The argument checks
# run for every model, and every model is built at 224x224 for its model card
# (tests/test_cards_plots.py), whose parameter counts and costs must match the committed card.
BUILT = {"pokebnn-0.5x", "bnext-t", "bnext-18", "bineal-1.0x"}


def test_registry_lists_every_family():
    assert {name.split("-")[0] for name in MODELS} == {"pokebnn", "bnext", "bineal"}
    assert MODELS == sorted(MODELS)
    assert BUILT <= set(MODELS) and {name.split("-")[0] for name in BUILT} == {"pokebnn", "bnext", "bineal"}
    with pytest.raises(KeyError, match="Known models"):
        model_constructor("resnet-50")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (64, 64)}, "height, width, channels"),
        ({"input_shape": (16, 16, 3)}, "too small"),
        ({"num_classes": 0}, "positive integer"),
        ({"weights": "/nonexistent/weights.h5"}, "does not exist"),
        ({"weights": "imagenet", "num_classes": 10}, "num_classes=1000"),
        ({"weights": 3}, "`weights` must be"),
    ],
)
def test_bad_arguments_are_named(name, kwargs, message):
    if name.startswith("bineal") and kwargs.get("weights") == "imagenet":
        message = "No ImageNet-trained BiNeal weights"  # none at all: that is the error it names
    with pytest.raises(ValueError, match=message):
        build(name, **kwargs)


def _small_size(name):
    return 64 if name.startswith("pokebnn") else 32


@pytest.mark.parametrize("name", sorted(BUILT))
def test_contract(name):
    size = _small_size(name)
    tensor = tf.keras.Input((size, size, 3))
    model = build(name, input_tensor=tensor, num_classes=7)
    assert model.name == name and model.inputs[0] is tensor
    assert model.output_shape == (None, 7)
    logits = model(np.zeros((2, size, size, 3), np.float32), training=False)
    assert logits.shape == (2, 7) and np.all(np.isfinite(logits.numpy()))

    features = build(name, include_top=False)  # no input_shape: any image size
    assert features.input_shape == (None, None, None, 3)
    assert features(np.zeros((1, size, size, 3), np.float32), training=False).shape[1:3] == (size // 32, size // 32)
    # No head: the feature extractor has fewer weights than the classifier model.
    assert len(features.weights) < len(model.weights)
