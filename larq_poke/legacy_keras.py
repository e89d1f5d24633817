"""Make sure TensorFlow resolves ``tf.keras`` to Keras 2 (``tf_keras``).

Larq, larq-zoo and the LCE converter need the Keras 2 API. TensorFlow 2.16 serves Keras 3 as
``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first resolved, so
``import larq_poke`` sets it; if ``tf.keras`` already is Keras 3 there is no way back inside the
running process and :func:`ensure_legacy_keras` raises an ``ImportError`` that says what to do.
"""

import os
import sys

_HOW_TO_FIX = (
    "larq_poke needs Keras 2 (the `tf_keras` package) as `tf.keras`, but TensorFlow was already "
    "imported with Keras 3 as `tf.keras` (Keras {version}). Larq does not support Keras 3. Fix: "
    "import larq_poke before tensorflow, or set the environment variable TF_USE_LEGACY_KERAS=1 "
    "before starting Python (e.g. `export TF_USE_LEGACY_KERAS=1`), and make sure "
    "`pip install tf-keras~=2.16.0` is installed."
)


def ensure_legacy_keras():
    """Set ``TF_USE_LEGACY_KERAS=1``; raise ``ImportError`` if ``tf.keras`` is already Keras 3.

    Called by ``import larq_poke``. Safe to call again.

    ```python
    from larq_poke.legacy_keras import ensure_legacy_keras
    ensure_legacy_keras()
    import tensorflow as tf  # tf.keras is tf_keras 2.16
    ```
    """
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    import tensorflow as tf

    # `tf.keras` is resolved lazily, on first attribute access, from the environment at that time.
    if os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    keras_module = tf.keras.__name__  # resolves the lazy loader
    if not keras_module.startswith("tf_keras"):
        version = getattr(sys.modules.get("keras"), "__version__", "3")
        raise ImportError(_HOW_TO_FIX.format(version=version))
    _route_submodule_imports_to_tf_keras(tf)


def _route_submodule_imports_to_tf_keras(tf) -> None:
    """Make ``import tensorflow.keras.<x>`` load Keras 2 as well.

    The ``tf.keras`` attribute is resolved lazily, but module-path imports (``from
    tensorflow.keras.optimizers.legacy import Optimizer``, as Larq does) search the directories
    that ``tensorflow/__init__`` put on ``tensorflow.__path__`` when TensorFlow was imported:
    Keras 3's, if ``TF_USE_LEGACY_KERAS`` was unset then. Put ``tf_keras``'s in its place, as
    TensorFlow does itself when the variable is set before its import. A ``tensorflow.keras``
    module already imported from Keras 3 cannot be replaced: that raises the ``ImportError``.
    """
    from tensorflow.python.tools import module_util

    keras3 = [
        name
        for name, module in list(sys.modules.items())
        if (name == "tensorflow.keras" or name.startswith("tensorflow.keras."))
        and getattr(module, "__file__", None)
        and "tf_keras" not in module.__file__
    ]
    if keras3:
        version = getattr(sys.modules.get("keras"), "__version__", "3")
        raise ImportError(_HOW_TO_FIX.format(version=version))
    legacy_dir = module_util.get_parent_dir_for_name("tf_keras.api._v2.keras")
    keras3_dir = module_util.get_parent_dir_for_name("keras.api._v2.keras")
    path = [entry for entry in tf.__path__ if entry != keras3_dir]
    if legacy_dir and legacy_dir not in path:
        path.insert(0, legacy_dir)
    tf.__path__ = path
