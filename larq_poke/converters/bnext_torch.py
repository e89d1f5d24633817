"""Import the official BNext PyTorch weights into a :func:`larq_poke.zoo.BNext` model.

```python
from larq_poke.zoo import BNextT
from larq_poke.converters import load_bnext_torch
model = BNextT()
report = load_bnext_torch(model, "bnext_tiny_checkpoint.pth.tar")   # no torch needed
report.to_dict()
```

``source`` may be a mapping of official state_dict keys to arrays (torch tensors work too), with
or without the ``module.`` prefix of the released files; an ``.npz`` with those keys; or a
``.pth`` / ``.pth.tar`` file holding a plain state_dict or a training checkpoint dict with a
``state_dict`` entry. Files are read by :mod:`larq_poke.converters.torch_checkpoint`, which never
executes pickled code.

The conversion follows the official code exactly:

* the unit type of ``feature.<i>.Attention`` comes from the block index (block 1 and odd i:
  FFN_3x3; even i: ELM-Attention), never from the keys, which are identical for both;
* every ``binary_conv.temperature`` must be < 1e-7 (the trained state, where the weights are
  binarized with sign); earlier training states use soft weights that a binary conv cannot hold;
* ``num_batches_tracked``, ``binary_activation.temperature``, ``feature.0.prelu.weight`` and the
  ``activation1.weight`` of FFN units do nothing in the official forward pass and are skipped;
* kernels OIHW -> HWIO, ``fc.weight`` transposed, [1, C, 1, 1] tensors reshaped to [C], PReLU
  slopes to [1, 1, C].

Every checkpoint key is consumed or explicitly skipped and every Keras weight is assigned, or a
``ValueError`` names what is wrong (missing / unexpected keys, a shape, a checkpoint of another
variant, a non-finite value). Nothing is assigned unless everything checks out.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Mapping
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from larq_poke.converters.torch_checkpoint import CheckpointError, load_torch_checkpoint
from larq_poke.zoo.bnext import block_specs, variant_name

__all__ = ["load_bnext_torch", "read_bnext_state_dict", "BNextImportReport", "checkpoint_stages"]

#: The official weight binarizer uses sign(w) once its temperature is below this.
TEMPERATURE_THRESHOLD = 1e-7

_BN_KEYS = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)


@dataclasses.dataclass
class BNextImportReport:
    """What :func:`load_bnext_torch` did."""

    stages: List[int]
    variant: Optional[str]
    keys: int
    assigned_keys: int
    skipped_keys: int
    keras_weights: int
    zero_latent_weights: int
    max_temperature: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------
# Reading the source.


def _to_array(key, value) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, if torch is around
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"checkpoint entry {key!r} is not a numeric tensor (got {type(value).__name__}).")
    return array


def read_bnext_state_dict(source) -> Dict[str, np.ndarray]:
    """The official state_dict in ``source`` as ``{key without 'module.': array}``."""
    label = "mapping"
    if isinstance(source, Mapping):
        state = source
    else:
        path = os.fspath(source)
        label = path
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint {path!r} does not exist or is not a file.")
        if _is_npz(path):
            try:
                with np.load(path, allow_pickle=False) as data:
                    state = {k: data[k] for k in data.files}
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
                raise CheckpointError(f"{path}: unreadable .npz ({err})") from err
        else:
            state = load_torch_checkpoint(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # training checkpoint dict
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{label}: expected a state_dict (a mapping of names to tensors), got {type(state).__name__}."
        )
    keys = [k for k in state if isinstance(k, str)]
    if len(keys) != len(state):
        raise ValueError(f"{label}: state_dict keys must be strings.")
    prefixed = [k.startswith("module.") for k in keys]
    if any(prefixed) and not all(prefixed):
        raise ValueError(
            f"{label}: some keys have the 'module.' prefix and some do not; not a single model's state_dict."
        )
    strip = len("module.") if keys and all(prefixed) else 0
    return {k[strip:]: _to_array(k, v) for k, v in state.items()}


def _is_npz(path: str) -> bool:
    with open(path, "rb") as f:
        if not f.read(4).startswith(b"PK"):
            return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


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


def load_bnext_torch(model: tf.keras.Model, source) -> BNextImportReport:
    """Assign the official BNext weights in ``source`` to ``model`` (see the module docstring).

    ``model`` must be built by :func:`larq_poke.zoo.BNext` with the checkpoint's stage list.
    Without a classifier (``include_top=False``) the checkpoint's ``fc`` entries are skipped.
    Returns a :class:`BNextImportReport`; raises ``ValueError`` (``CheckpointError`` for unreadable
    or unsafe files) naming the problem, in which case the model is left unchanged.
    """
    state = read_bnext_state_dict(source)
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
    else:
        plan.skip("fc.weight")
        plan.skip("fc.bias")

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
        stages=have,
        variant=variant_name(have),
        keys=len(state),
        assigned_keys=len(plan.consumed),
        skipped_keys=len(plan.skipped),
        keras_weights=len(updates),
        zero_latent_weights=zero_weights,
        max_temperature=max(temperatures) if temperatures else 0.0,
    )
