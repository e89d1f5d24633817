"""Segmentation (BiNeal FCN-8s) for the task benchmarks: the binary model and its int8
counterpart trained the same way on the generated shapes, deployed, scored from the TFLite files.

```python
import task_segmentation                       # from benchmarks/
result = task_segmentation.run(quick=True)     # a dict, nothing printed
```

Training: :func:`larq_poke.data.shapes.generate_shapes` images (64×64, 4 classes with the
background), per-pixel cross-entropy through ``fit_task`` (BiNeal's recipe), the binary model
at m = 0.5, the counterpart the ResNet-18 FCN. Evaluation: held-out images (another seed), mIoU
of the TFLite outputs (binary: ``convert(model, int8=True)``; counterpart: ``convert_int8``);
baseline: every pixel background. Latency files: untrained models at 256×512 (half the paper's
512×1024 in each side, to keep the host run short), binary at m = 2.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # common
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import larq_poke  # noqa: E402,F401  (Keras 2 before TensorFlow)
from common import shapes_inputs as _norm, tflite_predict as _predict  # noqa: E402

__all__ = ["run", "SETTINGS", "LATENCY"]

SETTINGS = {
    False: dict(size=64, images=512, epochs=6, width=0.5, test_images=128, lr=2e-3),
    True: dict(size=64, images=64, epochs=1, width=0.5, test_images=16, lr=2e-3),
}
LATENCY = dict(binary_width=2.0, shape=(256, 512, 3))
CLASSES = 4


def _miou(logits, masks) -> float:
    import tensorflow as tf

    metric = tf.keras.metrics.MeanIoU(CLASSES, sparse_y_pred=False)
    metric.update_state(masks, logits)
    return float(metric.result())


def _deployed(precision, settings, images, masks):
    import tensorflow as tf

    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.train.tasks import fit_task
    from larq_poke.zoo.bineal_tasks import BiNealFCN

    tf.keras.utils.set_random_seed(0)
    size, x = settings["size"], _norm(images)
    model = BiNealFCN(CLASSES, settings["width"], input_shape=(size, size, 3), precision=precision)
    data = tf.data.Dataset.from_tensor_slices((x, masks)).shuffle(len(x), seed=0).batch(32)
    fit_task(model, data, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             epochs=settings["epochs"], lr=settings["lr"], calibration_inputs=x[:32])
    if precision == "binary":
        return convert(model, int8=True, sample_inputs=x[:8]).flatbuffer
    return convert_int8(model, x[:64])


def _latency_files():
    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo.bineal_tasks import BiNealFCN

    shape = LATENCY["shape"]
    images = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32)
    binary = BiNealFCN(CLASSES, LATENCY["binary_width"], input_shape=shape)
    calibrate_activation_bounds(binary, images)
    counterpart = BiNealFCN(CLASSES, input_shape=shape, precision="int8")
    return convert(binary, int8=True, sample_inputs=images[:2]).flatbuffer, convert_int8(counterpart, images)


def run(quick: bool = False) -> dict:
    """Train, deploy and score both models; see the module docstring for the returned keys."""
    from larq_poke.data.shapes import generate_shapes

    settings = SETTINGS[quick]
    images, masks, _ = generate_shapes(settings["images"], size=settings["size"], seed=0)
    test_images, test_masks, _ = generate_shapes(settings["test_images"], size=settings["size"], seed=1)
    files = {precision: _deployed(precision, settings, images, masks) for precision in ("binary", "int8")}
    scores = {p: _miou(_predict(f, _norm(test_images)), test_masks) for p, f in files.items()}
    latency_binary, latency_int8 = _latency_files()
    return {
        "metric": "seg_miou",
        "binary": scores["binary"],
        "int8": scores["int8"],
        "baseline": _miou(np.eye(CLASSES)[np.zeros_like(test_masks)], test_masks),
        "binary_tflite": files["binary"],
        "int8_tflite": files["int8"],
        "latency_binary_tflite": latency_binary,
        "latency_int8_tflite": latency_int8,
        "notes": (f"generated shapes {settings['size']}px, {settings['images']} training images, "
                  f"{settings['epochs']} epochs; binary BiNeal-{settings['width']}x FCN vs ResNet-18 FCN; "
                  f"latency at {LATENCY['shape'][0]}x{LATENCY['shape'][1]}, binary m={LATENCY['binary_width']}"),
    }
