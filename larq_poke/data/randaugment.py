"""timm's RandAugment inside a ``tf.data`` pipeline, seeded per example.

BNext's official training used timm's PIL RandAugment (``rand-m7-mstd0.5-inc1``). No maintained
TensorFlow implementation installs with this stack (TF Model Garden's ``tf-models-official``
fails to build a dependency's metadata; KerasCV is Keras 3 only since 0.8), and timm's is the one
the weights were trained with, so larq-poke runs timm's own code: ``pip install
"larq-poke[randaugment]"`` installs timm. Only ``timm/data/auto_augment.py`` is loaded, a module
that needs nothing but PIL and NumPy, so the input pipeline never imports PyTorch (``import timm``
would, and torchvision with it).

timm draws its random choices from the global ``random`` and ``numpy.random`` states. Each call
here seeds both from the example's stateless seed, under a lock and restoring them afterwards, so
an example's augmentation is a function of its seed (exact resume and ``deterministic=True``
depend on that) and the caller's global random state is left as it was. The lock serialises the
augmentation itself: about 1–3 ms per 224x224 image, hundreds of images per second.

```python
augment = RandAugment("rand-m7-mstd0.5-inc1", image_size=224)
image = augment(uint8_image, seed)                 # in a tf.data map; same seed, same result
```
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import threading

import numpy as np

__all__ = ["RandAugment", "timm_auto_augment"]

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def timm_auto_augment():
    """timm's ``timm.data.auto_augment`` module, loaded on its own (see the module docstring);
    ``ImportError`` with the install command when timm is missing."""
    spec = importlib.util.find_spec("timm")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "data", "auto_augment.py")
    if path is None or not os.path.isfile(path):
        raise ImportError(
            "RandAugment uses timm's implementation (the one BNext was trained with): "
            "pip install 'larq-poke[randaugment]' (or pip install timm), or train without it "
            "(--randaugment none)."
        )
    module_spec = importlib.util.spec_from_file_location("larq_poke_timm_auto_augment", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


class RandAugment:
    """timm's ``rand_augment_transform(spec, hparams)`` with the hyper-parameters timm's ImageNet
    training transform gives it: translations up to 45 % of ``image_size``, fill with the mean
    colour, bicubic interpolation.

    # Arguments
    spec: a timm RandAugment string, e.g. ``"rand-m7-mstd0.5-inc1"`` (BNext).
    image_size: the training crop size. mean: the normalisation mean (the fill colour).
    """

    def __init__(self, spec: str, image_size: int, mean=(0.485, 0.456, 0.406)):
        from PIL import Image

        if not str(spec).startswith("rand"):
            raise ValueError(f"RandAugment spec must start with 'rand' (e.g. 'rand-m7-mstd0.5-inc1'), got {spec!r}.")
        module = timm_auto_augment()
        hparams = {
            "translate_const": int(image_size * 0.45),
            "img_mean": tuple(min(255, round(255 * x)) for x in mean),
            "interpolation": Image.BICUBIC,
        }
        try:
            self.transform = module.rand_augment_transform(spec, hparams)
        except (AssertionError, KeyError, ValueError) as err:
            raise ValueError(f"timm cannot read the RandAugment spec {spec!r}: {err}") from None
        self.spec = spec

    def numpy(self, pixels: np.ndarray, seed: int) -> np.ndarray:
        """Augment one uint8 (H, W, 3) array with the random draws of ``seed``."""
        from PIL import Image

        with _LOCK:
            py_state, np_state = random.getstate(), np.random.get_state()
            try:
                random.seed(int(seed))
                np.random.seed(int(seed) % 2**32)
                out = self.transform(Image.fromarray(np.asarray(pixels, np.uint8)))
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return np.asarray(out, np.uint8)

    def __call__(self, image, seed):
        """The TensorFlow op: a uint8 (H, W, 3) tensor and a stateless seed (shape [2])."""
        import tensorflow as tf

        scalar = tf.random.stateless_uniform([], tf.cast(seed, tf.int32), maxval=2**31 - 1, dtype=tf.int32)
        out = tf.numpy_function(self.numpy, [image, scalar], tf.uint8, stateful=False, name="timm_randaugment")
        out.set_shape(image.shape)
        return out
