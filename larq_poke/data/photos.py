"""Real photographs that ship with scikit-image (``skimage.data``), split into training and
held-out sets, for the super-resolution and matching proofs on a machine without DIV2K or
HPatches.

```python
from larq_poke.data.photos import TRAIN_PHOTOS, HELD_OUT_PHOTOS, load_photos, random_crops
train = load_photos(TRAIN_PHOTOS)                 # list of float32 (H, W, 3) arrays in [0, 1]
crops = random_crops(train, 256, size=48, seed=0) # (256, 48, 48, 3)
```

Grey photographs are repeated over three channels. ``skimage.data.cat`` is the same photograph
as ``chelsea`` and is left out, so no picture is in both sets. The files are part of the
scikit-image wheel (nothing is downloaded).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

__all__ = ["HELD_OUT_PHOTOS", "TRAIN_PHOTOS", "load_photos", "random_crops"]

#: Photographs to train on (people, objects, a telescope field, microscopy, textures, text).
TRAIN_PHOTOS = ("astronaut", "camera", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                "retina", "brick", "grass", "moon", "page")
#: Photographs to evaluate on, never trained on.
HELD_OUT_PHOTOS = ("chelsea", "coins", "gravel", "clock", "text")


def load_photos(names: Sequence[str]) -> List[np.ndarray]:
    """The named ``skimage.data`` photographs as float32 RGB arrays in [0, 1]."""
    try:
        from skimage import data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the photographs come with scikit-image: pip install scikit-image") from error
    known = set(TRAIN_PHOTOS) | set(HELD_OUT_PHOTOS)
    photos = []
    for name in names:
        if name not in known:
            raise ValueError(f"unknown photograph {name!r}; choose from {', '.join(sorted(known))}.")
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos.append(image[..., :3].astype(np.float32) / 255.0)
    return photos


def random_crops(photos: Sequence[np.ndarray], count: int, *, size: int, seed: int = 0) -> np.ndarray:
    """``count`` random ``size``×``size`` crops, photographs drawn uniformly; (count, size, size, 3)."""
    small = [i for i, photo in enumerate(photos) if min(photo.shape[:2]) < size]
    if small or not photos:
        raise ValueError(f"crop size {size} is larger than photographs {small} (or no photographs given).")
    rng = np.random.default_rng(seed)
    crops = np.empty((count, size, size, 3), np.float32)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        y = int(rng.integers(photo.shape[0] - size + 1))
        x = int(rng.integers(photo.shape[1] - size + 1))
        crops[i] = photo[y:y + size, x:x + size]
    return crops
