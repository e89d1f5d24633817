"""Detection (BiNeal CenterNet, both variants) for the task benchmarks: the binary models and the
int8 counterpart trained the same way on the generated shapes, deployed, scored from the TFLite
files.

```python
import task_detection                          # from benchmarks/
result = task_detection.run(quick=True)        # a dict, nothing printed
```

Training: :func:`larq_poke.data.shapes.generate_shapes` images (64×64, 3 object classes), targets
and loss of :mod:`larq_poke.train.tasks.detection` through ``fit_task`` (BiNeal's recipe); the
binary models at m = 0.5 ("ours": backbone binary; "ours*": backbone and head binary), the
counterpart the ResNet-18 CenterNet. Evaluation: held-out images, mAP@0.5 of the decoded TFLite
outputs (binary: ``convert(model, int8=True)``; counterpart: ``convert_int8``); baseline: each
class's mean training box at the image centre. Latency files: untrained "ours" at m = 2 and the
counterpart at 256×384 (the paper's 448×672 aspect, smaller to keep the host run short).
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
    False: dict(size=64, images=512, epochs=10, width=0.5, test_images=128, lr=2e-3),
    True: dict(size=64, images=64, epochs=1, width=0.5, test_images=16, lr=2e-3),
}
LATENCY = dict(binary_width=2.0, shape=(256, 384, 3))
CLASSES = 3


def _map(outputs, boxes) -> float:
    from larq_poke.train.tasks.detection import mean_average_precision
    from larq_poke.zoo.bineal_tasks import decode_centernet

    return mean_average_precision(decode_centernet(outputs, CLASSES, score_threshold=0.01, top_k=20), boxes, CLASSES)


def _deployed(variant, settings, images, boxes):
    import tensorflow as tf

    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.train.tasks import fit_task
    from larq_poke.train.tasks.detection import CenterNetLoss, centernet_targets
    from larq_poke.zoo.bineal_tasks import BiNealCenterNet

    tf.keras.utils.set_random_seed(0)
    size, x = settings["size"], _norm(images)
    precision = "int8" if variant == "int8" else "binary"
    model = BiNealCenterNet(CLASSES, settings["width"], input_shape=(size, size, 3), precision=precision,
                            binary_head=variant == "binary_head")
    targets = centernet_targets(boxes, CLASSES, (size // 4, size // 4))
    data = tf.data.Dataset.from_tensor_slices((x, targets)).shuffle(len(x), seed=0).batch(32)
    fit_task(model, data, loss=CenterNetLoss(CLASSES), epochs=settings["epochs"], lr=settings["lr"],
             calibration_inputs=x[:32])
    if precision == "binary":
        return convert(model, int8=True, sample_inputs=x[:8]).flatbuffer
    return convert_int8(model, x[:64])


def _latency_files():
    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo.bineal_tasks import BiNealCenterNet

    shape = LATENCY["shape"]
    images = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32)
    binary = BiNealCenterNet(CLASSES, LATENCY["binary_width"], input_shape=shape)
    calibrate_activation_bounds(binary, images)
    counterpart = BiNealCenterNet(CLASSES, input_shape=shape, precision="int8")
    return convert(binary, int8=True, sample_inputs=images[:2]).flatbuffer, convert_int8(counterpart, images)


def run(quick: bool = False) -> dict:
    """Train, deploy and score the models; the returned keys are the task benchmarks' plus
    ``binary_head`` (the "ours*" variant's mAP)."""
    from larq_poke.data.shapes import generate_shapes
    from larq_poke.train.tasks.detection import fixed_box_detections, mean_average_precision

    settings = SETTINGS[quick]
    images, _, boxes = generate_shapes(settings["images"], size=settings["size"], seed=0)
    test_images, _, test_boxes = generate_shapes(settings["test_images"], size=settings["size"], seed=1)
    files = {v: _deployed(v, settings, images, boxes) for v in ("binary", "binary_head", "int8")}
    scores = {v: _map(_predict(f, _norm(test_images)), test_boxes) for v, f in files.items()}
    latency_binary, latency_int8 = _latency_files()
    size = (settings["size"], settings["size"])
    baseline = mean_average_precision(fixed_box_detections(boxes, len(test_images), size, CLASSES), test_boxes, CLASSES)
    return {
        "metric": "det_map50",
        "binary": scores["binary"],
        "binary_head": scores["binary_head"],
        "int8": scores["int8"],
        "baseline": baseline,
        "binary_tflite": files["binary"],
        "int8_tflite": files["int8"],
        "latency_binary_tflite": latency_binary,
        "latency_int8_tflite": latency_int8,
        "notes": (f"generated shapes {settings['size']}px, {settings['images']} training images, "
                  f"{settings['epochs']} epochs; BiNeal-{settings['width']}x CenterNet ('ours', 'ours*') vs "
                  f"ResNet-18 CenterNet; latency at {LATENCY['shape'][0]}x{LATENCY['shape'][1]}, binary m={LATENCY['binary_width']}"),
    }
