"""Loading a saved PokeBNN: Keras' own loaders against larq-poke's, alternating in one process.

    python benchmarks/model_loading.py [--width 0.5] [--size 32] [--rounds 2]

* ``.keras``: ``tf.keras.models.load_model(path, compile=False)`` against
  ``larq_poke.zoo.resolve.load_model(path)`` (weights read into memory, no seeking in the zip
  archive);
* SavedModel: ``tf.keras.models.load_model(folder)`` with Keras' own checkpoint-dependency
  lookup (``Functional._lookup_dependency``, put back on ``ZooModel`` for those rounds) against
  ``ZooModel``'s.

The model has seeded random weights (load time does not depend on their values); every load's
outputs are checked against the saved model's. Last line::

    loading: keras_file_keras=…s keras_file_larq_poke=…s savedmodel_keras_lookup=…s savedmodel_zoo_lookup=…s

(medians over the rounds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import tensorflow as tf
    from tf_keras.src.engine.functional import Functional

    from larq_poke.zoo import PokeBNN
    from larq_poke.zoo.resolve import load_model
    from larq_poke.zoo.zoo_model import ZooModel

    model = common.randomize(PokeBNN(args.width, input_shape=(args.size, args.size, 3)))
    x = np.random.default_rng(1).normal(size=(2, args.size, args.size, 3)).astype(np.float32)
    expected = model(x, training=False).numpy()
    folder = Path(tempfile.mkdtemp(prefix="loading_"))
    model.save(folder / "model.keras")
    model.save(folder / "saved_model", save_format="tf")
    print(f"{model.name} at {args.size}x{args.size}: .keras file {(folder / 'model.keras').stat().st_size / 1e6:.0f} MB")
    del model
    tf.keras.backend.clear_session()

    own_lookup = ZooModel._lookup_dependency

    def keras_lookup_load(path):
        ZooModel._lookup_dependency = Functional._lookup_dependency
        try:
            return tf.keras.models.load_model(path)
        finally:
            ZooModel._lookup_dependency = own_lookup

    loaders = {
        "keras_file_keras": lambda: tf.keras.models.load_model(folder / "model.keras", compile=False),
        "keras_file_larq_poke": lambda: load_model(str(folder / "model.keras")),
        "savedmodel_keras_lookup": lambda: keras_lookup_load(folder / "saved_model"),
        "savedmodel_zoo_lookup": lambda: tf.keras.models.load_model(folder / "saved_model"),
    }
    times = {name: [] for name in loaders}
    for round_ in range(args.rounds):
        for name, load in loaders.items():
            start = time.perf_counter()
            loaded = load()
            times[name].append(time.perf_counter() - start)
            np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected, err_msg=name)
            print(f"round {round_ + 1}: {name} {times[name][-1]:.1f} s", flush=True)
            del loaded
            tf.keras.backend.clear_session()
    medians = {name: float(np.median(values)) for name, values in times.items()}
    print("loading: " + " ".join(f"{name}={value:.1f}s" for name, value in medians.items()))
    return medians


if __name__ == "__main__":
    main()
