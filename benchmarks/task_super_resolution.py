"""Super-resolution (BiNeal EDSR, ×2) for the task benchmarks: the binary model and its int8
counterpart trained the same way on crops of skimage photographs, deployed, scored from the
TFLite files on held-out photographs.

```python
import task_super_resolution                       # from benchmarks/
result = task_super_resolution.run(quick=True)     # a dict, nothing printed
```

Training: random crops of :data:`larq_poke.data.photos.TRAIN_PHOTOS` (16-px low-resolution
inputs made by antialiased bicubic downscaling, :mod:`larq_poke.data.sr_pairs`), L1 loss through
``fit_task`` (BiNeal's recipe), the same data, epochs and batches for both models, each at its
peak learning rate (:data:`larq_poke.train.tasks.super_resolution.SR_LR`: binary 1e-2, int8
1e-3). Both at m = 1 (32 channels) with 4 blocks. Evaluation: every 96-px tile of the
:data:`~larq_poke.data.photos.HELD_OUT_PHOTOS` (48-px inputs), PSNR per photograph (RGB, border
2 px cropped) of the TFLite outputs (binary: ``convert(model, int8=True)``; counterpart:
``convert_int8``); baseline: bicubic upsampling (``tf.image.resize``, Keys a = -0.5). Latency
files: untrained models, 128×128 → 256×256, 8 blocks at m = 2 (64 channels, EDSR-baseline's
width) for both, the binary one's 8-bit bounds calibrated on random images (``quick=True``:
one epoch on 64 crops, 1 block; latency files 64×64, 2 blocks; numbers meaningless).
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

SCALE = 2
SETTINGS = {
    False: dict(crops=2048, lr_size=16, epochs=8, width=1.0, blocks=4, tile=48),
    True: dict(crops=64, lr_size=16, epochs=1, width=1.0, blocks=1, tile=48),
}
LATENCY = {
    False: dict(width=2.0, blocks=8, shape=(128, 128, 3)),
    True: dict(width=2.0, blocks=2, shape=(64, 64, 3)),  # the smoke run: small files, quick to convert
}


def _predict(flatbuffer, x):
    return tflite_predict(flatbuffer, x, batch=16)


def _deployed(precision, settings, lr, hr, calibration):
    """Train at any input size, deploy the same weights at the tile size."""
    import tensorflow as tf

    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.train.tasks import fit_task
    from larq_poke.train.tasks.super_resolution import SR_LR, l1_loss
    from larq_poke.zoo.bineal_tasks import BiNealEDSR

    tf.keras.utils.set_random_seed(0)
    options = dict(blocks=settings["blocks"], precision=precision)
    model = BiNealEDSR(SCALE, settings["width"], input_shape=(None, None, 3), **options)
    data = tf.data.Dataset.from_tensor_slices((lr, hr)).shuffle(len(lr), seed=0).batch(16)
    fit_task(model, data, loss=l1_loss(), epochs=settings["epochs"], lr=SR_LR[precision],
             calibration_inputs=lr[:32])
    tile = settings["tile"]
    fixed = BiNealEDSR(SCALE, settings["width"], input_shape=(tile, tile, 3), **options)
    fixed.set_weights(model.get_weights())
    if precision == "binary":
        # the file is scored directly, so the parity run is skipped
        return convert(fixed, int8=True, sample_inputs=calibration[:16], verify=False).flatbuffer
    return convert_int8(fixed, calibration)


def _latency_files(latency):
    from larq_poke.converters import convert
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo.bineal_tasks import BiNealEDSR

    shape = latency["shape"]
    images = np.random.default_rng(0).uniform(0, 1, (4, *shape)).astype(np.float32)
    options = dict(blocks=latency["blocks"], input_shape=shape)
    binary = BiNealEDSR(SCALE, latency["width"], **options)
    calibrate_activation_bounds(binary, images)
    counterpart = BiNealEDSR(SCALE, latency["width"], precision="int8", **options)
    return (convert(binary, int8=True, sample_inputs=images[:2], verify=False).flatbuffer,
            convert_int8(counterpart, images))


def run(quick: bool = False) -> dict:
    """Train, deploy and score both models; returns ``metric`` ("psnr_db"), ``binary``, ``int8``
    and ``baseline`` (bicubic) held-out PSNRs, ``ssim`` (mean SSIM over the held-out tiles of
    ``binary``, ``int8`` and ``bicubic``), the two scored TFLite files, the two latency files
    and ``notes``."""
    from larq_poke.data.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photos, random_crops
    from larq_poke.data.sr_pairs import bicubic_upscale, make_pairs, photo_tiles
    from larq_poke.train.tasks.super_resolution import bicubic_psnr, psnr, ssim

    settings = SETTINGS[quick]
    train_photos = load_photos(TRAIN_PHOTOS)
    lr, hr = make_pairs(random_crops(train_photos, settings["crops"], size=SCALE * settings["lr_size"], seed=0), SCALE)
    tile = settings["tile"]
    calibration, _ = make_pairs(random_crops(train_photos, 64, size=SCALE * tile, seed=1), SCALE)
    tiles, photo = photo_tiles(load_photos(HELD_OUT_PHOTOS), SCALE * tile)
    test_lr, test_hr = make_pairs(tiles, SCALE)
    files = {precision: _deployed(precision, settings, lr, hr, calibration) for precision in ("binary", "int8")}
    outputs = {p: _predict(f, test_lr) for p, f in files.items()}
    scores = {p: psnr(test_hr, out, border=SCALE, groups=photo) for p, out in outputs.items()}
    similarity = {p: ssim(test_hr, out, border=SCALE) for p, out in outputs.items()}
    similarity["bicubic"] = ssim(test_hr, bicubic_upscale(test_lr, SCALE), border=SCALE)
    latency = LATENCY[quick]
    latency_binary, latency_int8 = _latency_files(latency)
    height, width, _ = latency["shape"]
    return {
        "metric": "psnr_db",
        "binary": scores["binary"],
        "int8": scores["int8"],
        "baseline": bicubic_psnr(test_lr, test_hr, SCALE, groups=photo),
        "ssim": similarity,
        "binary_tflite": files["binary"],
        "int8_tflite": files["int8"],
        "latency_binary_tflite": latency_binary,
        "latency_int8_tflite": latency_int8,
        "notes": (f"x{SCALE} on skimage photographs: {settings['crops']} {settings['lr_size']}-px training crops, "
                  f"{settings['epochs']} epochs, m={settings['width']:g}, {settings['blocks']} blocks, both models; "
                  f"PSNR per held-out photograph ({len(np.unique(photo))}, RGB, border {SCALE}) from the TFLite "
                  f"files, baseline bicubic; latency at {height}x{width} -> {SCALE * height}x{SCALE * width}, "
                  f"m={latency['width']:g}, {latency['blocks']} blocks"),
    }
