"""Parameter-free shortcut reshapes of PokeBNN ("reshape_add" in the official code).

A residual ``r`` of shape (N, H, W, Cin) is brought to the shape of the branch it is added to:

* :class:`ChannelShrink` — Cin > Cout: output channel c is the mean of input channels
  c·k … c·k + k − 1 with k = Cin // Cout (channels past Cout·k are dropped).
* :class:`ChannelZeroPad` — Cin < Cout: append Cout − Cin zero channels (local shortcuts).
* :class:`ChannelTile` — Cin < Cout: repeat the channel vector Cout / Cin times (block shortcuts).
* :class:`PaddedAveragePool2D` — 3×3, stride 2, TF-style SAME padding with the padded zeros
  **counted** in the average (always divide by 9), unlike Keras ``AveragePooling2D('same')``.

```python
from larq_poke.layers.shortcuts import shortcut_layers
for layer in shortcut_layers(64, 256, method="tile", downsample=True, name="resblock4-3"):
    r = layer(r)                     # ChannelTile to 256 channels, then PaddedAveragePool2D
```
"""

from __future__ import annotations

import tensorflow as tf

from larq_poke.keras_graph import same_output_size, same_padding
from larq_poke.layers.base import GraphLayer
from larq_poke.serialization import register_serializable

__all__ = [
    "ChannelShrink",
    "ChannelZeroPad",
    "ChannelTile",
    "PaddedAveragePool2D",
    "shortcut_layers",
]


class _ChannelReshape(GraphLayer):
    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 1:
            raise ValueError(f"{type(self).__name__}: channels must be positive, got {channels}.")
        self.channels = int(channels)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.channels])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@register_serializable
class ChannelShrink(_ChannelReshape):
    """Average groups of k = Cin // channels consecutive channels (drop the rest).

    ```python
    ChannelShrink(2)(tf.constant([[[[1.0, 3.0, 5.0, 7.0]]]]))  # [[[[2.0, 6.0]]]]
    ```
    """

    def build(self, input_shape):
        cin = tf.TensorShape(input_shape)[-1]
        if cin is None or cin < self.channels:
            raise ValueError(f"ChannelShrink to {self.channels} channels needs at least that many, got {cin}.")
        self.group = int(cin) // self.channels
        super().build(input_shape)

    def call(self, inputs):
        kept = inputs[..., : self.channels * self.group]
        if self.group == 1:
            return kept
        grouped = tf.reshape(kept, tf.concat([tf.shape(kept)[:-1], [self.channels, self.group]], 0))
        return tf.reduce_mean(grouped, axis=-1)


@register_serializable
class ChannelZeroPad(_ChannelReshape):
    """Append zero channels up to ``channels`` (output channel c = r[c] for c < Cin, else 0)."""

    def build(self, input_shape):
        cin = tf.TensorShape(input_shape)[-1]
        if cin is None or cin > self.channels:
            raise ValueError(f"ChannelZeroPad to {self.channels} channels got {cin} input channels.")
        self.extra = self.channels - int(cin)
        super().build(input_shape)

    def call(self, inputs):
        rank = inputs.shape.rank
        return tf.pad(inputs, [[0, 0]] * (rank - 1) + [[0, self.extra]])


@register_serializable
class ChannelTile(_ChannelReshape):
    """Repeat the channel vector ``channels / Cin`` times (output channel c = r[c mod Cin])."""

    def build(self, input_shape):
        cin = tf.TensorShape(input_shape)[-1]
        if cin is None or self.channels % int(cin) != 0:
            raise ValueError(
                f"ChannelTile: the block shortcut tiles {cin} channels to {self.channels}, "
                "which is not a multiple; this width multiplier is not supported by PokeBNN's "
                "shortcut rules."
            )
        self.repeats = self.channels // int(cin)
        super().build(input_shape)

    def call(self, inputs):
        rank = inputs.shape.rank
        return tf.tile(inputs, [1] * (rank - 1) + [self.repeats])


@register_serializable
class PaddedAveragePool2D(GraphLayer):
    """3×3 / stride-2 average pool with TF SAME padding whose zeros count (divisor always 9).

    Padding per spatial axis: total = max((ceil(n / 2) − 1)·2 + 3 − n, 0), split with the smaller
    half first (even n: (0, 1); odd n: (1, 1)).
    """

    pool_size = 3
    strides = 2

    def call(self, inputs):
        shape = tf.shape(inputs)
        paddings = [[0, 0]]
        for axis in (1, 2):
            paddings.append(list(same_padding(shape[axis], self.pool_size, self.strides)))
        paddings.append([0, 0])
        padded = tf.pad(inputs, tf.stack(paddings))
        return tf.nn.avg_pool2d(padded, self.pool_size, self.strides, "VALID")

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = same_output_size(shape[axis], self.strides)
        return tf.TensorShape(shape)


def shortcut_layers(cin: int, cout: int, method: str, downsample: bool, name: str):
    """The layers that bring a ``cin``-channel residual to ``cout`` channels (and halve H, W).

    ``method`` is ``"zeropad"`` (local shortcuts) or ``"tile"`` (block shortcuts) for
    ``cin < cout``; ``cin > cout`` always shrinks by consecutive averaging. Channel reshaping
    comes before the pool, as in the official code.
    """
    if method not in ("zeropad", "tile"):
        raise ValueError(f"Unknown shortcut method {method!r}; use 'zeropad' or 'tile'.")
    layers = []
    if cin > cout:
        layers.append(ChannelShrink(cout, name=f"{name}_shrink"))
    elif cin < cout and method == "zeropad":
        layers.append(ChannelZeroPad(cout, name=f"{name}_zeropad"))
    elif cin < cout:
        if cout % cin:
            raise ValueError(
                f"The block shortcut would tile {cin} channels to {cout}, which is not a "
                "multiple: this width multiplier is not supported by PokeBNN's shortcut rules."
            )
        layers.append(ChannelTile(cout, name=f"{name}_tile"))
    if downsample:
        layers.append(PaddedAveragePool2D(name=f"{name}_pool"))
    return layers
