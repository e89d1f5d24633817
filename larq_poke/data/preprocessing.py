"""The image preprocessing of each recipe, as the official runs did it, in TensorFlow ops.

| recipe | training | evaluation | normalisation |
|---|---|---|---|
| ``pokebnn`` (google/aqt) | Inception random-resized crop (area [0.08, 1], aspect [3/4, 4/3], 10 attempts), bicubic 224, horizontal flip | center crop 224/256 of the short side, bicubic resize to 224 | ImageNet mean / std |
| ``bnext`` (timm 0.6.11) | RandomResizedCrop 224 (same ranges), bicubic, flip, RandAugment ``rand-m7-mstd0.5-inc1`` | bicubic resize of the short side to 235 (crop_pct 0.95), center crop 224 | ImageNet mean / std |
| ``bineal`` (unpublished; project choice) | as ``pokebnn`` (the standard ResNet-18 pipeline) | as ``pokebnn`` | ImageNet mean / std |

Inputs are uint8 RGB images (H, W, 3) of any size; outputs float32 (size, size, 3). Resizing is
bicubic with antialiasing, TensorFlow's closest match to the PIL bicubic resize of the official
pipelines (the official code resizes with PIL; results agree to within interpolation rounding).
When all 10 crop attempts fail, the whole image is used, which is timm's central-crop fallback for
images whose aspect ratio lies in [3/4, 4/3].

```python
from larq_poke.data import preprocessing
prep = preprocessing.get("bnext")
x = prep.eval(image)                               # (224, 224, 3) float32, normalised
x = prep.train(image, seed=(1, 2))                 # stateless random crop, flip, RandAugment
```
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Tuple

__all__ = ["Preprocessing", "IMAGENET_MEAN", "IMAGENET_STD", "PRESETS", "get"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """One recipe's preprocessing (see the module docstring).

    # Arguments
    name: the recipe.
    image_size: the square output size.
    eval_mode: ``"crop_then_resize"`` (center crop ``crop_fraction`` of the short side, then
        resize: PokeBNN) or ``"resize_then_crop"`` (resize the short side to
        ``floor(image_size / crop_fraction)``, then center crop: timm / BNext).
    crop_fraction: 224/256 (PokeBNN) or 0.95 (BNext).
    area_range, aspect_range, attempts: the random-resized crop of training.
    flip: random horizontal flip in training.
    randaugment: the timm RandAugment spec of the official training, or ``None``.
    mean, std: per-channel normalisation of [0, 1] images; ``None`` keeps [0, 1].
    """

    name: str
    image_size: int = 224
    eval_mode: str = "crop_then_resize"
    crop_fraction: float = 224 / 256
    area_range: Tuple[float, float] = (0.08, 1.0)
    aspect_range: Tuple[float, float] = (3 / 4, 4 / 3)
    attempts: int = 10
    flip: bool = True
    randaugment: Optional[str] = None
    mean: Optional[Tuple[float, float, float]] = IMAGENET_MEAN
    std: Optional[Tuple[float, float, float]] = IMAGENET_STD

    def __post_init__(self):
        if self.eval_mode not in ("crop_then_resize", "resize_then_crop"):
            raise ValueError(f"eval_mode must be 'crop_then_resize' or 'resize_then_crop', got {self.eval_mode!r}.")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}.")
        if int(self.image_size) < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown preprocessing fields {unknown}.")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**data)

    def with_size(self, image_size: int) -> "Preprocessing":
        """The same recipe for another output size."""
        return dataclasses.replace(self, image_size=int(image_size))

    # -- the transforms ---------------------------------------------------------------------

    def _normalise(self, image):
        import tensorflow as tf

        image = tf.cast(image, tf.float32) / 255.0
        if self.mean is not None:
            image = (image - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)
        return image

    def _resize(self, image, size):
        import tensorflow as tf

        resized = tf.image.resize(tf.cast(image, tf.float32), size, method="bicubic", antialias=True)
        return tf.clip_by_value(resized, 0.0, 255.0)

    def eval(self, image):
        """The evaluation transform of a uint8 (H, W, 3) image."""
        import tensorflow as tf

        shape = tf.shape(image)
        height, width = shape[0], shape[1]
        size = self.image_size
        if self.eval_mode == "crop_then_resize":
            side = tf.cast(tf.cast(tf.minimum(height, width), tf.float32) * self.crop_fraction, tf.int32)
            top, left = (height - side + 1) // 2, (width - side + 1) // 2
            crop = tf.image.crop_to_bounding_box(image, top, left, side, side)
            return self._normalise(self._resize(crop, (size, size)))
        short = math.floor(size / self.crop_fraction)
        scale = tf.cast(short, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
        new_h = tf.maximum(short, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
        new_w = tf.maximum(short, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
        resized = self._resize(image, tf.stack([new_h, new_w]))
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return self._normalise(tf.image.crop_to_bounding_box(resized, top, left, size, size))

    def train(self, image, seed):
        """The training transform of a uint8 (H, W, 3) image; ``seed`` is a stateless seed
        (shape [2] int), so the same seed gives the same crop, flip and RandAugment draws
        (timm's, :mod:`larq_poke.data.randaugment`)."""
        import tensorflow as tf

        seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=crop_seed,
            min_object_covered=0.0,
            aspect_ratio_range=self.aspect_range,
            area_range=self.area_range,
            max_attempts=self.attempts,
            use_image_if_no_bounding_boxes=True,
        )
        crop = tf.slice(image, begin, crop_size)
        image = self._resize(crop, (self.image_size, self.image_size))
        if self.flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        if self.randaugment is not None:  # timm's order: crop, flip, RandAugment, normalise
            augment = _randaugment(self.randaugment, self.image_size, self.mean or IMAGENET_MEAN)
            image = augment(tf.cast(tf.round(image), tf.uint8), tf.random.experimental.stateless_fold_in(seed, 3))
        return self._normalise(image)


PRESETS = {
    "pokebnn": Preprocessing("pokebnn", eval_mode="crop_then_resize", crop_fraction=224 / 256),
    "bnext": Preprocessing(
        "bnext", eval_mode="resize_then_crop", crop_fraction=0.95, randaugment="rand-m7-mstd0.5-inc1"
    ),
    # BiNeal (no published pipeline; project choice): the standard ResNet-18 ImageNet pipeline.
    "bineal": Preprocessing("bineal", eval_mode="crop_then_resize", crop_fraction=224 / 256),
    # Labels only (no teacher): small data sets and float teachers trained from scratch.
    "plain": Preprocessing("plain", eval_mode="crop_then_resize", crop_fraction=1.0, area_range=(0.25, 1.0)),
}


@functools.lru_cache(maxsize=None)
def _randaugment(spec: str, image_size: int, mean):
    from larq_poke.data.randaugment import RandAugment

    return RandAugment(spec, image_size, mean)


def get(name: str) -> Preprocessing:
    """The preset of recipe ``name``; ``ValueError`` listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preprocessing {name!r}; known: {', '.join(sorted(PRESETS))}.")
    return PRESETS[name]
