"""BiNeal's ``weights=<file>``: a trained classifier's Keras weights file fills the same model, a
model built without its head and a task model's backbone (D9: task backbones start from the
classifier), checked against the classifier's own variables; a file that does not fit changes
nothing and says why."""

import json
import os
import stat

import numpy as np
import pytest

import larq_poke  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
from larq_poke.zoo import BiNeal
from larq_poke.zoo.bineal_tasks import BiNealCenterNet, BiNealFCN
from larq_poke.zoo.loading import CONFIG_ATTRIBUTE, load_keras_weights, load_weights, save_keras_weights


def _random_values(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.uniform(0.1, 1.0, tuple(weight.shape)).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A BiNeal-1.0x classifier (10 classes, 32×32) with distinct random values in every
    variable, saved as `larq-poke train` saves it."""
    model = _random_values(BiNeal(1.0, input_shape=(32, 32, 3), num_classes=10), seed=0)
    path = tmp_path_factory.mktemp("bineal_weights") / "weights.h5"
    save_keras_weights(model, path)
    return model, path


def _assert_layers_match(model, source, prefixes=("stem.", "stage")):
    """Every weighted layer of ``model`` whose name starts with one of ``prefixes`` holds the
    values of ``source``'s layer of that name; returns how many layers were compared."""
    compared = 0
    for layer in model.layers:
        if layer.weights and layer.name.startswith(prefixes):
            for got, want in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(got, want, err_msg=layer.name)
            compared += 1
    return compared


def test_the_classifier_file_fills_the_same_model_and_one_without_its_head(classifier_file):
    source, path = classifier_file
    same = BiNeal(1.0, input_shape=(32, 32, 3), num_classes=10, weights=str(path))
    for got, want in zip(same.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # a larger input changes no weight shape; the head's weights are left out
    features = BiNeal(1.0, include_top=False, input_shape=(64, 64, 3), weights=str(path))
    assert _assert_layers_match(features, source) == len([layer for layer in features.layers if layer.weights])


def test_a_whole_saved_model_and_the_generic_loader(classifier_file, tmp_path):
    source, path = classifier_file
    source.save(str(tmp_path / "model.h5"))  # a whole model: its weights under "model_weights"
    model = BiNeal(1.0, input_shape=(32, 32, 3), num_classes=10, weights=str(tmp_path / "model.h5"))
    for got, want in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # larq_poke.zoo.load_weights reads Keras files for models of any family (BiNeal has none)
    features = BiNeal(1.0, include_top=False, input_shape=(32, 32, 3))
    report = load_weights(features, path, allow_missing_head=True)
    assert report.family is None and report.format == "keras_h5"
    assert _assert_layers_match(features, source) == 3 + 8 * 9


def test_task_models_start_their_backbone_from_the_classifier_file(classifier_file, tmp_path):
    source, path = classifier_file
    fcn = BiNealFCN(3, 1.0, input_shape=(64, 64, 3), backbone_weights=str(path))
    # stem and all 8 blocks: 1 stem conv, its BN and sign, per block 3 convs, 4 BNs, 2 signs
    assert _assert_layers_match(fcn, source) == 3 + 8 * 9
    # the task model's own file restores all of it, head included
    _random_values(fcn, seed=1).save_weights(str(tmp_path / "fcn.h5"))
    again = BiNealFCN(3, 1.0, input_shape=(64, 64, 3), weights=str(tmp_path / "fcn.h5"))
    for got, want in zip(again.get_weights(), fcn.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="backbone_weights must be None or a path"):
        BiNealFCN(3, 1.0, input_shape=(64, 64, 3), backbone_weights="imagenet")
    with pytest.raises(ValueError, match="backbone_weights file .* does not exist"):
        BiNealFCN(3, 1.0, input_shape=(64, 64, 3), backbone_weights=str(tmp_path / "missing.h5"))
    detector = BiNealCenterNet(2, 1.0, input_shape=(64, 64, 3), backbone_weights=str(path))
    assert _assert_layers_match(detector, source) == 3 + 8 * 9
    with pytest.raises(ValueError, match="precision='binary' only"):
        BiNealFCN(3, 1.0, input_shape=(64, 64, 3), precision="int8", backbone_weights=str(path))
    with pytest.raises(ValueError, match="does not fit .*'stem.conv'.*\\(7, 7, 3, 96\\).*\\(7, 7, 3, 64\\)"):
        BiNealFCN(3, 1.5, input_shape=(64, 64, 3), backbone_weights=str(path))


def test_a_file_that_does_not_fit_changes_nothing(classifier_file, tmp_path):
    source, path = classifier_file
    model = BiNeal(1.0, input_shape=(32, 32, 3), num_classes=5)
    before = model.get_weights()
    # every layer fits but the classifier, the last one Keras would assign
    with pytest.raises(ValueError, match="does not fit bineal-1.0x: layer 'classifier'.*\\(512, 5\\).*\\(512, 10\\)"):
        load_keras_weights(model, path)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)

    with pytest.raises(ValueError, match="does not exist or is not a file"):
        load_keras_weights(model, tmp_path / "missing.h5")
    source.save_weights(str(tmp_path / "ckpt"))  # TensorFlow format: a prefix, not a file
    with pytest.raises(ValueError, match="TensorFlow checkpoint prefix"):
        load_keras_weights(model, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="TensorFlow checkpoint prefix"):
        BiNeal(1.0, input_shape=(32, 32, 3), num_classes=10, weights=str(tmp_path / "ckpt"))
    source.save_weights(str(tmp_path / "newer.weights.h5"))  # Keras' newer weights format
    with pytest.raises(ValueError, match="newer Keras format"):
        load_keras_weights(model, tmp_path / "newer.weights.h5")
    (tmp_path / "renamed.weights.h5").write_bytes(path.read_bytes())  # h5 weights Keras would misread
    with pytest.raises(ValueError, match="rename it to end in .h5 only"):
        load_keras_weights(model, tmp_path / "renamed.weights.h5")
    with pytest.raises(ValueError, match="weights must be None or a path .* got 'imagenet'"):
        BiNealFCN(3, 1.0, input_shape=(64, 64, 3), weights="imagenet")
    np.savez(tmp_path / "weights.npz", kernel=np.zeros(3))
    with pytest.raises(ValueError, match="is a npz checkpoint; bineal-1.0x has no official checkpoints"):
        load_keras_weights(model, tmp_path / "weights.npz")
    (tmp_path / "junk.bin").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="is not a Keras .h5 weights file"):
        BiNeal(1.0, input_shape=(32, 32, 3), num_classes=5, weights=str(tmp_path / "junk.bin"))


