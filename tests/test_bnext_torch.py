"""The BNext checkpoint importer: sources, key bookkeeping and the errors for bad input."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import golden_path
from test_bnext_golden import SMALL_STAGES

from larq_poke.zoo.bnext import checkpoint_stages, load_bnext_torch
from larq_poke.zoo.bnext import official_state as read_bnext_state_dict
from larq_poke.zoo.bnext import STAGES, BNext

_NOT_WEIGHTS = ("input", "output", "output_fp64", "feature_out/", "feature_mean/")


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("bnext_small.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def state(golden):
    return {k: v for k, v in golden.items() if not k.startswith(_NOT_WEIGHTS)}


@pytest.fixture(scope="module")
def model():
    return BNext(SMALL_STAGES, input_shape=(64, 64, 3))


def logits(model, golden):
    return model(golden["input"].transpose(0, 2, 3, 1), training=False).numpy()


def test_module_prefix_and_training_dict(model, state, golden):
    prefixed = {f"module.{k}": v for k, v in state.items()}
    load_bnext_torch(model, {"epoch": 3, "state_dict": prefixed, "best_top1_acc": 1.0})
    assert np.abs(logits(model, golden) - golden["output"]).max() <= 1e-4


def test_npz_file(model, state, golden, tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, **state)
    load_bnext_torch(model, path)
    assert np.abs(logits(model, golden) - golden["output"]).max() <= 1e-4


def test_checkpoint_stage_list_is_read_from_shapes(state):
    assert checkpoint_stages(state) == SMALL_STAGES


def _assert_unchanged_after(model, call):
    before = [w.copy() for w in model.get_weights()]
    call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("feature.3.FFN.norm2.running_var", None, "missing 'feature.3.FFN.norm2.running_var'"),
        ("feature.6.Attention.activation1.weight", None, "missing 'feature.6.Attention.activation1.weight'"),
        ("feature.5.Attention.activation1.weight", None, "missing 'feature.5.Attention.activation1.weight'"),
        ("feature.2.Attention.extra.weight", np.zeros(3, np.float32), "feature.2.Attention.extra.weight"),
        ("feature.4.FFN_2.binary_conv.temperature", np.array([0.5], np.float32), "temperature' is 0.5"),
        ("fc.bias", np.full(1000, np.nan, np.float32), "'fc.bias' contains NaN"),
        ("feature.1.FFN_1.scale", np.zeros((1, 16, 2, 1), np.float32), "'feature.1.FFN_1.scale' has shape"),
        (
            "feature.2.Attention.se.se.1.weight",
            np.zeros((5, 32, 1, 1), np.float32),
            "feature.2.Attention.se.se.1.weight",
        ),
    ],
)
def test_bad_entries_are_named_and_nothing_is_assigned(model, state, key, value, message):
    broken = dict(state)
    if value is None:
        del broken[key]
    else:
        broken[key] = value

    def attempt():
        with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
            load_bnext_torch(model, broken)

    _assert_unchanged_after(model, attempt)


def test_mixed_module_prefix(model, state):
    mixed = dict(state)
    mixed["module.fc.bias"] = mixed.pop("fc.bias")
    with pytest.raises(ValueError, match="some keys have the 'module.' prefix"):
        load_bnext_torch(model, mixed)


def test_checkpoint_of_another_variant(model):
    # The key / shape layout of an official BNext-T checkpoint (broadcast views: no memory).
    fake = {"feature.0.conv1.weight": np.broadcast_to(np.float32(0), (32, 3, 3, 3))}
    stages = STAGES["tiny"]
    for i in range(1, len(stages)):
        c = stages[i - 1]
        fake[f"feature.{i}.Attention.binary_conv.weight"] = np.broadcast_to(np.float32(0), (c, c, 3, 3))
        for unit in ["FFN_1", "FFN_2"] if stages[i] != c else ["FFN"]:
            fake[f"feature.{i}.{unit}.binary_conv.weight"] = np.broadcast_to(np.float32(0), (c, c, 1, 1))
    with pytest.raises(
        ValueError, match=r"checkpoint is BNext bnext-t \[32, 64.*but the model is BNext stage list \[16, 32"
    ):
        load_bnext_torch(model, fake)


def test_not_a_bnext_model(state):
    other = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not a BNext model"):
        load_bnext_torch(other, state)


def test_not_a_bnext_checkpoint(model):
    with pytest.raises(ValueError, match="not a BNext checkpoint"):
        load_bnext_torch(model, {"conv.weight": np.zeros((2, 2, 1, 1), np.float32)})
    with pytest.raises(ValueError, match="does not exist"):
        load_bnext_torch(model, "/nonexistent/bnext.pth")
    with pytest.raises(ValueError, match="not a numeric tensor"):
        read_bnext_state_dict({"a": "text"})


def test_without_classifier_skips_fc(state, golden):
    features = BNext(SMALL_STAGES, input_shape=(64, 64, 3), include_top=False)
    report = load_bnext_torch(features, state)
    assert report.skipped_keys == 69  # 67 of the full model + fc.weight, fc.bias
    out = features(golden["input"].transpose(0, 2, 3, 1), training=False).numpy()
    alpha = state["prelu.weight"]
    block = golden["feature_out/7"].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, np.maximum(block, 0) + alpha * np.minimum(block, 0), rtol=1e-4, atol=1e-4)


def test_other_number_of_classes_is_a_shape_error(state):
    ten = BNext(SMALL_STAGES, input_shape=(64, 64, 3), num_classes=10)
    with pytest.raises(ValueError, match=r"'fc.weight' gives shape \(128, 1000\)"):
        load_bnext_torch(ten, state)


def test_zero_latent_weights_are_reported(model, state):
    key = "feature.3.FFN.binary_conv.weight"
    weights = state[key].copy()
    weights[0, :5] = 0.0
    report = load_bnext_torch(model, {**state, key: weights})
    assert report.zero_latent_weights == 5
    load_bnext_torch(model, state)
