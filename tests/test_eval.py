"""``larq-poke eval`` and :func:`larq_poke.train.evaluate.evaluate` against accuracies computed
independently from the image files."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_poke.cli import main
from larq_poke.train.evaluate import evaluate

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    rng = np.random.default_rng(5)
    for label in CLASSES:
        (root / "test" / label).mkdir(parents=True)
        for i in range(7):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            (root / "test" / label / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2)(inputs)
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(len(CLASSES))(x), name="tiny")


def expected_accuracy(model, folder):
    """From the PNG files: 'plain' preprocessing of a 16x16 image at size 16 is the normalisation."""
    images, labels = [], []
    for index, label in enumerate(CLASSES):  # ImageFolder numbers the classes alphabetically
        for path in sorted((folder / "test" / label).iterdir()):
            pixels = tf.io.decode_png(path.read_bytes()).numpy().astype(np.float32) / 255.0
            images.append((pixels - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]))
            labels.append(index)
    logits = model.predict(np.asarray(images, np.float32), verbose=0)
    return float(np.mean(np.argmax(logits, -1) == np.asarray(labels))), len(labels)


def test_keras_model_accuracy_matches_the_files(model, folder):
    from larq_poke.data import load_dataset

    top1, n = expected_accuracy(model, folder)
    metrics = evaluate(model, load_dataset(folder, "test", image_size=16, batch_size=4))
    assert metrics["n"] == n == 21
    assert metrics["top1"] == pytest.approx(top1)
    assert metrics["top5"] == 1.0  # three classes


def test_cli_on_a_saved_model_and_its_tflite(model, folder, tmp_path, capsys):
    from larq_poke.converters import convert

    top1, n = expected_accuracy(model, folder)
    saved = tmp_path / "tiny.keras"
    model.save(saved)
    assert main(["eval", str(saved), "--dataset", str(folder), "--split", "test"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"eval: top1={top1:.4f} top5=1.0000 n={n}"

    tflite = tmp_path / "tiny.tflite"
    convert(model, verify=False).save(tflite)
    assert main(["eval", str(tflite), "--dataset", str(folder), "--split", "test", "--batch-size", "5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"eval: top1={top1:.4f} top5=1.0000 n={n}"


def test_cli_errors_are_named(folder, capsys):
    assert main(["eval", "bnext-t", "--dataset", str(folder), "--split", "validation", "--image-size", "32"]) == 2
    assert "no split 'validation'" in capsys.readouterr().err


def test_convert_carries_the_training_preprocessing_into_the_tflite(model, folder, tmp_path, capsys):
    """A `larq-poke train` output folder (model.keras + preprocessing.json): `larq-poke convert`
    stores that preprocessing in the file, so `eval model.tflite` scores what `eval model.keras`
    does — not the 'plain' default."""
    import dataclasses
    import json

    from larq_poke.data import preprocessing

    prep = dataclasses.replace(preprocessing.get("plain").with_size(16), mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7))
    model.save(tmp_path / "model.keras")
    (tmp_path / "preprocessing.json").write_text(json.dumps(prep.to_dict()))
    images, labels = [], []
    for index, label in enumerate(CLASSES):
        for path in sorted((folder / "test" / label).iterdir()):
            pixels = tf.io.decode_png(path.read_bytes()).numpy().astype(np.float32) / 255.0
            images.append((pixels - np.array([0.2, 0.3, 0.4])) / np.array([0.5, 0.6, 0.7]))
            labels.append(index)
    logits = model.predict(np.asarray(images, np.float32), verbose=0)
    top1 = float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
    assert top1 != expected_accuracy(model, folder)[0]  # the normalisation matters for this model

    tflite = tmp_path / "model.tflite"
    assert main(["convert", str(tmp_path / "model.keras"), "-o", str(tflite), "--no-verify"]) == 0
    capsys.readouterr()
    for source in (tmp_path / "model.keras", tflite):
        assert main(["eval", str(source), "--dataset", str(folder), "--split", "test"]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == f"eval: top1={top1:.4f} top5=1.0000 n=21"


def test_cli_saves_every_top1_prediction_in_the_data_order(model, folder, tmp_path, capsys):
    """``--predictions``: the saved classes are the Keras model's argmax over the data set's
    images in the order it yields them, for the model file and its ``.tflite`` alike."""
    from larq_poke.converters import convert
    from larq_poke.data import load_dataset

    batches = list(load_dataset(folder, "test", image_size=16, batch_size=4))
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    expected = np.argmax(model.predict(images, verbose=0), -1)
    assert len(set(expected.tolist())) > 1  # an order mistake would show
    model.save(tmp_path / "tiny.keras")
    convert(model, verify=False).save(tmp_path / "tiny.tflite")
    for source in ("tiny.keras", "tiny.tflite"):
        out = tmp_path / f"{source}.npy"
        assert main(["eval", str(tmp_path / source), "--dataset", str(folder), "--split", "test",
                     "--predictions", str(out)]) == 0
        top1 = float(np.mean(expected == labels))
        assert capsys.readouterr().out.strip().splitlines()[-1] == f"eval: top1={top1:.4f} top5=1.0000 n=21"
        predictions = np.load(out)
        assert predictions.dtype == np.int64 and np.array_equal(predictions, expected), source

    assert main(["eval", str(tmp_path / "tiny.keras"), "--dataset", str(folder), "--split", "test",
                 "--predictions", str(tmp_path / "keras.txt")]) == 2
    assert "ending in .npy" in capsys.readouterr().err
    assert not (tmp_path / "keras.txt").exists() and not (tmp_path / "keras.txt.npy").exists()
