"""BNext (Guo, Bethge, Meinel & Yang, 2022) in the keras.applications / larq-zoo style.

| model | top-1 (ImageNet) | OPs (README "BOPs" column) | binarization degree | params | BOPs (224×224) |
|---|---|---|---|---|---|
| BNext-T | 72.4 % | 0.077 G | 97.81 % | 30.9 M | 4.817 G |
| BNext-S | 76.1 % | 0.172 G | 98.47 % | 68.6 M | 10.838 G |
| BNext-M | 78.3 % | 0.317 G | 99.02 % | 134.5 M | 20.087 G |
| BNext-L | 80.6 % | 0.819 G | 99.49 % | 326.5 M | 52.151 G |
| BNext-18 | — (no released checkpoint) | — | 61.04 % | 12.1 M | 1.676 G |

Top-1, OPs and binarization degree are published in the official README
(github.com/hpi-xnor/BNext); the README's "BOPs (G)" column is OPs = BOPs / 64 + FLOPs / 8 (non-binary
MACs counted as 8-bit), and its degree is BOPs / (64 · OPs). Parameter and BOPs counts are computed
from the official code. The official authors released ImageNet checkpoints for T / S / M / L
(PyTorch, Google Drive); ``weights="imagenet"`` downloads, converts and caches them.

```python
from larq_poke.zoo import BNextT, BNext
model = BNextT(weights="imagenet")                       # 224x224 RGB, mean/std-normalised
model = BNext([16, 32, 64, 64, 128], input_shape=(64, 64, 3))   # explicit stage list
model = BNextS(weights="bnext_small_checkpoint.pth.tar")       # an official PyTorch checkpoint
```

Preprocessing of the released weights (official evaluation): bicubic resize of the shorter side to
235, center crop 224, RGB scaled to [0, 1] and normalised with mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225). The model outputs logits (no softmax).

Architecture rules, derived from the stage list ``c[0..N]`` as in the official code:

* stem: 3x3 conv (stride 2, zero padding 1) + BN, no activation;
* block i (1..N) maps c[i-1] -> c[i]: stride 2 if i >= 2 and c[i] != c[i-1], else 1;
  token mixer FFN_3x3 for block 1 and odd i, ELM-Attention for even i;
  channel mixer one FFN_1x1 if c[i] == c[i-1], else two FFN_1x1 units concatenated
  (FFN_1 then FFN_2), which doubles the channels;
* head: PReLU -> global average pool -> dense (logits).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from larq_poke.layers.bnext import (
    SymmetricMaxPool2D,
    batch_norm,
    bnext18_attention_unit,
    elm_attention_unit,
    ffn_1x1_unit,
    ffn_3x3_unit,
    prelu,
)
from larq_poke.zoo import weights as weights_registry
from larq_poke.zoo.published import model_facts
from larq_poke.zoo.loading import Family, ImportReport, PretrainedWeights, load_weights, register_family
from larq_poke.zoo.zoo_model import ZooModel, model_input

__all__ = [
    "BNext",
    "BNextT",
    "BNextS",
    "BNextM",
    "BNextL",
    "BNext18",
    "MODELS",
    "STAGES",
    "BlockSpec",
    "block_specs",
    "feature_outputs",
    "variant_name",
    "load_bnext_torch",
    "official_state",
    "checkpoint_stages",
    "model_stages",
    "BNextImportReport",
]

#: Official stage lists (``stage_out_channel_<size>`` in the official ``bnext.py``).
STAGES: Dict[str, List[int]] = {
    "tiny": [32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2,
    "small": [48, 96] + [192] * 2 + [384] * 2 + [768] * 6 + [1536] * 2,
    "middle": [48, 96] + [192] * 4 + [384] * 4 + [768] * 8 + [1536] * 4,
    "large": [64, 128] + [256] * 4 + [512] * 4 + [1024] * 16 + [2048] * 4,
}

#: Zoo names of the four official variants.
ZOO_NAMES = {"tiny": "bnext-t", "small": "bnext-s", "middle": "bnext-m", "large": "bnext-l"}

# Google Drive file ids of the official checkpoints (README of github.com/hpi-xnor/BNext).
_DRIVE_IDS = {
    "tiny": "1CJ0XOEhoHuNe-tDYJaAOd1j4YyNXuyas",
    "small": "1NcVM5Qb1K9Oq_sjEA1lGtp7kVbsfTLsa",
    "middle": "1xyKnA6SsG4ZpguNQQrB6Yz-J5dzXYfKE",
    "large": "1XGKcX2Zl_fIU9wPBDjTTxstOBfwQH8xc",
}

for _size, _zoo_name in ZOO_NAMES.items():
    weights_registry.register(
        weights_registry.WeightsEntry(
            model=_zoo_name,
            variant="imagenet",
            url=f"gdrive://{_DRIVE_IDS[_size]}",
            file_name=f"bnext_{_size}_checkpoint.pth.tar",
            format="torch",
            family="bnext",
            preprocessing="bnext",
            sha256=None,
            source="github.com/hpi-xnor/BNext (official PyTorch checkpoint on Google Drive)",
            license="see github.com/hpi-xnor/BNext",
            top1=model_facts(_zoo_name).top1,
            notes=(
                "PyTorch state_dict (keys prefixed 'module.'); converted to Keras weights on first "
                "use and cached. sha256 not pinned yet: the file's structure is checked instead."
            ),
        )
    )


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """What the stage-list rules give for block ``index`` (1-based)."""

    index: int
    in_channels: int
    out_channels: int
    stride: int
    token_mixer: str  # "ffn_3x3" or "elm"
    doubling: bool  # two FFN_1x1 units concatenated (c[i] == 2 c[i-1])

    @property
    def channel_mixers(self) -> List[str]:
        return ["FFN_1", "FFN_2"] if self.doubling else ["FFN"]


def _stage_list(variant) -> List[int]:
    if isinstance(variant, str):
        key = variant.lower()
        if key not in STAGES:
            raise ValueError(
                f"Unknown BNext variant {variant!r}: use one of {', '.join(STAGES)} or an explicit "
                "stage list (stem channels followed by the output channels of every block)."
            )
        return list(STAGES[key])
    try:
        stages = [int(c) for c in variant]
    except TypeError:
        raise ValueError(f"`variant` must be a name or a list of channel counts, got {variant!r}.") from None
    if any(float(c) != float(o) for c, o in zip(stages, variant)):
        raise ValueError(f"Stage list entries must be integers, got {list(variant)}.")
    return stages


def block_specs(stages: Sequence[int]) -> List[BlockSpec]:
    """Per-block configuration from a stage list ``c[0..N]`` (``c[0]`` = stem channels).

    ValueError when the list is not a valid BNext layout (channels must stay or double, and every
    unit needs at least 8 channels for its SE attention).
    """
    stages = list(stages)
    if len(stages) < 2:
        raise ValueError(f"A BNext stage list needs the stem and at least one block, got {stages}.")
    if any(c < 8 for c in stages):
        raise ValueError(f"BNext channel counts must be >= 8 (SE reduction 8), got {stages}.")
    specs = []
    for i in range(1, len(stages)):
        cin, cout = stages[i - 1], stages[i]
        if cout not in (cin, 2 * cin):
            raise ValueError(
                f"Block {i} of stage list {stages} maps {cin} -> {cout} channels; BNext blocks keep "
                "the channel count or double it (two concatenated FFN units)."
            )
        stride = 2 if i >= 2 and cout != cin else 1
        mixer = "ffn_3x3" if i == 1 or i % 2 == 1 else "elm"
        specs.append(BlockSpec(i, cin, cout, stride, mixer, cout == 2 * cin))
    return specs


def variant_name(stages: Sequence[int]) -> Optional[str]:
    """The zoo name (``"bnext-t"`` ...) of an official stage list, else ``None``."""
    for size, official in STAGES.items():
        if list(stages) == official:
            return ZOO_NAMES[size]
    return None


def _check_input_size(img_input, divisor: int, what: str) -> None:
    for size in tf.keras.backend.int_shape(img_input)[1:3]:
        if size is not None and size % divisor:
            shape = tf.keras.backend.int_shape(img_input)[1:3]
            raise ValueError(
                f"{what} needs an input height and width that are multiples of {divisor} (the "
                f"model's total stride), got {shape[0]}x{shape[1]}."
            )


def BNext(
    variant: Union[str, Sequence[int]] = "tiny",
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights=None,
    stem_stride: int = 2,
    zero_sign: int = 1,
    name: Optional[str] = None,
) -> ZooModel:
    """A BNext model.

    # Arguments
    variant: ``"tiny"``, ``"small"``, ``"middle"``, ``"large"`` or an explicit stage list
        ``[c0, c1, ..., cN]`` (stem channels, then the output channels of every block).
    input_shape: (height, width, 3); default (224, 224, 3) with the top, (None, None, 3) without.
        Height and width must be multiples of the total stride (32 for the official variants).
    input_tensor: optional Keras tensor to build on.
    include_top: add global average pooling and the dense classifier. Without it the model ends
        with the head PReLU (its feature map).
    num_classes: classifier size.
    weights: ``None`` (random init), ``"imagenet"`` (official checkpoint, downloaded, converted
        and cached; official variants only), or a path to a Keras ``.h5`` weights file, an
        official PyTorch checkpoint (``.pth`` / ``.pth.tar``) or an ``.npz`` of its tensors.
    stem_stride: 2 (ImageNet). The official code uses 1 when num_classes != 1000 (CIFAR); pass
        ``stem_stride=1`` for that layout.
    zero_sign: sign(0) of the binarizers: 1 (Larq / LCE) or 0 (``torch.sign``); see
        :mod:`larq_poke.layers.bnext`.
    name: model name (default the zoo name, e.g. ``"bnext-t"``).

    # Returns
    A :class:`~larq_poke.zoo.zoo_model.ZooModel`; ``model.summary()`` ends with the cost table.
    """
    stages = _stage_list(variant)
    specs = block_specs(stages)
    zoo_name = variant_name(stages)
    if stem_stride not in (1, 2):
        raise ValueError(f"`stem_stride` must be 1 or 2, got {stem_stride!r}.")
    if weights == "imagenet" and (zoo_name is None or stem_stride != 2):
        raise ValueError(
            "weights='imagenet' exists only for the official variants 'tiny', 'small', 'middle' "
            f"and 'large' with stem_stride=2 (got variant={variant!r}, stem_stride={stem_stride})."
        )
    total_stride = stem_stride * 2 ** sum(spec.stride == 2 for spec in specs)
    inputs, img_input = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        default_size=224,
        min_size=total_stride,
    )
    _check_input_size(img_input, total_stride, f"BNext {zoo_name or stages}")

    # Download and check the official checkpoint before the (possibly large) model is built.
    imagenet = PretrainedWeights(weights_registry.get(zoo_name)) if weights == "imagenet" else None

    x = img_input
    if stem_stride == 2:
        x = tf.keras.layers.ZeroPadding2D(1, name="feature.0.pad")(x)
    x = tf.keras.layers.Conv2D(
        stages[0],
        3,
        strides=stem_stride,
        padding="valid" if stem_stride == 2 else "same",
        use_bias=False,
        name="feature.0.conv1",
    )(x)
    x = batch_norm("feature.0.bn1")(x)

    for spec in specs:
        prefix = f"feature.{spec.index}"
        unit = ffn_3x3_unit if spec.token_mixer == "ffn_3x3" else elm_attention_unit
        x = unit(x, stride=spec.stride, name=f"{prefix}.Attention", zero_sign=zero_sign)
        if spec.doubling:
            y1 = ffn_1x1_unit(x, name=f"{prefix}.FFN_1", zero_sign=zero_sign)
            y2 = ffn_1x1_unit(x, name=f"{prefix}.FFN_2", zero_sign=zero_sign)
            x = tf.keras.layers.Concatenate(axis=-1, name=prefix)([y1, y2])
        else:
            x = ffn_1x1_unit(x, name=f"{prefix}.FFN", zero_sign=zero_sign)
            x = tf.keras.layers.Activation("linear", name=prefix)(x)

    x = prelu("prelu")(x)
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = tf.keras.layers.Dense(num_classes, name="fc")(x)

    model = ZooModel(inputs, x, name=name or zoo_name or "bnext")
    if imagenet is not None:
        imagenet.load_into(model, full=include_top and num_classes == 1000)
    elif weights is not None:
        load_weights(model, weights, allow_missing_head=not include_top)
    return model


def feature_outputs(model: tf.keras.Model) -> List[tf.Tensor]:
    """The outputs of the official ``feature[i]`` modules: stem (i = 0), then every block."""
    outputs = [model.get_layer("feature.0.bn1").output]
    i = 1
    while True:
        try:
            outputs.append(model.get_layer(f"feature.{i}").output)
        except ValueError:
            return outputs
        i += 1


def BNextT(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None,
    stem_stride: int = 2, zero_sign: int = 1, name: Optional[str] = None,
):
    """BNext-T (tiny): 72.4 % top-1, 30.9 M params, 4.817 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "tiny",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        stem_stride=stem_stride,
        zero_sign=zero_sign,
        name=name,
    )