def test_a_file_of_another_option_is_refused(classifier_file, tmp_path):
    """Same names and shapes where both have a layer, but INT4 branch quantizers (D6) between them:
    loading by name would silently drop the learned bounds and add in float."""
    _, path = classifier_file
    int4 = BiNeal(1.0, input_shape=(32, 32, 3), num_classes=10, branch_bits=4)
    int4.save_weights(str(tmp_path / "int4.h5"))
    for include_top in (True, False):
        with pytest.raises(ValueError, match="layers the model does not have, among its own: .*main_q"):
            BiNeal(1.0, input_shape=(32, 32, 3), include_top=include_top, weights=str(tmp_path / "int4.h5"),
                   **({"num_classes": 10} if include_top else {}))
    with pytest.raises(ValueError, match="no weights for layers .*main_q"):
        load_keras_weights(int4, path)


def test_settings_that_change_no_shape_are_checked_when_the_file_records_them(tmp_path):
    """INT4 against INT3 branch outputs: the same layers and shapes, other levels. A file written
    by save_keras_weights (as `larq-poke train` writes) or a whole saved model records each
    layer's settings, so loading it into the other model is refused; a plain Keras weights file
    cannot tell them apart. Training-only settings may differ."""
    import h5py

    shape = {"input_shape": (32, 32, 3), "num_classes": 10}
    int4 = _random_values(BiNeal(0.5, branch_bits=4, **shape), seed=2)
    save_keras_weights(int4, tmp_path / "int4.h5")
    int4.save(str(tmp_path / "whole.h5"))
    int3 = BiNeal(0.5, branch_bits=3, **shape)
    before = int3.get_weights()
    for name in ("int4.h5", "whole.h5"):
        with pytest.raises(ValueError, match="layer 'stage1.block1.main_q' was saved with other settings: bits=4 in "
                                             "the file, 3 in the model"):
            load_keras_weights(int3, tmp_path / name)
        for got, want in zip(int3.get_weights(), before, strict=True):
            np.testing.assert_array_equal(got, want)
    same = BiNeal(0.5, branch_bits=4, **shape)
    for name in ("int4.h5", "whole.h5"):
        _random_values(same, seed=5)
        load_keras_weights(same, tmp_path / name)
        for got, want in zip(same.get_weights(), int4.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    # a zoo model's own save_weights records them too, also through Keras' ModelCheckpoint
    int4.save_weights(str(tmp_path / "own.h5"))
    checkpoint = tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.h5"), save_weights_only=True,
                                                    save_freq="epoch")
    checkpoint.set_model(int4)
    checkpoint.on_epoch_end(0)
    for name in ("own.h5", "epoch1.h5"):
        with pytest.raises(ValueError, match="'stage1.block1.main_q' was saved with other settings: bits=4"):
            load_keras_weights(int3, tmp_path / name)
    # Keras h5 weights of a model that is not a zoo model record none: shapes only
    tf.keras.Model.save_weights(int4, str(tmp_path / "plain.h5"))
    with h5py.File(tmp_path / "plain.h5", "r") as f:
        assert CONFIG_ATTRIBUTE not in f.attrs
    load_keras_weights(int3, tmp_path / "plain.h5")

    def recorded(edit):
        """A copy of int4.h5 whose recorded settings ``edit`` changed."""
        path = tmp_path / f"edited{len(list(tmp_path.iterdir()))}.h5"
        path.write_bytes((tmp_path / "int4.h5").read_bytes())
        with h5py.File(path, "a") as f:
            config = json.loads(f.attrs[CONFIG_ATTRIBUTE])
            layers = {layer["config"]["name"]: layer["config"] for layer in config["config"]["layers"]}
            edit(layers)
            f.attrs[CONFIG_ATTRIBUTE] = json.dumps(config)
        return path

    def training_only(layers):
        layers["stem.bn"]["momentum"] = 0.5
        layers["stage1.block1.conv1"]["kernel_initializer"] = {"class_name": "Zeros", "config": {}}
        layers["stage1.block1.conv2"]["kernel_regularizer"] = {"class_name": "L2", "config": {"l2": 1e-5}}
        layers["stage2.block1.bn1"]["dtype"] = "mixed_float16"
        layers["stage2.block1.conv1"]["dilation_rate"] = [2, 2]  # a backbone may dilate
        layers["stem.pool"]["pool_size"] = [2, 2]  # a layer without weights

    load_keras_weights(same, recorded(training_only))
    with pytest.raises(ValueError, match="layer 'stem.bn' was saved with other settings: epsilon=0.5 in the file"):
        load_keras_weights(same, recorded(lambda layers: layers["stem.bn"].update(epsilon=0.5)))
    with pytest.raises(ValueError, match="'stage1.block1.conv1' was saved with other settings: "
                                         "kernel_quantizer.config.alpha='element' in the file, 'channel'"):
        load_keras_weights(same, recorded(
            lambda layers: layers["stage1.block1.conv1"]["kernel_quantizer"]["config"].update(alpha="element")))


