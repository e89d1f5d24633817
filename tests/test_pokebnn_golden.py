"""PokeBNN-0.5x against golden vectors recorded from the official google/aqt Flax code."""


import msgpack
import numpy as np
import pytest
import tensorflow as tf

from larq_poke.checkpoints import read_flax as read_flax_checkpoint
from larq_poke.zoo.pokebnn import load_pokebnn_flax
from larq_poke.layers.pokebnn import pokeconv_parts, pokeinit_parts
from larq_poke.zoo import PokeBNN

from conftest import golden_path

INTER = "intermediates_fp32/"


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("pokebnn_small.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def variables(golden):
    return {k: v for k, v in golden.items() if k.split("/")[0] in ("params", "batch_stats", "get_bounds")}


@pytest.fixture(scope="module")
def model(golden):
    model = PokeBNN(0.5, input_shape=(64, 64, 3), num_classes=1000)
    load_pokebnn_flax(model, golden)
    return model


@pytest.fixture(scope="module")
def blank():
    """A second PokeBNN-0.5x for the bad-input tests: a load that fails assigns nothing
    (``test_non_numeric_and_non_finite_variables_are_named``), so one model serves them all."""
    return PokeBNN(0.5, input_shape=(64, 64, 3))


def close(actual, expected, atol=1e-4):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=atol)


def test_logits_match_official_fp32(model, golden):
    logits = model(golden["input"], training=False).numpy()
    assert np.abs(logits - golden["output_fp32"]).max() <= 1e-2
    np.testing.assert_array_equal(logits.argmax(1), golden["output_fp32"].argmax(1))
    np.testing.assert_array_equal(logits.argmax(1), [96, 96])


def test_stem_layers_teacher_forced(model, golden):
    stem = pokeinit_parts(model)
    g = lambda name: golden[INTER + name]  # noqa: E731
    close(stem.conv(golden["input"]), g("init_conv"))
    close(stem.bn(g("init_conv"), training=False), g("init_bn"))
    close(stem.dprelu(g("init_bn")), g("DPReLU_0"))
    close(stem.conv_group(g("DPReLU_0")), g("init_conv_group"))
    close(stem.bn_group(g("init_conv_group"), training=False), g("init_bn_group"))
    close(stem.dprelu_group(g("init_bn_group")), g("DPReLU_1"))


def pokeconv_cases():
    cases = []
    for i in range(16):
        for j in (1, 2, 3):
            cases.append((i, j))
    return cases


@pytest.mark.parametrize("i, j", pokeconv_cases(), ids=lambda v: str(v))
def test_pokeconv_teacher_forced(model, golden, i, j):
    g = lambda name: golden[INTER + name]  # noqa: E731
    block_input = g("DPReLU_1") if i == 0 else g(f"bn_splitresblock{i - 1}-3")
    x = block_input if j == 1 else g(f"bn_splitresblock{i}-{j - 1}")
    name = f"resblock{i}-{j}"
    unit = pokeconv_parts(model, name)
    close(unit.conv(x), g(f"conv-{name}"))
    close(unit.bn(g(f"conv-{name}"), training=False), g(f"bn{name}"))
    close(unit.se_fc1(np.mean(x, axis=(1, 2), keepdims=True)), g(f"sefc1-{name}"))
    close(unit.se_fc2(np.maximum(g(f"sefc1-{name}"), 0)), g(f"sefc2-{name}"))
    # The whole unit, from its input(s) to its output, as a sub-model of the zoo model.
    inputs = [model.get_layer(f"{name}.conv").input]
    if j == 3:
        add_block = model.get_layer(f"{name}.add_block")
        inputs.append(unit.block_shortcut[0].input if unit.block_shortcut else add_block.input[1])
    sub = tf.keras.Model(inputs, unit.bn_split.output)
    out = sub([x, block_input] if j == 3 else x, training=False)
    close(out, g(f"bn_split{name}"))


def test_dense_teacher_forced(model, golden):
    features = golden[INTER + "bn_splitresblock15-3"].mean(axis=(1, 2))
    close(model.get_layer("dense")(features), golden[INTER + "DenseAqt_0"])


# --- importer -------------------------------------------------------------------------------


def test_missing_variable_is_named(variables, blank):
    broken = dict(variables)
    del broken["params/sefc2-resblock3-2/bias"]
    with pytest.raises(ValueError, match="sefc2-resblock3-2/bias"):
        load_pokebnn_flax(blank, broken)


def test_misshaped_and_extra_variables_are_named(variables, blank):
    broken = dict(variables)
    broken["params/bnresblock0-1/scale"] = np.ones(7, np.float32)
    broken["params/conv-resblock99-1/kernel"] = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError) as info:
        load_pokebnn_flax(blank, broken)
    assert "params/bnresblock0-1/scale" in str(info.value)
    assert "conv-resblock99-1" in str(info.value)


def test_other_width_is_rejected(variables):
    model = PokeBNN(1.0, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="shape"):
        load_pokebnn_flax(model, variables)


def test_binary_bounds_must_be_three(variables, blank):
    broken = dict(variables)
    broken["get_bounds/conv-resblock0-1/GetBounds_0/bounds"] = np.full((1, 1, 1, 64), 2.0, np.float32)
    with pytest.raises(ValueError, match="must all be 3.0"):
        load_pokebnn_flax(blank, broken)