def BNextS(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None,
    stem_stride: int = 2, zero_sign: int = 1, name: Optional[str] = None,
):
    """BNext-S (small): 76.1 % top-1, 68.6 M params, 10.838 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "small",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        stem_stride=stem_stride,
        zero_sign=zero_sign,
        name=name,
    )


def BNextM(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None,
    stem_stride: int = 2, zero_sign: int = 1, name: Optional[str] = None,
):
    """BNext-M (middle): 78.3 % top-1, 134.5 M params, 20.087 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "middle",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        stem_stride=stem_stride,
        zero_sign=zero_sign,
        name=name,
    )


def BNextL(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None,
    stem_stride: int = 2, zero_sign: int = 1, name: Optional[str] = None,
):
    """BNext-L (large): 80.6 % top-1, 326.5 M params, 52.151 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "large",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        stem_stride=stem_stride,
        zero_sign=zero_sign,
        name=name,
    )


def BNext18(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights=None,
    zero_sign: int = 1,
    name: str = "bnext-18",
) -> ZooModel:
    """BNext-18: the BNext units in the ResNet-18 layout (official ``birealnet.py``, ``BNext18``).

    Stem 7x7 conv / 2 + BN + 3x3 max pool / 2 (no activation); four stages of two blocks
    (64, 128, 256, 512 channels; the first block of stages 2-4 has stride 2); each block is an
    Attention unit (3x3 binary conv in -> out, downsample shortcut AvgPool -> 1x1 conv -> BN on
    PReLU_1(x) when the shape changes) followed by an FFN_3x3 unit; head PReLU -> GAP -> dense.
    12.06 M params, 1.676 G BOPs at 224; README binarization degree 61.04 %. No checkpoint was
    released, so ``weights`` is ``None`` or a Keras weights file. Layers are named
    ``layer<stage>.<block>.…`` with both indices from 0 (``layer0.0.Attention.binary_conv`` …
    ``layer3.1.FFN.binary_conv``).
    """
    inputs, img_input = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        default_size=224,
        min_size=32,
    )
    if weights == "imagenet":
        raise ValueError(
            "No ImageNet weights were released for BNext-18 (official issue #6); use weights=None "
            "or a Keras weights file."
        )
    _check_input_size(img_input, 32, "BNext-18")
    x = tf.keras.layers.ZeroPadding2D(3, name="pad1")(img_input)
    x = tf.keras.layers.Conv2D(64, 7, strides=2, padding="valid", use_bias=False, name="conv1")(x)
    x = batch_norm("bn1")(x)
    x = SymmetricMaxPool2D(3, 2, padding=1, name="maxpool")(x)
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            x = bnext18_attention_unit(
                x, width, stride=stride, name=f"{prefix}.Attention", zero_sign=zero_sign
            )
            x = ffn_3x3_unit(x, name=f"{prefix}.FFN", zero_sign=zero_sign, clamp_scale=True)
    x = prelu("prelu")(x)
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = tf.keras.layers.Dense(num_classes, name="fc")(x)
    model = ZooModel(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights, allow_missing_head=not include_top)
    return model


MODELS = {
    "bnext-t": BNextT,
    "bnext-s": BNextS,
    "bnext-m": BNextM,
    "bnext-l": BNextL,
    "bnext-18": BNext18,
}


# ------------------------------------------------------------------------------------------------
# Official weights: the PyTorch state_dict of github.com/hpi-xnor/BNext -> this Keras model.
#
# The conversion follows the official code exactly:
# * the unit type of ``feature.<i>.Attention`` comes from the block index (block 1 and odd i:
#   FFN_3x3; even i: ELM-Attention), never from the keys, which are identical for both;
# * every ``binary_conv.temperature`` must be < 1e-7 (the trained state, where the weights are
#   binarized with sign); earlier training states use soft weights that a binary conv cannot hold;
# * ``num_batches_tracked``, ``binary_activation.temperature``, ``feature.0.prelu.weight`` and the
#   ``activation1.weight`` of FFN units do nothing in the official forward pass and are skipped;
# * kernels OIHW -> HWIO, ``fc.weight`` transposed, [1, C, 1, 1] tensors reshaped to [C], PReLU
#   slopes to [1, 1, C].
# Every checkpoint key is consumed or explicitly skipped and every Keras weight is assigned, or a
# ValueError names what is wrong; nothing is assigned unless everything checks out.

#: The official weight binarizer uses sign(w) once its temperature is below this.
TEMPERATURE_THRESHOLD = 1e-7

_BN_KEYS = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)


@dataclasses.dataclass(kw_only=True)
class BNextImportReport(ImportReport):
    """What :func:`load_weights` did with an official BNext checkpoint."""

    stages: List[int]
    variant: Optional[str]
    zero_latent_weights: int
    max_temperature: float


# ------------------------------------------------------------------------------------------------
# Reading the source.


def _to_array(key, value) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, if torch is around
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"checkpoint entry {key!r} is not a numeric tensor (got {type(value).__name__}).")
    return array


def official_state(content) -> Dict[str, np.ndarray]:
    """The official state_dict in ``content`` (what a checkpoint reader returned, or a mapping of
    state_dict keys to arrays or torch tensors) as ``{key without 'module.': array}``.

    A training checkpoint dict (``{"epoch": ..., "state_dict": {...}}``) is unwrapped.
    """
    state = content
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # training checkpoint dict
    if not isinstance(state, Mapping):
        raise ValueError(
            f"expected a BNext state_dict (a mapping of names to tensors), got {type(state).__name__}."
        )
    keys = [k for k in state if isinstance(k, str)]
    if len(keys) != len(state):
        raise ValueError("BNext state_dict keys must be strings.")
    prefixed = [k.startswith("module.") for k in keys]
    if any(prefixed) and not all(prefixed):
        raise ValueError(
            "some keys have the 'module.' prefix and some do not; not a single model's state_dict."
        )
    strip = len("module.") if keys and all(prefixed) else 0
    return {k[strip:]: _to_array(k, v) for k, v in state.items()}


# ------------------------------------------------------------------------------------------------
# Layouts.


def checkpoint_stages(state: Mapping) -> List[int]:
    """The stage list of a BNext state_dict, read from its tensor shapes."""
    if "feature.0.conv1.weight" not in state:
        if "conv1.weight" in state and any(k.startswith("layer0.") for k in state):
            raise ValueError(
                "this is a BNext-18 checkpoint; load_bnext_torch imports BNext T / S / M / L layouts."
            )
        raise ValueError("not a BNext checkpoint: 'feature.0.conv1.weight' is missing.")
    stages = [int(np.shape(state["feature.0.conv1.weight"])[0])]
    i = 1
    while f"feature.{i}.Attention.binary_conv.weight" in state:
        channels = int(np.shape(state[f"feature.{i}.Attention.binary_conv.weight"])[0])
        stages.append(2 * channels if f"feature.{i}.FFN_1.binary_conv.weight" in state else channels)
        i += 1
    return stages


def model_stages(model: tf.keras.Model) -> List[int]:
    """The stage list of a Keras model built by :func:`larq_poke.zoo.BNext`."""
    try:
        stages = [model.get_layer("feature.0.conv1").filters]
    except ValueError:
        raise ValueError(
            f"model {model.name!r} is not a BNext model built by larq_poke.zoo.BNext "
            "(no layer 'feature.0.conv1')."
        ) from None
    i = 1
    names = {layer.name for layer in model.layers}
    while f"feature.{i}.Attention.binary_conv" in names:
        channels = model.get_layer(f"feature.{i}.Attention.binary_conv").filters
        stages.append(2 * channels if f"feature.{i}.FFN_1.binary_conv" in names else channels)
        i += 1
    return stages


def _describe(stages: List[int]) -> str:
    name = variant_name(stages)
    return f"{name} {stages}" if name else f"stage list {stages}"


def _unit_plan(stages: List[int]) -> List[Tuple[str, str]]:
    """(key prefix, kind) of every unit; kind is 'elm', 'ffn_3x3' or 'ffn_1x1'."""
    plan = []
    for spec in block_specs(stages):
        plan.append((f"feature.{spec.index}.Attention", spec.token_mixer))
        for mixer in spec.channel_mixers:
            plan.append((f"feature.{spec.index}.{mixer}", "ffn_1x1"))
    return plan


# ------------------------------------------------------------------------------------------------
# The conversion.


class _Plan:
    """Collects (layer, {weight name: array}) assignments and the keys they consume."""

    def __init__(self, model: tf.keras.Model, state: Dict[str, np.ndarray]):
        self.model = model
        self.state = state
        self.assign: Dict[str, Dict[str, np.ndarray]] = {}
        self.consumed: set = set()
        self.skipped: set = set()

    def take(self, key: str) -> np.ndarray:
        if key not in self.state:
            raise ValueError(f"checkpoint is missing {key!r}.")
        value = self.state[key]
        if not np.all(np.isfinite(value)):
            raise ValueError(f"checkpoint entry {key!r} contains NaN or infinite values.")
        self.consumed.add(key)
        return value.astype(np.float32)

    def skip(self, key: str) -> None:
        if key not in self.state:
            raise ValueError(f"checkpoint is missing {key!r}.")
        self.skipped.add(key)

    def put(self, layer_name: str, weight: str, value: np.ndarray, key: str) -> None:
        self.assign.setdefault(layer_name, {})[weight] = (value, key)

    # ---- building blocks

    def per_channel(self, key: str) -> np.ndarray:
        value = self.take(key)
        if value.ndim not in (1, 4) or (
            value.ndim == 4 and value.shape[0] * value.shape[2] * value.shape[3] != 1
        ):
            raise ValueError(
                f"checkpoint entry {key!r} has shape {value.shape}, expected [C] or [1, C, 1, 1]."
            )
        return value.reshape(-1)

    def conv(self, layer: str, key: str, bias: bool = False) -> None:
        weight = self.take(f"{key}.weight")
        if weight.ndim != 4:
            raise ValueError(
                f"checkpoint entry '{key}.weight' has shape {weight.shape}, expected a 4-D OIHW kernel."
            )
        self.put(layer, "kernel", weight.transpose(2, 3, 1, 0), f"{key}.weight")
        if bias:
            self.put(layer, "bias", self.take(f"{key}.bias"), f"{key}.bias")

    def batch_norm(self, layer: str, key: str) -> None:
        for keras_name, torch_name in _BN_KEYS:
            self.put(layer, keras_name, self.take(f"{key}.{torch_name}"), f"{key}.{torch_name}")
        self.skip(f"{key}.num_batches_tracked")

    def prelu(self, layer: str, key: str) -> None:
        alpha = self.take(f"{key}.weight")
        self.put(layer, "alpha", alpha.reshape(1, 1, -1), f"{key}.weight")

    def unit(self, prefix: str, kind: str) -> float:
        self.put(f"{prefix}.move", "bias", self.per_channel(f"{prefix}.move.bias"), f"{prefix}.move.bias")
        self.put(f"{prefix}.scale", "scale", self.per_channel(f"{prefix}.scale"), f"{prefix}.scale")
        temperature = self.take(f"{prefix}.binary_conv.temperature")
        if temperature.size != 1:
            raise ValueError(
                f"checkpoint entry '{prefix}.binary_conv.temperature' has shape "
                f"{temperature.shape}, expected [1]."
            )
        temperature = float(temperature.reshape(()))
        if not temperature < TEMPERATURE_THRESHOLD:
            raise ValueError(
                f"'{prefix}.binary_conv.temperature' is {temperature:g} >= {TEMPERATURE_THRESHOLD:g}: this "
                "checkpoint is from early training, where the official model uses soft weights "
                "clamp(w / T, -1, 1) instead of sign(w); a binary Keras conv cannot represent them."
            )
        self.conv(f"{prefix}.binary_conv", f"{prefix}.binary_conv")
        self.skip(f"{prefix}.binary_activation.temperature")
        self.batch_norm(f"{prefix}.norm1", f"{prefix}.norm1")
        self.batch_norm(f"{prefix}.norm2", f"{prefix}.norm2")
        self.prelu(f"{prefix}.activation2", f"{prefix}.activation2")
        if kind == "elm":
            self.prelu(f"{prefix}.activation1", f"{prefix}.activation1")
        else:
            self.skip(f"{prefix}.activation1.weight")  # exists, unused outside ELM units
        self.conv(f"{prefix}.se.se.1", f"{prefix}.se.se.1", bias=True)
        self.conv(f"{prefix}.se.se.3", f"{prefix}.se.se.3", bias=True)
        return temperature


def _weight_name(variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def load_bnext_torch(model: tf.keras.Model, source, *, allow_missing_head: bool = True) -> BNextImportReport:
    """Assign the official BNext weights in ``source`` to ``model``.

    ``source``: a ``.pth`` / ``.pth.tar`` / ``.npz`` file or a mapping of official state_dict keys
    (with or without the ``module.`` prefix of the released files) to arrays or torch tensors.
    ``model`` must be built by :func:`BNext` with the checkpoint's stage list. Without a
    classifier (``include_top=False``) the checkpoint's ``fc`` entries are skipped, unless
    ``allow_missing_head=False``. Returns a :class:`BNextImportReport`; raises ``ValueError``
    (``CheckpointError`` for unreadable or unsafe files) naming the problem, in which case the
    model is left unchanged. The conversion rules are in the section comment above.
    """
    return load_weights(model, source, allow_missing_head=allow_missing_head, family="bnext")


def _assign(model: tf.keras.Model, state: Dict[str, np.ndarray], allow_missing_head: bool) -> BNextImportReport:
    want = model_stages(model)
    have = checkpoint_stages(state)
    if have != want:
        raise ValueError(
            f"checkpoint is BNext {_describe(have)} but the model is BNext {_describe(want)}; "
            "build the matching variant."
        )
    plan = _Plan(model, state)
    plan.conv("feature.0.conv1", "feature.0.conv1")
    plan.batch_norm("feature.0.bn1", "feature.0.bn1")
    plan.skip("feature.0.prelu.weight")  # constructed by the official stem, never called
    temperatures = [plan.unit(prefix, kind) for prefix, kind in _unit_plan(have)]
    plan.prelu("prelu", "prelu")
    names = {layer.name for layer in model.layers}
    if "fc" in names:
        fc = plan.take("fc.weight")
        if fc.ndim != 2:
            raise ValueError(
                f"checkpoint entry 'fc.weight' has shape {fc.shape}, expected [classes, features]."
            )
        plan.put("fc", "kernel", fc.T, "fc.weight")
        plan.put("fc", "bias", plan.take("fc.bias"), "fc.bias")
    elif allow_missing_head:
        plan.skip("fc.weight")
        plan.skip("fc.bias")
    else:
        raise ValueError(
            "the checkpoint has classifier weights (fc) but the model has no classifier; pass "
            "allow_missing_head=True to skip them."
        )

    unexpected = sorted(set(state) - plan.consumed - plan.skipped)
    if unexpected:
        more = f" (and {len(unexpected) - 10} more)" if len(unexpected) > 10 else ""
        raise ValueError(
            f"checkpoint has entries that a BNext {_describe(have)} does not use: {unexpected[:10]}{more}."
        )

    # Check every assignment against the Keras variables before touching any of them.
    updates = []
    assigned_variables = set()
    for layer_name, weights in plan.assign.items():
        if layer_name not in names:
            raise ValueError(f"model has no layer {layer_name!r}; was it built by larq_poke.zoo.BNext?")
        layer = model.get_layer(layer_name)
        by_name = {_weight_name(v): v for v in layer.weights}
        for weight_name, (value, key) in weights.items():
            if weight_name not in by_name:
                raise ValueError(f"layer {layer_name!r} has no weight {weight_name!r} (for {key!r}).")
            variable = by_name[weight_name]
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"checkpoint entry {key!r} gives shape {value.shape} for {variable.name} "
                    f"but the model expects {tuple(variable.shape)}."
                )
            updates.append((variable, value))
            assigned_variables.add(id(variable))
    unassigned = [v.name for v in model.weights if id(v) not in assigned_variables]
    if unassigned:
        raise ValueError(f"no checkpoint entry for the model weights {unassigned[:10]}.")

    tf.keras.backend.batch_set_value(updates)
    zero_weights = sum(
        int(np.count_nonzero(state[f"{prefix}.binary_conv.weight"] == 0)) for prefix, _ in _unit_plan(have)
    )
    return BNextImportReport(
        family="bnext",
        source="mapping",
        format="mapping",
        stages=have,
        variant=variant_name(have),
        keys=len(state),
        assigned_keys=len(plan.consumed),
        skipped_keys=len(plan.skipped),
        keras_weights=len(updates),
        zero_latent_weights=zero_weights,
        max_temperature=max(temperatures) if temperatures else 0.0,
    )


def _owns(model) -> bool:
    names = {layer.name for layer in model.layers}
    return "feature.0.conv1" in names or ("conv1" in names and "layer0.0.Attention.binary_conv" in names)


_SIZE_OF = {zoo: size for size, zoo in ZOO_NAMES.items()}


def _check_variant(zoo_name: str, state) -> None:
    expected = STAGES[_SIZE_OF[zoo_name]]
    found = checkpoint_stages(state)
    if found != expected:
        found_name = variant_name(found)
        raise ValueError(
            f"not a {zoo_name} checkpoint: its stage list is {found}"
            f"{f' ({found_name})' if found_name else ''}, {zoo_name} has {expected}."
        )


def _build_full(zoo_name: str):
    return BNext(_SIZE_OF[zoo_name], input_shape=(224, 224, 3), include_top=True, num_classes=1000)


register_family(
    Family(
        name="bnext",
        official_format="torch",
        owns=_owns,
        official_state=official_state,
        check_variant=_check_variant,
        assign=_assign,
        build=_build_full,
    )
)
