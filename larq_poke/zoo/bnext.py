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
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

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
from larq_poke.zoo import gdrive  # noqa: F401  (registers the gdrive:// transport)
from larq_poke.zoo import weights as weights_registry
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
    "converted_weights_path",
    "import_checkpoint",
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

_TOP1 = {"tiny": 72.4, "small": 76.1, "middle": 78.3, "large": 80.6}

# Google Drive file ids of the official checkpoints (README of github.com/hpi-xnor/BNext).
_DRIVE_IDS = {
    "tiny": "1CJ0XOEhoHuNe-tDYJaAOd1j4YyNXuyas",
    "small": "1NcVM5Qb1K9Oq_sjEA1lGtp7kVbsfTLsa",
    "middle": "1xyKnA6SsG4ZpguNQQrB6Yz-J5dzXYfKE",
    "large": "1XGKcX2Zl_fIU9wPBDjTTxstOBfwQH8xc",
}

#: Bump when the conversion changes, so that stale converted weights in the cache are not reused.
CONVERTED_FORMAT_VERSION = 1

for _size, _zoo_name in ZOO_NAMES.items():
    weights_registry.register(
        weights_registry.WeightsEntry(
            model=_zoo_name,
            variant="imagenet",
            url=f"gdrive://{_DRIVE_IDS[_size]}",
            file_name=f"bnext_{_size}_checkpoint.pth.tar",
            format="bnext_torch",
            sha256=None,
            source="github.com/hpi-xnor/BNext (official PyTorch checkpoint on Google Drive)",
            license="see github.com/hpi-xnor/BNext",
            top1=_TOP1[_size],
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
    imagenet = _ImagenetWeights(zoo_name) if weights == "imagenet" else None

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
    if weights is not None:
        _load_weights(model, weights, imagenet, include_top)
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
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None, **kwargs
):
    """BNext-T (tiny): 72.4 % top-1, 30.9 M params, 4.817 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "tiny",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        **kwargs,
    )


def BNextS(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None, **kwargs
):
    """BNext-S (small): 76.1 % top-1, 68.6 M params, 10.838 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "small",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        **kwargs,
    )


def BNextM(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None, **kwargs
):
    """BNext-M (middle): 78.3 % top-1, 134.5 M params, 20.087 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "middle",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        **kwargs,
    )


def BNextL(
    *, input_shape=None, input_tensor=None, include_top=True, num_classes=1000, weights=None, **kwargs
):
    """BNext-L (large): 80.6 % top-1, 326.5 M params, 52.151 G BOPs at 224. See :func:`BNext`."""
    return BNext(
        "large",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        **kwargs,
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
    released, so ``weights`` is ``None`` or a Keras weights file. Layer names follow the official
    module paths (``layer1.0.Attention.binary_conv``).
    """
    if weights == "imagenet":
        raise ValueError(
            "No ImageNet weights were released for BNext-18 (official issue #6); use weights=None "
            "or a Keras weights file."
        )
    inputs, img_input = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        default_size=224,
        min_size=32,
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
        _load_keras_weights(model, os.fspath(weights), include_top)
    return model


MODELS = {
    "bnext-t": BNextT,
    "bnext-s": BNextS,
    "bnext-m": BNextM,
    "bnext-l": BNextL,
    "bnext-18": BNext18,
}

_SIZE_OF = {zoo: size for size, zoo in ZOO_NAMES.items()}


# ------------------------------------------------------------------------------------------------
# Weights: imagenet download / conversion / cache, explicit files.


def converted_weights_path(entry: weights_registry.WeightsEntry) -> Path:
    """Where the Keras weights converted from ``entry``'s checkpoint are cached."""
    return (
        weights_registry.cache_dir()
        / entry.model
        / entry.variant
        / f"{entry.model}_{entry.variant}_keras_v{CONVERTED_FORMAT_VERSION}.h5"
    )


def _save_weights_atomically(model: tf.keras.Model, dest: Path) -> Path:
    with weights_registry.atomic_path(dest, suffix=".part.h5") as tmp_name:
        model.save_weights(tmp_name, save_format="h5")
    return dest


