"""Float reference models for comparisons (cost tables, cycle estimates, teachers): no weights
are shipped, and they are not in the zoo registry (``list_models()``).

| model | layout | params (1000 classes) |
|---|---|---|
| ResNet-18 | torchvision's ``resnet18`` (He et al. 2016, BasicBlocks 2-2-2-2) | 11,689,512 trainable |

``load_model("resnet18")`` (:mod:`larq_poke.zoo.resolve`) builds it by name.

```python
import larq_poke
from larq_poke.zoo.references import ResNet18
model = ResNet18()                                            # 224x224, 1000 logits
small = ResNet18(input_shape=(64, 64, 3), num_classes=10)
features = ResNet18(include_top=False)                        # 512-channel feature map
```
"""

from __future__ import annotations

import tensorflow as tf

from larq_poke.zoo.zoo_model import ZooModel, model_input

__all__ = ["ResNet18"]

# (blocks, width) of the four stages.
_RESNET18_STAGES = ((2, 64), (2, 128), (2, 256), (2, 512))


def _bn(name: str):
    # torchvision's BatchNorm2d: eps 1e-5, momentum 0.1 (Keras counts it the other way round).
    return tf.keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def _conv(filters: int, kernel_size: int, strides: int, name: str):
    return tf.keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )


def _basic_block(x, filters: int, strides: int, name: str):
    """torchvision's BasicBlock: conv3x3 → BN → ReLU → conv3x3 → BN, + shortcut, → ReLU; a
    1×1 conv + BN projection (``downsample``) where the stride or the width changes."""
    shortcut = x
    y = _conv(filters, 3, strides, f"{name}.conv1")(x)
    y = _bn(f"{name}.bn1")(y)
    y = tf.keras.layers.ReLU(name=f"{name}.relu1")(y)
    y = _conv(filters, 3, 1, f"{name}.conv2")(y)
    y = _bn(f"{name}.bn2")(y)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, f"{name}.downsample.0")(x)
        shortcut = _bn(f"{name}.downsample.1")(shortcut)
    y = tf.keras.layers.Add(name=f"{name}.add")([y, shortcut])
    return tf.keras.layers.ReLU(name=f"{name}.relu2")(y)


def ResNet18(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights=None,
    multiscale: bool = False,
    name: str = "resnet18",
) -> tf.keras.Model:
    """torchvision's ResNet-18 in Keras 2, float, random init.

    7×7/2 conv 64 (no bias) → BN → ReLU → 3×3/2 max pool → 4 stages × 2 BasicBlocks (widths
    64, 128, 256, 512; the first block of stages 2–4 has stride 2 and a 1×1/2 conv + BN
    projection) → global average pool → Dense(num_classes) logits. Layers are named after
    torchvision's modules (``conv1``, ``layer2.0.downsample.0``, ``fc``). Strided convs use
    TensorFlow's SAME padding (on even sizes it pads one pixel less at the top/left than
    torchvision's symmetric padding; the shapes and parameters are the same).

    # Arguments
    input_shape: (height, width, channels); default (224, 224, 3) with the top, (None, None, 3)
        without; at least 32×32 (the network downsamples 32×).
    input_tensor: optional Keras tensor to build on.
    include_top: add the global average pool and the dense classifier; without it the model
        returns the last 512-channel feature map.
    num_classes: classifier outputs (logits, no softmax).
    weights: only None: no weights are shipped (this is a float reference for comparisons).
    multiscale: with ``include_top=False``, return the four stage outputs (strides 4, 8, 16, 32;
        64, 128, 256, 512 channels), the real-valued counterpart of ``BiNeal(multiscale=True)``.
    """
    if weights is not None:
        raise ValueError(
            f"ResNet18 ships no weights (got weights={weights!r}): it is a float reference for "
            "comparisons; use weights=None."
        )
    if multiscale and include_top:
        raise ValueError("multiscale=True returns backbone features: use it with include_top=False.")
    inputs, x = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=None,
        num_classes=num_classes,
        min_size=32,
    )
    x = _conv(64, 7, 2, "conv1")(x)
    x = _bn("bn1")(x)
    x = tf.keras.layers.ReLU(name="relu")(x)
    x = tf.keras.layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool")(x)
    features = []
    for stage, (blocks, filters) in enumerate(_RESNET18_STAGES):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, name=f"layer{stage + 1}.{block}")
        features.append(x)
    if multiscale:
        x = features
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
        x = tf.keras.layers.Dense(num_classes, name="fc")(x)
    return ZooModel(inputs, x, name=name)
