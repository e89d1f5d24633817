"""`import larq_poke` must give Keras 2 as tf.keras, or fail clearly when that is impossible."""

import os
import subprocess
import sys

import pytest


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


AUTOGRAPH_CHECK = """
import larq_poke, tensorflow as tf
from tensorflow.python.autograph.impl import conversion

def keras_left_alone():
    return (conversion.is_allowlisted(tf.keras.layers.Layer.__call__),
            conversion.is_allowlisted(tf.keras.optimizers.Adam.apply_gradients))

before = keras_left_alone()
import larq_poke.{module}
after = keras_left_alone()

class Branchy(tf.keras.layers.Layer):  # needs AutoGraph: a Python `if` on a tensor
    def call(self, x):
        if tf.reduce_sum(x) > 0:
            return x + 1.0
        return x - 1.0

model = tf.keras.Sequential([Branchy()])
step = tf.function(lambda x: model(x))
print(before, after, float(step(tf.ones((1, 2)))[0, 0]), float(step(-tf.ones((1, 2)))[0, 0]))
"""


@pytest.mark.parametrize("module", ["quantizers", "train.distill"])
def test_autograph_leaves_keras2_alone_and_still_converts_user_layers(module, tmp_path):
    # AutoGraph's rules exclude `keras` but not Keras 2's new name `tf_keras`: without the added
    # rule each Layer.__call__ and optimizer update in a tf.function is converted (tracing twice as
    # slow). A script file: AutoGraph converts only code whose source it can read.
    script = tmp_path / "check.py"
    script.write_text(AUTOGRAPH_CHECK.format(module=module))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["(False,", "False)", "(True,", "True)", "2.0", "-2.0"]
