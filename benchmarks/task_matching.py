"""Matching (BiNeal R2D2) for the task benchmarks: train the binary model and its int8
counterpart the same way, deploy both, score held-out matching accuracy from the TFLite files.

```python
from benchmarks import task_matching          # or, from benchmarks/: import task_matching
result = task_matching.run(quick=True)        # a dict, nothing printed
```

Training: ``TRAIN_PHOTOS`` pairs under random homographies (:mod:`larq_poke.data.homographies`),
:class:`~larq_poke.train.tasks.matching.MatchingLoss` through ``fit_task`` (BiNeal's recipe),
m = 0.5, 64-d descriptors. Evaluation: pairs of ``HELD_OUT_PHOTOS``; matching accuracy at 3 px
(:func:`~larq_poke.train.tasks.matching.matching_accuracy`, grid step 4) of the TFLite outputs:
binary via ``convert(model, int8=True)`` (8-bit conv1, conv8, conv9 as int8 ops, body as
``LceBconv2d``), counterpart via ``convert_int8`` (full int8); baseline: random unit descriptors,
same protocol. The latency files are untrained models at a deployment size: binary at m = 2 (the
paper's width for its tasks), counterpart at R2D2's widths (m = 1), both 128×128 with 128-d
descriptors, 8-bit bounds calibrated on random images.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # common
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import larq_poke  # noqa: E402,F401  (Keras 2 before TensorFlow)
from common import tflite_predict  # noqa: E402

__all__ = ["run", "SETTINGS", "LATENCY"]

#: Training / evaluation settings, full and quick.
SETTINGS = {
    False: dict(size=40, pairs=384, epochs=8, width=0.5, dim=64, test_pairs=64, lr=2e-3),
    True: dict(size=32, pairs=32, epochs=1, width=0.5, dim=64, test_pairs=8, lr=2e-3),
}
#: The latency models: (width multiplier of the binary model, of the int8 counterpart), input, descriptor.
LATENCY = dict(binary_width=2.0, int8_width=1.0, size=128, dim=128)


def _train(precision, images1, images2, H, settings):
    import tensorflow as tf

    from larq_poke.train.tasks import fit_task
    from larq_poke.train.tasks.matching import MatchingLoss, pair_dataset, pair_inputs, pair_model
    from larq_poke.zoo.bineal_tasks import BiNealR2D2

    tf.keras.utils.set_random_seed(0)
    size = settings["size"]
    network = BiNealR2D2(settings["width"], descriptor_dim=settings["dim"], input_shape=(size, size, 3),
                         precision=precision)
    fit_task(pair_model(network), pair_dataset(images1, images2, H, batch_size=16), loss=MatchingLoss(),
             epochs=settings["epochs"], lr=settings["lr"], calibration_inputs=pair_inputs(images1[:32], images2[:32]))
    return network


def _tflite_accuracy(flatbuffer, images1, images2, H, dim) -> float:
    from larq_poke.train.tasks.matching import matching_accuracy, to_inputs

    def describe(images):
        return tflite_predict(flatbuffer, to_inputs(images))[..., :dim]

    return matching_accuracy(describe(images1), describe(images2), H, threshold=3.0)


def _latency_files():
    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo.bineal_tasks import BiNealR2D2

    size, dim = LATENCY["size"], LATENCY["dim"]
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    binary = BiNealR2D2(LATENCY["binary_width"], descriptor_dim=dim, input_shape=(size, size, 3))
    calibrate_activation_bounds(binary, images)
    binary_file = convert(binary, int8=True, strict=True, verify=False, sample_inputs=images).flatbuffer
    counterpart = BiNealR2D2(LATENCY["int8_width"], descriptor_dim=dim, input_shape=(size, size, 3), precision="int8")
    return binary_file, convert_int8(counterpart, images)


def run(quick: bool = False) -> dict:
    """Train, deploy and score both models (quick: a smoke-sized run, about a minute); returns
    ``{"metric": "match_acc", "binary", "int8", "baseline": float, "binary_tflite",
    "int8_tflite", "latency_binary_tflite", "latency_int8_tflite": bytes, "notes": str}``."""
    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.data.homographies import homography_pairs
    from larq_poke.data.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photos
    from larq_poke.train.tasks.matching import matching_accuracy, to_inputs

    settings = SETTINGS[bool(quick)]
    size, dim = settings["size"], settings["dim"]
    images1, images2, H = homography_pairs(load_photos(TRAIN_PHOTOS), settings["pairs"], size=size, seed=0)
    test1, test2, test_H = homography_pairs(load_photos(HELD_OUT_PHOTOS), settings["test_pairs"], size=size, seed=1)

    binary = _train("binary", images1, images2, H, settings)
    binary_file = convert(binary, int8=True, strict=True, verify=not quick,
                          sample_inputs=to_inputs(test1[:4])).flatbuffer
    counterpart = _train("int8", images1, images2, H, settings)
    int8_file = convert_int8(counterpart, to_inputs(images1[:64]))

    rng = np.random.default_rng(7)
    noise = rng.standard_normal((2,) + test1.shape[:3] + (dim,))
    noise /= np.linalg.norm(noise, axis=-1, keepdims=True)
    latency_binary, latency_int8 = _latency_files()
    return {
        "metric": "match_acc",
        "binary": _tflite_accuracy(binary_file, test1, test2, test_H, dim),
        "int8": _tflite_accuracy(int8_file, test1, test2, test_H, dim),
        "baseline": matching_accuracy(noise[0], noise[1], test_H, threshold=3.0),
        "binary_tflite": binary_file,
        "int8_tflite": int8_file,
        "latency_binary_tflite": latency_binary,
        "latency_int8_tflite": latency_int8,
        "notes": (
            f"R2D2-style matching, m={settings['width']:g}, {dim}-d descriptors, {size}x{size} views, "
            f"{settings['pairs']} training pairs of TRAIN_PHOTOS under random homographies, {settings['epochs']} "
            f"epochs of fit_task; accuracy at 3 px (nearest neighbour over all of image 2, grid step 4) on "
            f"{settings['test_pairs']} pairs of HELD_OUT_PHOTOS from the TFLite files; baseline: random unit "
            f"descriptors. Latency files: untrained, {LATENCY['size']}x{LATENCY['size']}, binary m="
            f"{LATENCY['binary_width']:g} (convert int8=True), int8 counterpart m={LATENCY['int8_width']:g} "
            "(R2D2's widths, convert_int8). Not comparable to the paper (HPatches)."
        ),
    }
