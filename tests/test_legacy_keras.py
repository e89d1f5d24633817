"""`import larq_poke` must give Keras 2 as tf.keras, or fail clearly when that is impossible."""

import os
import subprocess
import sys


ENV = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
ENV["TF_CPP_MIN_LOG_LEVEL"] = "3"


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)


def test_import_first_gives_tf_keras():
    result = run_python(
        "import larq_poke, tensorflow as tf, os; "
        "print(tf.keras.__name__, os.environ['TF_USE_LEGACY_KERAS'])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tf_keras.api._v2.keras", "1"]


def test_tensorflow_imported_but_keras_unresolved_still_works():
    result = run_python("import tensorflow as tf; import larq_poke; print(tf.keras.__name__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


def test_tensorflow_imported_first_still_gives_keras2_to_module_imports():
    # Larq imports `from tensorflow.keras.optimizers.legacy import Optimizer`; module-path
    # imports follow tensorflow.__path__, which TensorFlow set up for Keras 3 at its import.
    result = run_python(
        "import tensorflow as tf; import larq_poke; import larq; "
        "from tensorflow.keras.optimizers.legacy import Optimizer; "
        "from larq_poke.zoo import PokeBNN; "
        "print(Optimizer.__module__.split('.')[0], PokeBNN(0.5, input_shape=(32, 32, 3)).name)"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["tf_keras", "pokebnn-0.5x"]


def test_keras3_module_already_imported_raises_clear_error():
    result = run_python("import tensorflow as tf; import tensorflow.keras.layers; import larq_poke")
    assert result.returncode != 0
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr and "Keras 3" in result.stderr


def test_keras3_already_resolved_raises_clear_error():
    result = run_python("import tensorflow as tf; tf.keras.layers; import larq_poke")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr
    assert "Keras 3" in result.stderr
