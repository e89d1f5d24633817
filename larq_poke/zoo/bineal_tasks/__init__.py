"""BiNeal beyond classification (spec §3, D9): dense-prediction models on binary blocks, each a
Keras model with a documented output format that converts with LCE.

| task | constructor | output |
|---|---|---|
| segmentation | :func:`BiNealFCN` (FCN-8s) | per-pixel logits (N, H, W, classes) |
| detection | :func:`BiNealCenterNet` (CenterNet, "ours" / "ours*" via ``binary_head``), :func:`decode_centernet` | (N, H/4, W/4, classes + 4): heatmap logits, size, offset |

Each constructor takes ``precision="binary"`` (BiNeal blocks, 8-bit first and last layers) or
``precision="int8"``: the real-valued counterpart of the same layout, trained the same way and
deployed with full-int8 post-training quantization (:func:`larq_poke.converters.int8.convert_int8`).
Train with :func:`larq_poke.train.tasks.fit_task`.
"""

from larq_poke.zoo.bineal_tasks.detection import BiNealCenterNet, decode_centernet
from larq_poke.zoo.bineal_tasks.segmentation import BiNealFCN

__all__ = ["BiNealCenterNet", "BiNealFCN", "decode_centernet"]


def _entry(constructor, doc: str, **fixed):
    def build(**kwargs):
        clash = sorted(set(fixed) & set(kwargs))
        if clash:
            raise ValueError(f"{', '.join(clash)} is fixed by this zoo name; call {constructor.__name__} directly to change it.")
        return constructor(**fixed, **kwargs)

    build.__doc__ = f"{doc}; keyword arguments as :func:`{constructor.__name__}`."
    return build


#: task → zoo name → constructor (the paper's m = 2; ``precision="int8"`` gives the counterpart).
TASK_MODELS = {
    "segmentation": {
        "bineal-fcn-2.0x": _entry(BiNealFCN, "FCN-8s on BiNeal-2.0x (512×1024; pass num_classes)", width_multiplier=2.0),
    },
    "detection": {
        "bineal-centernet-2.0x": _entry(BiNealCenterNet, 'CenterNet on BiNeal-2.0x, backbone binary ("ours"; pass num_classes)',
                                        width_multiplier=2.0, binary_head=False),
        "bineal-centernet-head-2.0x": _entry(BiNealCenterNet, 'CenterNet on BiNeal-2.0x, backbone and head binary ("ours*")',
                                             width_multiplier=2.0, binary_head=True),
    },
}

