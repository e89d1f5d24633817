"""(low-resolution, high-resolution) image pairs for super-resolution, made from photo crops.

```python
from larq_poke.data.photos import TRAIN_PHOTOS, load_photos, random_crops
from larq_poke.data.sr_pairs import bicubic_upscale, make_pairs, photo_tiles
hr = random_crops(load_photos(TRAIN_PHOTOS), 256, size=64, seed=0)  # (256, 64, 64, 3) in [0, 1]
lr, hr = make_pairs(hr, scale=2)                                     # lr: (256, 32, 32, 3)
baseline = bicubic_upscale(lr, scale=2)                              # (256, 64, 64, 3)
tiles, photo = photo_tiles(load_photos(["coins"]), 96)                # whole photographs, tiled
```

The low-resolution image is the high-resolution crop downscaled with
``tf.image.resize(method="bicubic", antialias=True)``: Keys' cubic kernel (a = -0.5) stretched by
the scale factor when shrinking, which is how MATLAB's ``imresize`` (the degradation of the
DIV2K / EDSR benchmarks) makes its bicubic "LR" images. Both directions clip to [0, 1] and return
float32.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["bicubic_downscale", "bicubic_upscale", "make_pairs", "photo_tiles"]


def _check(images: np.ndarray, scale: int) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a batch (N, H, W, 3), got shape {images.shape}.")
    if not isinstance(scale, (int, np.integer)) or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}.")
    return images


def bicubic_downscale(images, scale: int) -> np.ndarray:
    """``images`` (N, H, W, 3) in [0, 1] shrunk ``scale``-fold, bicubic with antialiasing; H and W
    must be multiples of ``scale``."""
    import tensorflow as tf

    images = _check(images, scale)
    height, width = images.shape[1:3]
    if height % scale or width % scale:
        raise ValueError(f"image size {height}x{width} is not a multiple of scale {scale}.")
    small = tf.image.resize(images, (height // scale, width // scale), method="bicubic", antialias=True)
    return np.clip(small.numpy(), 0.0, 1.0).astype(np.float32)


def bicubic_upscale(images, scale: int) -> np.ndarray:
    """The bicubic baseline: ``images`` (N, h, w, 3) enlarged to (N, scale·h, scale·w, 3) with
    ``tf.image.resize(method="bicubic")`` (Keys, a = -0.5, half-pixel centres), clipped to [0, 1]."""
    import tensorflow as tf

    images = _check(images, scale)
    height, width = images.shape[1:3]
    large = tf.image.resize(images, (height * scale, width * scale), method="bicubic")
    return np.clip(large.numpy(), 0.0, 1.0).astype(np.float32)


def make_pairs(hr_images, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(lr, hr)``: the low-resolution inputs made with :func:`bicubic_downscale` and the
    high-resolution targets (``hr_images`` as float32)."""
    hr = _check(hr_images, scale)
    return bicubic_downscale(hr, scale), hr


def photo_tiles(photos, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Every photograph cut into non-overlapping ``size``×``size`` tiles (row-major, the right and
    bottom remainders dropped): ``(tiles, photo_index)`` with tiles (N, size, size, 3) float32 and
    the photograph each tile comes from, for scoring whole photographs with fixed-size inputs."""
    tiles, index = [], []
    for number, photo in enumerate(photos):
        photo = np.asarray(photo, np.float32)
        rows, cols = photo.shape[0] // size, photo.shape[1] // size
        if not rows or not cols:
            raise ValueError(
                f"photograph {number} ({photo.shape[0]}x{photo.shape[1]}) is smaller than a {size}-px tile.")
        for row in range(rows):
            for col in range(cols):
                tiles.append(photo[row * size:(row + 1) * size, col * size:(col + 1) * size])
                index.append(number)
    return np.stack(tiles), np.asarray(index)
