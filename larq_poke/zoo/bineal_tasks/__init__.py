"""BiNeal beyond classification (spec §3, D9): dense-prediction models on binary blocks, each a
Keras model with a documented output format that converts with LCE.

| task | constructor | output |
|---|---|---|
| segmentation | :func:`BiNealFCN` (FCN-8s) | per-pixel logits (N, H, W, classes) |
| detection | :func:`BiNealCenterNet` (CenterNet, "ours" / "ours*" via ``binary_head``), :func:`decode_centernet` | (N, H/4, W/4, classes + 4): heatmap logits, size, offset |
| super-resolution | :func:`BiNealEDSR` (shrunk EDSR, ×2 / ×4) | upscaled image (N, s·H, s·W, 3) in [0, 1] |
| matching | :func:`BiNealR2D2` (R2D2, dilated, full resolution) | (N, H, W, D + 2): unit descriptors, reliability, repeatability |

Each constructor takes ``precision="binary"`` (BiNeal blocks, 8-bit first and last layers) or
``precision="int8"``: the real-valued counterpart of the same layout, trained the same way and
deployed with full-int8 post-training quantization (:func:`larq_poke.converters.int8.convert_int8`).
Train with :func:`larq_poke.train.tasks.fit_task`.
"""

import inspect

from larq_poke.zoo.bineal_tasks.detection import BiNealCenterNet, decode_centernet
from larq_poke.zoo.bineal_tasks.matching import BiNealR2D2
from larq_poke.zoo.bineal_tasks.segmentation import BiNealFCN
from larq_poke.zoo.bineal_tasks.super_resolution import BiNealEDSR

__all__ = ["BiNealCenterNet", "BiNealEDSR", "BiNealFCN", "BiNealR2D2", "decode_centernet"]


def _entry(constructor, doc: str, **fixed):
    def build(**kwargs):
        clash = sorted(set(fixed) & set(kwargs))
        if clash:
            raise ValueError(f"{', '.join(clash)} is fixed by this zoo name; call {constructor.__name__} directly to change it.")
        return constructor(**fixed, **kwargs)

    build.__doc__ = f"{doc}; keyword arguments as :func:`{constructor.__name__}`."
    # The constructor's arguments, for the registry's check (the fixed ones stay, so that the
    # clash above names them).
    signature = inspect.signature(constructor)
    build.__signature__ = signature.replace(parameters=[
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else p
        for p in signature.parameters.values()])
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
    "super-resolution": {
        "bineal-edsr-x2-2.0x": _entry(BiNealEDSR, "EDSR ×2 with a BiNeal-2.0x body (8 blocks, 64 channels)",
                                      scale=2, width_multiplier=2.0),
        "bineal-edsr-x4-2.0x": _entry(BiNealEDSR, "EDSR ×4 with a BiNeal-2.0x body (8 blocks, 64 channels)",
                                      scale=4, width_multiplier=2.0),
    },
    "matching": {
        "bineal-r2d2-2.0x": _entry(BiNealR2D2, "R2D2 with BiNeal-2.0x binary conv pairs (128-d descriptors)",
                                   width_multiplier=2.0),
    },
}

