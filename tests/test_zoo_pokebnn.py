"""The PokeBNN zoo constructor behaves like keras.applications and rejects bad input clearly."""

import numpy as np
import pytest

from larq_poke.zoo import PokeBNN, build, list_models
from larq_poke.layers.pokebnn import pokeconv_names
from larq_poke.zoo.pokebnn import stage_plan


def test_structure_counts_match_the_paper():
    model = PokeBNN(0.5, input_shape=(64, 64, 3))
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    kinds = [type(layer).__name__ for layer in layers]
    assert len(pokeconv_names(model)) == 48  # PokeConv units
    assert kinds.count("DPReLU") == 50
    assert kinds.count("BatchNormalization") == 98
    assert sum(layer.name.endswith(".se.fc1") for layer in layers) == 48  # SE units
    assert model.output_shape == (None, 1000)


def test_stage_plan_is_resnet50_pattern():
    plan = stage_plan(1.0)
    assert [f for _, f, _ in plan] == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    assert [i for i, _, s in plan if s == 2] == [3, 7, 13]


def test_include_top_false_returns_feature_map_of_any_size():
    features = PokeBNN(0.5, include_top=False)  # no input_shape: any image size
    assert features.output_shape == (None, None, None, 1024)
    assert features(np.zeros((1, 96, 96, 3), np.float32)).shape == (1, 3, 3, 1024)
    # An odd size: 100 -> stem 25 -> 25 -> 13 -> 7 -> 4, the official SAME padding (stride 2
    # rounds up), where VALID-style rounding would give 3.
    assert features(np.zeros((1, 100, 100, 3), np.float32)).shape == (1, 4, 4, 1024)


def test_imagenet_weights_are_not_published():
    with pytest.raises(ValueError, match="No ImageNet-trained PokeBNN weights are published"):
        PokeBNN(1.0, weights="imagenet")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width_multiplier": 0.1}, "at least 8 input channels"),
        ({"width_multiplier": 0.9}, "not a multiple"),
        ({"width_multiplier": -1.0}, "positive"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs = {"width_multiplier": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        PokeBNN(**kwargs)


def test_registry_names():
    names = list_models()
    for width in ("0.5", "0.75", "1.0", "1.5", "2.0"):
        assert f"pokebnn-{width}x" in names
    with pytest.raises(KeyError, match="Known models"):
        build("pokebnn-3x")
