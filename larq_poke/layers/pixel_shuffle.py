"""Sub-pixel upsampling (pixel shuffle), the upsampling of super-resolution networks.

```python
from larq_poke.layers.pixel_shuffle import PixelShuffle
y = PixelShuffle(2)(x)        # (N, H, W, 4·C) -> (N, 2H, 2W, C), one TFLite DEPTH_TO_SPACE
```
"""

from __future__ import annotations

import tensorflow as tf

from larq_poke.layers.base import GraphLayer
from larq_poke.serialization import register_serializable

__all__ = ["PixelShuffle"]


@register_serializable
class PixelShuffle(GraphLayer):
    """Sub-pixel upsampling: (N, H, W, C·r²) → (N, r·H, r·W, C) with ``tf.nn.depth_to_space``
    (one TFLite ``DEPTH_TO_SPACE``)."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = tf.TensorShape(input_shape).as_list()
        r = self.block_size
        return tf.TensorShape([n, None if h is None else h * r, None if w is None else w * r, c // (r * r)])

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}
