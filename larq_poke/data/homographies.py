"""Image pairs related by known random homographies, for training and scoring dense descriptors
(R2D2-style matching) on real photographs (:mod:`larq_poke.data.photos`).

```python
from larq_poke.data.photos import TRAIN_PHOTOS, load_photos
from larq_poke.data.homographies import homography_pairs, project
images1, images2, H = homography_pairs(load_photos(TRAIN_PHOTOS), 256, size=48, seed=0)
xy2 = project(H[0], [[10.0, 20.0]])      # where pixel (x=10, y=20) of images1[0] is in images2[0]
```

**Coordinates.** A point is ``(x, y)`` = (column, row), in pixels, with pixel centres at integer
coordinates: pixel ``image[r, c]`` is the point (c, r), and a ``size``-pixel image spans
[-0.5, size - 0.5]. ``H`` (3×3, float32) maps image 1 to image 2: ``(x2, y2, 1) ~ H (x1, y1, 1)``.

**Pairs.** Image 1 is an axis-aligned ``size``×``size`` crop of a photograph; image 2 shows the
same photograph seen through ``H``: its pixel q has the photograph's value at the crop offset +
H⁻¹(q), resampled bilinearly by ``skimage.transform.warp`` (``order=1``). The crop is placed so
that everything image 2 shows lies inside the photograph (no padding); the homography is redrawn
when the photograph is too small for it. Parts of image 1 leave image 2's frame: use
:func:`inside` (or the loss's own mask) to keep the points that land in it.

**Random homographies** (:func:`random_homography`), about the image centre c:
``H = T(c + t) · R(θ) · S(s) · P(p) · T(−c)`` with

* rotation θ uniform in ±``max_angle`` degrees (default 20);
* isotropic scale s log-uniform in [1 / ``max_scale``, ``max_scale``] (default 1.25);
* perspective ``P = [[1, 0, 0], [0, 1, 0], [px, py, 1]]``, px and py uniform in
  ±``max_perspective`` / (size / 2) (default 0.1: the projective denominator changes by at most
  ±10 % at the middle of an edge, ±20 % at a corner);
* translation t uniform in ±``max_shift`` · size per axis (default 0.1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["homography_pairs", "inside", "project", "random_homography"]


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def random_homography(rng: np.random.Generator, size: int, *, max_angle: float = 20.0, max_scale: float = 1.25,
                      max_perspective: float = 0.1, max_shift: float = 0.1) -> np.ndarray:
    """A random homography (3×3, float64) for ``size``-pixel images, within the limits in the
    module docstring."""
    if max_scale < 1.0:
        raise ValueError(f"max_scale must be >= 1 (scales are drawn in [1/max_scale, max_scale]), got {max_scale}.")
    centre = (size - 1) / 2.0
    theta = np.deg2rad(rng.uniform(-max_angle, max_angle))
    scale = float(np.exp(rng.uniform(-np.log(max_scale), np.log(max_scale))))
    px, py = rng.uniform(-max_perspective, max_perspective, 2) / (size / 2.0)
    tx, ty = rng.uniform(-max_shift, max_shift, 2) * size
    cos, sin = np.cos(theta), np.sin(theta)
    rotate_scale = np.array([[scale * cos, -scale * sin, 0.0], [scale * sin, scale * cos, 0.0], [0.0, 0.0, 1.0]])
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [px, py, 1.0]])
    return _translation(centre + tx, centre + ty) @ rotate_scale @ perspective @ _translation(-centre, -centre)


def project(H, points) -> np.ndarray:
    """``points`` (…, 2) in (x, y) mapped by the homography ``H`` (3×3): (…, 2), float64."""
    points = np.asarray(points, np.float64)
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    mapped = homogeneous @ np.asarray(H, np.float64).T
    return mapped[..., :2] / mapped[..., 2:]


def inside(points, size: int, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of ``points`` (…, 2) that lie on the pixel centres' square [margin,
    size − 1 − margin]² (so that every pixel they fall on exists)."""
    points = np.asarray(points)
    return np.all((points >= margin) & (points <= size - 1 - margin), axis=-1)


def _preimage_box(H, size: int):
    """Bounding box (x0, y0, x1, y1) of image 1's frame and of image 2's frame mapped back by H⁻¹."""
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    back = project(np.linalg.inv(H), corners)
    both = np.concatenate([back, corners])
    return both[:, 0].min(), both[:, 1].min(), both[:, 0].max(), both[:, 1].max()


def homography_pairs(photos: Sequence[np.ndarray], count: int, *, size: int, seed: int = 0, **limits):
    """``count`` pairs of ``size``×``size`` views of ``photos`` (float (H, W, 3) arrays in [0, 1],
    e.g. :func:`larq_poke.data.photos.load_photos`), photographs drawn uniformly.

    Returns ``(images1, images2, H)``: float32 (count, size, size, 3), the same, and float32
    (count, 3, 3) homographies from image 1 to image 2 (conventions in the module docstring).
    ``limits``: the keyword arguments of :func:`random_homography`. Seeded: the same arguments
    give the same pairs.
    """
    from skimage.transform import ProjectiveTransform, warp

    if not photos:
        raise ValueError("homography_pairs needs at least one photograph.")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}.")
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}.")
    rng = np.random.default_rng(seed)
    images1 = np.empty((count, size, size, 3), np.float32)
    images2 = np.empty_like(images1)
    homographies = np.empty((count, 3, 3), np.float32)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        height, width = photo.shape[:2]
        for _ in range(100):
            H = random_homography(rng, size, **limits)
            x0, y0, x1, y1 = _preimage_box(H, size)
            # offsets (ox, oy) with the box inside the photograph's pixel centres [0, W-1] x [0, H-1]
            low_x, high_x = int(np.ceil(-x0)), int(np.floor(width - 1 - x1))
            low_y, high_y = int(np.ceil(-y0)), int(np.floor(height - 1 - y1))
            if low_x <= high_x and low_y <= high_y:
                break
        else:
            raise ValueError(f"photograph of {height}x{width} pixels is too small for {size}-pixel views "
                             "under these homography limits.")
        ox, oy = int(rng.integers(low_x, high_x + 1)), int(rng.integers(low_y, high_y + 1))
        images1[i] = photo[oy:oy + size, ox:ox + size, :3]
        # output pixel q of image 2 reads the photograph at offset + H^-1 q (skimage: (x, y) = (col, row))
        to_photo = _translation(ox, oy) @ np.linalg.inv(H)
        images2[i] = warp(photo[..., :3], ProjectiveTransform(matrix=to_photo), output_shape=(size, size), order=1,
                          mode="edge", preserve_range=True)
        homographies[i] = H / H[2, 2]
    return images1, images2, homographies