def test_save_keras_weights_names_and_replacement(tmp_path):
    model = BiNeal(0.5, input_shape=(32, 32, 3), num_classes=10)
    for name in ("w.weights.h5", "w.keras", "w"):
        with pytest.raises(ValueError, match="name the file \\*.h5"):
            save_keras_weights(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "w.h5").write_bytes(b"old")  # replaced whole, through a temporary file that goes away
    umask = os.umask(0o022)
    try:
        save_keras_weights(_random_values(model, seed=3), tmp_path / "w.h5")
    finally:
        os.umask(umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5"]
    assert stat.S_IMODE((tmp_path / "w.h5").stat().st_mode) == 0o644  # as open() makes it, not mkstemp's 0o600
    again = BiNeal(0.5, input_shape=(32, 32, 3), num_classes=10, weights=str(tmp_path / "w.h5"))
    for got, want in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_cli_converts_a_weights_file_of_another_number_of_classes(classifier_file, tmp_path, capsys):
    from larq_poke.cli import main

    _, path = classifier_file
    args = ["convert", str(path), "--arch", "bineal-1.0x", "--input-size", "32", "-o", str(tmp_path / "m.tflite")]
    assert main(args) == 2  # the constructor's 1000 classes do not fit the file's 10
    assert "layer 'classifier'" in capsys.readouterr().err
    # --num-classes builds the model the file fits; the conversion checks its parity in LCE
    assert main(args + ["--num-classes", "10", "--json"]) == 0
    assert (tmp_path / "m.tflite").stat().st_size > 0


def test_recorded_settings_of_a_model_with_a_nested_model(tmp_path):
    """A whole saved model records its nested models the way Keras' h5 format writes them (no
    module or build config, names of its own); the same model built again loads it, and the
    nested model's weights are checked by shape."""
    import tensorflow as tf

    def build():
        inner_in = tf.keras.Input((4,))
        inner = tf.keras.Model(inner_in, tf.keras.layers.Dense(3, name="inner_dense")(inner_in), name="inner")
        inputs = tf.keras.Input((4,))
        return tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="outer_dense")(inner(inputs)), name="outer")

    source = _random_values(build(), seed=4)
    source.save(str(tmp_path / "whole.h5"))
    model = build()
    load_keras_weights(model, tmp_path / "whole.h5")
    for got, want in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