def _flax_ndarray(array):
    """Encode like flax.serialization (msgpack ext 1: (shape, dtype name, C-order bytes))."""
    array = np.ascontiguousarray(array)
    payload = msgpack.packb((list(array.shape), array.dtype.name, array.tobytes()), use_bin_type=True)
    return msgpack.ExtType(1, payload)


def _nest(flat):
    tree = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def test_flax_msgpack_train_state(tmp_path, model, golden, variables):
    """A checkpoint laid out like the official TrainState, written in Flax's msgpack format."""
    encoded = {k: _flax_ndarray(v) for k, v in variables.items()}
    # One array stored the way Flax chunks very large arrays.
    kernel = variables["params/DenseAqt_0/kernel"]
    half = kernel.size // 2
    encoded["params/DenseAqt_0/kernel"] = {
        "__msgpack_chunked_array__": True,
        "shape": list(kernel.shape),
        "chunks": {"0": _flax_ndarray(kernel.ravel()[:half]), "1": _flax_ndarray(kernel.ravel()[half:])},
    }
    nested = _nest(encoded)
    stats = {"n": _flax_ndarray(np.zeros((), np.float32))}
    nested["get_bounds"]["init_conv"]["GetBounds_0"]["stats"] = stats
    state = {
        "step": 125000,
        "params": nested["params"],
        "mutable_vars": {"batch_stats": nested["batch_stats"], "get_bounds": nested["get_bounds"]},
        "opt_state": {"mu": {"x": _flax_ndarray(np.ones(3, np.float32))}},
        "dynamic_scale": None,
    }
    path = tmp_path / "checkpoint_125000"
    path.write_bytes(msgpack.packb(state, use_bin_type=True))
    assert read_flax_checkpoint(path)["step"] == 125000

    fresh = PokeBNN(0.5, input_shape=(64, 64, 3), weights=str(path))
    np.testing.assert_array_equal(
        fresh(golden["input"], training=False).numpy(), model(golden["input"], training=False).numpy()
    )


def test_corrupt_checkpoint_is_rejected(tmp_path, blank):
    path = tmp_path / "checkpoint_1"
    path.write_bytes(b"\xc1\xc1 not msgpack")
    with pytest.raises(ValueError, match="not a readable Flax msgpack checkpoint"):
        load_pokebnn_flax(blank, path)


# --- save / load ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["h5", "tf"])
def test_save_load_round_trip(tmp_path, model, golden, fmt):
    path = str(tmp_path / ("model.h5" if fmt == "h5" else "saved_model"))
    model.save(path, save_format=fmt)  # ZooModel: SavedModel without traces by default
    restored = tf.keras.models.load_model(path)
    np.testing.assert_array_equal(
        restored(golden["input"], training=False).numpy(), model(golden["input"], training=False).numpy()
    )


def test_layer_dependency_lookup_is_keras_table(model):
    """ZooModel answers checkpoint-dependency lookups without rebuilding Keras' table per name;
    the answers are the table's, name by name (and Keras' for names that are not in it)."""
    from tf_keras.src.engine.functional import Functional

    from larq_poke.zoo.zoo_model import ZooModel

    table = model._layer_checkpoint_dependencies  # what Keras' lookup answers for these names
    weighted = sum(name.startswith("layer_with_weights-") for name in table)
    assert weighted > 100
    for name, layer in table.items():
        assert model._lookup_dependency(name) is layer, name
    for name in ["layer-01", f"layer-{len(model.layers)}", f"layer_with_weights-{weighted}", "layer--1",
                 "layer-\u00b2", "layer-\u0663", "layer-" + "9" * 5000, "layer", "keras_api", "optimizer"]:
        assert model._lookup_dependency(name) is Functional._lookup_dependency(model, name), name
    # A name that is not a layer's goes to what Keras asks after its table: here a tracked variable.
    x = tf.keras.Input((4,))
    tiny = ZooModel(x, tf.keras.layers.Dense(2)(x))
    tiny.note = tf.Variable(1.0)
    assert tiny._lookup_dependency("note") is tiny.note is Functional._lookup_dependency(tiny, "note")


def test_keras_weights_file_round_trip(tmp_path, model, golden):
    path = str(tmp_path / "weights.h5")
    model.save_weights(path)
    fresh = PokeBNN(0.5, input_shape=(64, 64, 3), weights=path)
    np.testing.assert_array_equal(
        fresh(golden["input"], training=False).numpy(), model(golden["input"], training=False).numpy()
    )
    with pytest.raises(ValueError, match="does not fit"):
        PokeBNN(0.75, input_shape=(64, 64, 3), weights=path)


def test_non_numeric_and_non_finite_variables_are_named(model, variables):
    before = [w.copy() for w in model.get_weights()]
    bad = dict(variables)
    bad["params/bnresblock2-1/scale"] = np.array(["a", "b"])
    bad["params/sefc1-resblock4-2/bias"] = np.full_like(variables["params/sefc1-resblock4-2/bias"], np.nan)
    with pytest.raises(ValueError) as info:
        load_pokebnn_flax(model, bad)
    assert "bnresblock2-1/scale: not a numeric array" in str(info.value)
    assert "sefc1-resblock4-2/bias: contains NaN" in str(info.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing was assigned
