"""``larq-poke train``: a run killed with SIGKILL and resumed ends with the weights of an
uninterrupted run; output folders of other runs are refused before training starts."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_two_workers
from larq_poke.train.run import TrainConfig, TrainError, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(8)
    for split, count in (("train", 12), ("test", 4)):
        for label, colour in (("blue", (20, 40, 220)), ("red", (220, 40, 20))):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(colour, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
                (root / split / label / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def _model_file(path, seed):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return _model_file(root / "student.keras", 1), _model_file(root / "teacher.keras", 2)


def _command(folder, models, output, *extra):
    student, teacher = models
    return [sys.executable, "-m", "larq_poke.cli", "train", "pokebnn", "--model", student,
            "--teacher", teacher, "--dataset", str(folder), "--image-size", "16", "--batch-size", "4",
            "--epochs", "30", "--lr", "1e-3", "--checkpoint-every", "2", "--deterministic",
            "--seed", "4", "--output", str(output), *extra]


def _weights(path):
    with h5py.File(path, "r") as f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _graph_events(logs):
    """How many TensorBoard events under ``logs`` carry a graph."""
    found = 0
    for path in logs.rglob("events.out.tfevents.*"):
        found += sum(bool(event.graph_def) for event in tf.compat.v1.train.summary_iterator(str(path)))
    return found


def test_sigkill_and_resume_ends_with_the_uninterrupted_weights(folder, models, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    whole = subprocess.run(_command(folder, models, tmp_path / "whole"), env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert whole.stdout.strip().splitlines()[-1].startswith("train: steps=180 ")

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(folder, models, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"

    # --json: stdout holds only the metrics (Keras' progress bars go to stderr)
    resumed = subprocess.run(_command(folder, models, killed, "--resume", "--json"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    keras = json.loads(resumed.stdout)["keras"]
    assert whole.stdout.strip().splitlines()[-1] == (
        f"train: steps=180 top1={keras['top1']:.4f} top5={keras['top5']:.4f} n={keras['n']}")
    expected, actual = _weights(tmp_path / "whole" / "weights.h5"), _weights(killed / "weights.h5")
    assert expected.keys() == actual.keys() and expected
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["steps"] == 180 and metrics["keras"]["n"] == 8
    assert abs(metrics["tflite"]["top1"] - metrics["keras"]["top1"]) <= 0.005
    assert json.loads((killed / "report.json").read_text())["op_counts"]["LceBconv2d"] == 1

    # The .tflite carries its preprocessing: eval needs no flag to score it as training did.
    evaluated = subprocess.run(
        [sys.executable, "-m", "larq_poke.cli", "eval", str(killed / "model.tflite"), "--dataset", str(folder)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    tflite = metrics["tflite"]
    assert evaluated.stdout.strip().splitlines()[-1] == f"eval: top1={tflite['top1']:.4f} top5={tflite['top5']:.4f} n=8"


def test_another_run_in_the_output_folder_is_refused(folder, models, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"recipe": "bnext", "model": "bnext-t"}))
    config = TrainConfig(recipe="plain", model=models[0], dataset=str(folder), output=str(out), image_size=16)
    with pytest.raises(TrainError, match="already holds a run .*--resume"):
        train(config)
    config.resume = True
    with pytest.raises(TrainError, match="checkpoint is of another run"):
        train(config)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="not empty"):
        train(TrainConfig(recipe="plain", model=models[0], dataset=str(folder), output=str(tmp_path / "busy")))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(TrainError, match="unknown recipe"):
        train(TrainConfig(recipe="resnet", model=models[0], dataset=str(folder), output=str(tmp_path / "x")))


def test_bad_teacher_and_image_size_stop_before_training(folder, models, tmp_path):
    three = _model_file(tmp_path / "three.keras", 3)
    model = tf.keras.models.load_model(three)
    outputs = tf.keras.layers.Dense(3)(model.layers[-2].output)
    tf.keras.Model(model.inputs, outputs).save(three)
    out = tmp_path / "run"
    config = TrainConfig(recipe="pokebnn", model=models[0], teachers=[three], dataset=str(folder),
                         output=str(out), image_size=16)
    with pytest.raises(ValueError, match="predicts 3 classes but the student .* predicts 2"):
        train(config)
    assert not (out / "run.json").exists() and not (out / "checkpoints").exists()

    # A teacher by name would be built with random weights: refused, before any training.
    for name in ("ResNet50", "quicknet"):
        config = TrainConfig(recipe="pokebnn", model=models[0], teachers=[name], dataset=str(folder),
                             output=str(out), image_size=16)
        with pytest.raises(ValueError, match=f"teacher '{name}' is not a model file .* random weights"):
            train(config)
        assert not (out / "run.json").exists() and not (out / "checkpoints").exists()

    config = TrainConfig(recipe="plain", model="pokebnn-0.5x", dataset=str(folder), output=str(out), image_size=16)
    with pytest.raises(ValueError, match="too small"):
        train(config)
    assert not (out / "run.json").exists()


def test_multi_worker_command_trains_like_one_process(folder, tmp_path):
    """``larq-poke train --distribute multi-worker``: two processes on 127.0.0.1 (TF_CONFIG) end
    with the weights of a one-process run on the same global batches; only the chief writes the
    output folder, the worker's temporary checkpoints are gone."""
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)  # no batch norm: per-replica statistics
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x)).save(tmp_path / "float.keras")

    def command(output):
        return [sys.executable, "-m", "larq_poke.cli", "train", "plain", "--model", str(tmp_path / "float.keras"),
                "--dataset", str(folder), "--image-size", "16", "--batch-size", "4", "--epochs", "2",
                "--checkpoint-every", "3", "--deterministic", "--seed", "2", "--output", str(output)]

    run_two_workers(command(tmp_path / "multi") + ["--distribute", "multi-worker"])
    single_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run(command(tmp_path / "single") + ["--distribute", "none"], env=single_env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    multi, single = _weights(tmp_path / "multi" / "weights.h5"), _weights(tmp_path / "single" / "weights.h5")
    assert multi.keys() == single.keys() and multi
    for name in single:
        np.testing.assert_allclose(multi[name], single[name], atol=1e-5, err_msg=name)
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == sorted(p.name for p in (tmp_path / "single").iterdir())
    assert json.loads((tmp_path / "multi" / "metrics.json").read_text())["steps"] == 12


def test_bf16_training_saves_and_converts_a_float32_model(folder, models, tmp_path):
    """--precision bf16 trains under mixed_bfloat16 (the binary conv's ±1 products in bfloat16)
    and writes the float32 model: its Keras and TFLite scores are those of the same weights."""
    out = tmp_path / "bf16"
    config = TrainConfig(recipe="plain", model=models[0], dataset=str(folder), output=str(out), image_size=16,
                         epochs=3, batch_size=4, lr=1e-2, precision="bf16", deterministic=True,
                         tensorboard_graph=True)
    metrics = train(config)
    assert metrics["steps"] == 18
    assert _graph_events(out / "logs") == 1  # asked for: the training step's graph
    saved = tf.keras.models.load_model(out / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert metrics["tflite"]["top1"] == metrics["keras"]["top1"]
    with pytest.raises(TrainError, match="unknown --precision 'fp8'"):
        train(TrainConfig(recipe="plain", model=models[0], dataset=str(folder), output=str(tmp_path / "x"),
                          image_size=16, precision="fp8"))
    # values that cannot be meant are refused before anything is written (--lr 0 used to mean
    # the recipe's default rate)
    for option, values in (("--lr", {"lr": 0.0}), ("--lr", {"lr": float("nan")}), ("--epochs", {"epochs": 0}),
                           ("--batch-size", {"batch_size": -4}), ("--steps-per-epoch", {"steps_per_epoch": 0}),
                           ("--checkpoint-every", {"checkpoint_every": -1})):
        with pytest.raises(TrainError, match=f"{option} must be a"):
            train(TrainConfig(recipe="plain", model=models[0], dataset=str(folder), output=str(tmp_path / "x"),
                              image_size=16, **values))
    assert not (tmp_path / "x").exists()


def test_bineal_recipe_trains_calibrates_and_deploys_bitpacked(folder, tmp_path):
    """`larq-poke train bineal`: AdamW with decay on kernels only, the 8-bit stem and head
    calibrated during the run, and the converted model folded (8 bit-packed convs) with the
    Keras score."""
    from larq_poke.train.run import _optimizer
    from larq_poke.zoo import BiNeal

    student = tmp_path / "bineal.keras"
    BiNeal(0.5, input_shape=(32, 32, 3), num_classes=2).save(student)
    out = tmp_path / "bineal"
    config = TrainConfig(recipe="bineal", model=str(student), dataset=str(folder), output=str(out), image_size=32,
                         epochs=2, batch_size=4, deterministic=True)
    metrics = train(config)
    assert metrics["steps"] == 12
    assert (out / "logs").is_dir() and _graph_events(out / "logs") == 0  # scalars only, by default
    saved = tf.keras.models.load_model(out / "model.keras", compile=False)
    for name in ("stem.conv", "classifier"):
        assert np.all(saved.get_layer(name).input_quantizer.bounds.numpy() > 0), name
    report = json.loads((out / "report.json").read_text())
    assert report["rewrites"][0] == "bineal" and report["bitpacked_outputs"] == 8
    assert metrics["tflite"]["top1"] == metrics["keras"]["top1"]

    optimizer, options = _optimizer(config, saved, total_steps=512, steps_per_epoch=256)
    decayed = {v.name for v in saved.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed and all(name.endswith("kernel:0") for name in decayed)
    assert optimizer.weight_decay == 1e-5 and options == {}
    lr = optimizer._learning_rate  # the schedule object
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(1e-3)  # warm-up over 5/512
    assert float(lr(258)) == pytest.approx(0.5e-3 * (1 + np.cos(np.pi * 253 / 507)), rel=1e-5)  # cosine
    assert float(lr(512)) == pytest.approx(0.0, abs=1e-9)