def _read_official_state(model_name: str, checkpoint) -> Dict:
    """Read ``checkpoint`` and check that it has the layout of ``model_name`` (no model needed)."""
    from larq_poke.converters.bnext_torch import checkpoint_stages, read_bnext_state_dict

    state = read_bnext_state_dict(checkpoint)
    expected = STAGES[_SIZE_OF[model_name]]
    try:
        found = checkpoint_stages(state)
    except ValueError as err:
        raise ValueError(f"{checkpoint}: {err}") from err
    if found != expected:
        found_name = variant_name(found)
        raise ValueError(
            f"{checkpoint} is not a {model_name} checkpoint: its stage list is {found}"
            f"{f' ({found_name})' if found_name else ''}, {model_name} has {expected}."
        )
    return state


def _convert_and_cache(model_name: str, state, entry, model=None) -> Path:
    from larq_poke.converters.bnext_torch import load_bnext_torch

    if model is None:
        model = BNext(_SIZE_OF[model_name], input_shape=(224, 224, 3), include_top=True, num_classes=1000)
    load_bnext_torch(model, state)
    return _save_weights_atomically(model, converted_weights_path(entry))


def import_checkpoint(model_name: str, checkpoint, *, variant: str = "imagenet", model=None) -> Path:
    """Convert an official checkpoint for ``model_name`` and cache the Keras weights.

    This is what ``larq-poke weights import bnext-t FILE`` runs. The checkpoint's structure is
    checked (it must be the official layout of that variant, see
    :func:`larq_poke.converters.load_bnext_torch`) and, if the registry pins a sha256, its
    digest. Nothing is cached when a check fails. Returns the cached file.
    """
    entry = weights_registry.get(model_name, variant)
    if entry.format != "bnext_torch":
        raise ValueError(f"{model_name}/{variant} is not a BNext PyTorch checkpoint entry.")
    if entry.sha256 is not None:
        actual = weights_registry.sha256_of(checkpoint)
        if actual != entry.sha256.lower():
            raise weights_registry.WeightsError(
                f"sha256 mismatch for {checkpoint}: expected {entry.sha256}, got {actual}. "
                "It is not the registered file; nothing was cached."
            )
    state = _read_official_state(model_name, checkpoint)
    return _convert_and_cache(model_name, state, entry, model)


class _ImagenetWeights:
    """The imagenet weights of an official variant, prepared before the model is built.

    Either the cached converted Keras file, or a downloaded checkpoint that has been read and
    checked already (so a bad download fails before an expensive model build). A downloaded file
    that fails any check is deleted: nothing stays in the cache.
    """

    def __init__(self, zoo_name: str):
        self.zoo_name = zoo_name
        self.entry = weights_registry.get(zoo_name, "imagenet")
        self.converted = converted_weights_path(self.entry)
        self.raw = None
        self.state = None
        if not self.converted.is_file():
            self.raw = weights_registry.fetch(self.entry)
            try:
                self.state = _read_official_state(zoo_name, self.raw)
            except Exception:
                self.raw.unlink(missing_ok=True)
                raise

    def keras_file(self, model=None) -> Path:
        if self.state is not None:
            try:
                _convert_and_cache(self.zoo_name, self.state, self.entry, model)
            except Exception:
                self.raw.unlink(missing_ok=True)
                raise
            self.state = None
        return self.converted


def _file_kind(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras_h5"
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return "checkpoint"
    raise ValueError(
        f"{path}: unknown weights file format. Expected a Keras .h5 weights file, an official "
        "PyTorch checkpoint (.pth / .pth.tar) or an .npz of its tensors."
    )


def _load_keras_weights(model: tf.keras.Model, path: str, include_top: bool) -> None:
    if _file_kind(path) != "keras_h5":
        raise ValueError(f"{path}: expected a Keras .h5 weights file.")
    if include_top:
        model.load_weights(path)
        return
    import h5py

    with h5py.File(path, "r") as f:
        names = {n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("layer_names", [])}
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in names]
    if missing:
        raise ValueError(
            f"{path} has no weights for layers {missing[:5]}{' ...' if len(missing) > 5 else ''}."
        )
    model.load_weights(path, by_name=True)


def _load_weights(
    model: tf.keras.Model, weights, imagenet: Optional[_ImagenetWeights], include_top: bool
) -> None:
    from larq_poke.converters.bnext_torch import load_bnext_torch

    if imagenet is not None:
        full = include_top and model.output_shape[-1] == 1000
        path = imagenet.keras_file(model=model if full else None)
        _load_keras_weights(model, os.fspath(path), include_top)
        return
    path = os.fspath(weights)
    if _file_kind(path) == "keras_h5":
        _load_keras_weights(model, path, include_top)
    else:
        load_bnext_torch(model, path)
