"""A generated dense-prediction dataset: coloured circles, squares and triangles on textured
backgrounds, with per-pixel masks and boxes, for segmentation and detection proofs on a machine
without Cityscapes or COCO.

```python
from larq_poke.data.shapes import SHAPE_CLASSES, generate_shapes
images, masks, boxes = generate_shapes(64, size=64, seed=0)
images.shape, masks.shape      # (64, 64, 64, 3) uint8, (64, 64, 64) int32 (0: background)
boxes[0]                        # [(class 1..3, x0, y0, x1, y1), ...] in pixels, x1 / y1 exclusive
```

Every image has 1 to ``max_shapes`` shapes of random class, colour and size (their side or
diameter is 20–45 % of the image), drawn in order, so a later shape hides an earlier one; the
mask holds the class of the visible shape at each pixel, and a box covers its whole shape,
including any hidden part. The background is a random smooth colour gradient plus noise, so no
single colour threshold separates the shapes from it. Everything is a pure function of ``seed``.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["SHAPE_CLASSES", "generate_shapes"]

#: Class index → name; 0 is the background.
SHAPE_CLASSES = ("background", "circle", "square", "triangle")


def _background(rng, size: int) -> np.ndarray:
    corners = rng.uniform(0, 255, (2, 2, 3))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    s = np.linspace(0.0, 1.0, size)[None, :, None]
    image = (corners[0, 0] * (1 - t) * (1 - s) + corners[0, 1] * (1 - t) * s
             + corners[1, 0] * t * (1 - s) + corners[1, 1] * t * s)
    return image + rng.normal(0, 18, (size, size, 3))


def _shape_mask(kind: int, rng, size: int):
    """(boolean mask, box) of one shape of class ``kind``."""
    extent = rng.uniform(0.2, 0.45) * size
    cx, cy = rng.uniform(extent / 2, size - extent / 2, 2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if kind == 1:  # circle
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (extent / 2) ** 2
    elif kind == 2:  # axis-aligned square
        mask = (np.abs(xx - cx) <= extent / 2) & (np.abs(yy - cy) <= extent / 2)
    else:  # upright triangle: apex on top, base at the bottom
        top, bottom = cy - extent / 2, cy + extent / 2
        half = (yy - top) / extent * (extent / 2)
        mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask, None
    return mask, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def generate_shapes(
    count: int, *, size: int = 64, max_shapes: int = 3, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, List[List[tuple]]]:
    """``count`` images (uint8, (count, size, size, 3)), masks (int32, (count, size, size)) and
    boxes (per image a list of ``(class, x0, y0, x1, y1)``)."""
    if count < 1 or size < 16 or max_shapes < 1:
        raise ValueError(f"need count >= 1, size >= 16 and max_shapes >= 1; got {count}, {size}, {max_shapes}.")
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.zeros((count, size, size), np.int32)
    boxes: List[List[tuple]] = []
    for i in range(count):
        image = _background(rng, size)
        found = []
        for _ in range(int(rng.integers(1, max_shapes + 1))):
            kind = int(rng.integers(1, len(SHAPE_CLASSES)))
            mask, box = _shape_mask(kind, rng, size)
            if box is None:
                continue
            colour = rng.uniform(0, 255, 3)
            image[mask] = colour + rng.normal(0, 8, (int(mask.sum()), 3))
            masks[i][mask] = kind
            found.append((kind, *box))
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
        boxes.append(found)
    return images, masks, boxes
