"""PokeBNN (Zhang, Zhang & Lew, CVPR 2022) in the keras.applications / larq-zoo style.

| model | top-1 (ImageNet) | ACE (10^9, 224×224) | params |
|---|---|---|---|
| PokeBNN-0.5x | 65.2 % | 1.410 | 7.21 M |
| PokeBNN-0.75x | 70.5 % ("small PokeBNN", abstract) | 2.588 | 15.37 M |
| PokeBNN-1.0x | 73.4 % | 4.223 | 26.57 M |
| PokeBNN-2.0x | not published in an available source | 15.331 | 101.7 M |

Top-1 values are the published ones (paper abstract, paperswithcode); ACE and parameter counts
are computed from the official code. **No ImageNet-trained PokeBNN weights are published by its
authors**: ``weights="imagenet"`` raises an error naming the alternatives.

```python
from larq_poke.zoo import PokeBNN
model = PokeBNN(1.0)                                   # random init, 224x224, 1000 classes
model.summary()                                        # + ACE / BOPs cost table
features = PokeBNN(0.5, include_top=False, input_shape=(160, 160, 3))
model = PokeBNN(0.5, weights="checkpoint_125000")      # an official Flax training checkpoint
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Dict

import numpy as np
import tensorflow as tf

from larq_poke.layers.pokebnn import (
    eight_bit_classifier,
    poke_conv,
    poke_init,
    pokeconv_names,
    pokeconv_parts,
    pokeinit_parts,
)
from larq_poke.zoo.loading import Family, ImportReport, load_weights, register_family
from larq_poke.zoo.zoo_model import ZooModel, model_input, width_label, width_variant

__all__ = ["PokeBNN", "MODELS", "stage_plan", "load_pokebnn_flax", "official_state", "official_variable_map"]

# (number of blocks, base width) of the four stages: the ResNet-50 pattern.
_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
_STEM_CHANNELS = 64

NO_IMAGENET_WEIGHTS = (
    "No ImageNet-trained PokeBNN weights are published by its authors (google/aqt releases code "
    "and a training recipe, not checkpoints), so weights='imagenet' is not available. "
    "Alternatives: pass weights=<path> with a checkpoint you trained with the official code "
    "(flax.training.checkpoints file, or an .npz of its variables) or a Keras weights file, or "
    "train one with larq_poke's PokeBNN recipe."
)


def stage_plan(width_multiplier: float):
    """The 16 blocks as ``(index, filters F, stride)``; F = int(base × width_multiplier)."""
    plan = []
    index = 0
    for stage, (blocks, base) in enumerate(_STAGES):
        filters = int(base * width_multiplier)
        for b in range(blocks):
            strides = 2 if stage > 0 and b == 0 else 1
            plan.append((index, filters, strides))
            index += 1
    return plan


def _check_width(width_multiplier: float) -> None:
    """Reject widths PokeBNN's shortcut and SE rules cannot build, naming the problem."""
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}.")
    cin = _STEM_CHANNELS
    for index, filters, _ in stage_plan(width_multiplier):
        if filters < 8:
            raise ValueError(
                f"width_multiplier={width_multiplier} gives {filters} filters in block {index}; "
                "PokeBNN's SE needs at least 8 input channels per PokeConv."
            )
        if (4 * filters) % cin:
            raise ValueError(
                f"width_multiplier={width_multiplier} is not supported: block {index}'s shortcut "
                f"would tile {cin} channels to {4 * filters}, which is not a multiple."
            )
        cin = 4 * filters


def PokeBNN(
    width_multiplier: float = 1.0,
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights=None,
    name: str | None = None,
) -> tf.keras.Model:
    """Build PokeBNN with the given width multiplier.

    # Arguments
    width_multiplier: scales the stage widths 64/128/256/512 (the stem stays at 64 channels);
        0.5, 0.75, 1.0, 1.5 and 2.0 are the documented widths, others work when the
        shortcut rules allow them (ValueError otherwise).
    input_shape: (height, width, 3); default (224, 224, 3) with the top, (None, None, 3)
        without. The network downsamples 32×; at least 32×32.
    input_tensor: optional Keras tensor to build on.
    include_top: add the global mean + 8-bit dense classifier; without it the model returns
        the last feature map (2048·m channels).
    num_classes: classifier outputs (logits, no softmax).
    weights: None (random init), "imagenet" (not published: raises), or a path to a Keras
        ``.h5`` weights file, an official Flax checkpoint, or an ``.npz`` of official variables.
    """
    if weights == "imagenet":
        # Validate the arguments first so that the most specific error is raised.
        model_input(include_top=include_top, weights=weights, num_classes=num_classes,
                    input_shape=input_shape, input_tensor=input_tensor)
        raise ValueError(NO_IMAGENET_WEIGHTS)
    _check_width(width_multiplier)
    inputs, x = model_input(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        min_size=32,
    )
    x = poke_init(x, filters=_STEM_CHANNELS, groups=32, name="init")
    for index, filters, strides in stage_plan(width_multiplier):
        block_input = x
        x = poke_conv(x, filters, 1, name=f"resblock{index}-1")
        x = poke_conv(x, filters, 3, strides=strides, name=f"resblock{index}-2")
        x = poke_conv(
            x,
            4 * filters,
            1,
            zero_init_bn=True,
            block_input=block_input,
            block_strides=strides,
            name=f"resblock{index}-3",
        )
    if include_top:
        x = eight_bit_classifier(x, num_classes, name="dense")
    model = ZooModel(inputs, x, name=name or f"pokebnn-{width_label(width_multiplier)}x")
    if weights is not None:
        load_weights(model, weights, allow_missing_head=not include_top)
    return model


#: zoo names → constructors taking PokeBNN's keyword arguments.
MODELS = {f"pokebnn-{width_label(w)}x": width_variant("PokeBNN", PokeBNN, w) for w in (0.5, 0.75, 1.0, 1.5, 2.0)}


# ------------------------------------------------------------------------------------------------
# Official variables: google/aqt's Flax PokeBNN -> this Keras model.
#
# The official variables use flattened Flax names: ``params/<module>/<name>``,
# ``batch_stats/<bn>/{mean,var}`` and ``get_bounds/<layer>/GetBounds_0/bounds``. Sources: a mapping
# of those names to arrays, an ``.npz`` of them, or a ``flax.training.checkpoints`` file of a
# TrainState with ``params`` and ``mutable_vars`` (``batch_stats``, ``get_bounds``); optimizer
# state, step and EMA statistics are ignored. Every official variable must be consumed and every
# Keras weight assigned; anything missing, extra or mis-shaped raises a ValueError naming it.

# The variable collections of the official model; other keys of an .npz (inputs, outputs,
# intermediates of a recorded run) are not variables.
_COLLECTIONS = ("params", "batch_stats", "get_bounds")
# Official entries that carry no inference information.
_IGNORED = re.compile(r"^get_bounds/.+/GetBounds_0/stats(/|$)")


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _official_names(state: Mapping) -> Dict[str, np.ndarray]:
    """Flatten a TrainState (or a variables dict) to the official ``collection/...`` names."""
    if "params" in state and "mutable_vars" in state:  # TrainState of the official train.py
        params = state["params"]
        if set(params) == {"params"}:
            params = params["params"]
        variables = {"params": params, **state["mutable_vars"]}
    elif "params" in state:  # a plain {'params', 'batch_stats', 'get_bounds'} variables dict
        variables = {k: v for k, v in state.items() if k in ("params", "batch_stats", "get_bounds")}
    else:
        raise ValueError(
            "The checkpoint has no 'params' collection; expected a TrainState with 'params' and "
            f"'mutable_vars' or a variables dict. Top-level keys: {sorted(state)}."
        )
    return _flatten(variables)


def official_state(content) -> Dict[str, np.ndarray]:
    """Official flattened names (``params/...``, ``batch_stats/...``, ``get_bounds/...``) to arrays,
    from a Flax TrainState / variables dict (nested) or an already flat mapping (``.npz``)."""
    if not isinstance(content, Mapping):
        raise ValueError(f"expected PokeBNN variables (a mapping), got {type(content).__name__}.")
    flat = dict(content)
    if any(isinstance(v, Mapping) for v in flat.values()):
        flat = _official_names(flat)
    return {
        k: v for k, v in flat.items() if k.split("/", 1)[0] in _COLLECTIONS and not _IGNORED.match(k)
    }


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def official_variable_map(model):
    """``{official name: (keras variable, transform)}`` for a larq_poke PokeBNN model.

    ``transform`` turns the official array into the Keras value; the binary convs' constant
    activation bounds map to ``None`` and are checked instead of assigned.
    """
    def bn(prefix, layer):
        return {
            f"params/{prefix}/scale": (layer.gamma, None),
            f"params/{prefix}/bias": (layer.beta, None),
            f"batch_stats/{prefix}/mean": (layer.moving_mean, None),
            f"batch_stats/{prefix}/var": (layer.moving_variance, None),
        }

    def dprelu(index, layer):
        return {
            f"params/DPReLU_{index}/{n}": (getattr(layer, n), None)
            for n in ("bias_x", "bias_y", "pos_slope", "neg_slope")
        }

    def bounds(official, quantizer):
        return {f"get_bounds/{official}/GetBounds_0/bounds": (quantizer.bounds, np.ravel)}

    def depthwise(kernel):
        return lambda a: np.reshape(a, kernel.shape)

    mapping = {}
    stem = pokeinit_parts(model)
    if stem is None:
        raise ValueError(f"{model.name} is not a larq_poke PokeBNN model (no 'init' stem layers).")
    mapping["params/init_conv/kernel"] = (stem.conv.kernel, None)
    mapping.update(bounds("init_conv", stem.conv.input_quantizer))
    mapping.update(bn("init_bn", stem.bn))
    mapping.update(dprelu(0, stem.dprelu))
    mapping["params/init_conv_group/kernel"] = (
        stem.conv_group.depthwise_kernel,
        depthwise(stem.conv_group.depthwise_kernel),
    )
    mapping.update(bounds("init_conv_group", stem.conv_group.input_quantizer))
    mapping.update(bn("init_bn_group", stem.bn_group))
    mapping.update(dprelu(1, stem.dprelu_group))

    for n in pokeconv_names(model):
        match = re.fullmatch(r"resblock(\d+)-([123])", n)
        if match is None:
            raise ValueError(f"Unexpected PokeConv unit name {n!r}; expected resblock<i>-<j>.")
        i, j = int(match.group(1)), int(match.group(2))
        unit = pokeconv_parts(model, n)
        mapping[f"params/conv-{n}/kernel"] = (unit.conv.kernel, None)
        mapping[f"get_bounds/conv-{n}/GetBounds_0/bounds"] = (None, unit.activation_bound)
        mapping.update(bn(f"bn{n}", unit.bn))
        mapping.update(dprelu(2 + 3 * i + (j - 1), unit.dprelu))
        for fc, official in ((unit.se_fc1, f"sefc1-{n}"), (unit.se_fc2, f"sefc2-{n}")):
            mapping[f"params/{official}/kernel"] = (fc.kernel, None)
            mapping[f"params/{official}/bias"] = (fc.bias, None)
            mapping.update(bounds(official, fc.input_quantizer))
        mapping.update(bn(f"bn_split{n}", unit.bn_split))

    dense = _layer(model, "dense")
    if dense is not None:
        mapping["params/DenseAqt_0/kernel"] = (dense.kernel, None)
        mapping["params/DenseAqt_0/bias"] = (dense.bias, None)
        mapping.update(bounds("DenseAqt_0", dense.input_quantizer))
    return mapping


def load_pokebnn_flax(model, variables, *, allow_missing_head: bool = False) -> ImportReport:
    """Assign official PokeBNN variables to ``model`` (built by :func:`PokeBNN`); the family's
    entry point to :func:`larq_poke.zoo.load_weights`.

    # Arguments
    model: a built larq_poke PokeBNN model.
    variables: mapping of official flattened names to arrays, an ``.npz`` of them, or a
        ``flax.training.checkpoints`` msgpack file.
    allow_missing_head: accept (and skip) the official ``DenseAqt_0`` variables for a model
        built with ``include_top=False``.

    # Raises
    ValueError: naming every official variable that is missing, unexpected or mis-shaped.
    """
    return load_weights(model, variables, allow_missing_head=allow_missing_head, family="pokebnn")


def _assign(model, flat: Dict[str, np.ndarray], allow_missing_head: bool) -> ImportReport:
    mapping = official_variable_map(model)
    missing = sorted(set(mapping) - set(flat))
    extra = sorted(set(flat) - set(mapping))
    if extra and _layer(model, "dense") is None and allow_missing_head:
        extra = [k for k in extra if "/DenseAqt_0/" not in k]
    problems = []
    if missing:
        problems.append(f"missing official variables: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(
            f"official variables the model has no place for: {extra[:8]}{' ...' if len(extra) > 8 else ''} "
            "(is the checkpoint of another width or head?)"
        )
    assignments = []
    for name, (variable, transform) in mapping.items():
        if name not in flat:
            continue
        raw = np.asarray(flat[name])
        if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_):
            problems.append(f"{name}: not a numeric array (got {type(flat[name]).__name__})")
            continue
        value = raw.astype(np.float32)
        if not np.all(np.isfinite(value)):
            problems.append(f"{name}: contains NaN or infinite values")
            continue
        if variable is None:  # constant binary-activation bound: check, don't assign
            if not np.all(value == np.float32(transform)):
                problems.append(
                    f"{name}: binary activation bounds must all be {transform} "
                    f"(got values in [{value.min()}, {value.max()}])"
                )
            continue
        if transform is not None:
            try:
                value = transform(value)
            except ValueError as err:
                problems.append(f"{name}: cannot reshape {flat[name].shape} to {tuple(variable.shape)} ({err})")
                continue
        if tuple(value.shape) != tuple(variable.shape):
            problems.append(f"{name}: shape {tuple(value.shape)} does not match the model's {tuple(variable.shape)}")
            continue
        assignments.append((variable, value))
    if problems:
        raise ValueError(f"Cannot load PokeBNN variables into {model.name}: " + "; ".join(problems))
    assigned = {id(v) for v, _ in assignments}
    unassigned = [w.name for w in model.weights if id(w) not in assigned]
    if unassigned:
        raise ValueError(f"These weights of {model.name} have no official variable: {unassigned[:8]}")
    tf.keras.backend.batch_set_value(assignments)
    used = [k for k in mapping if k in flat]
    return ImportReport(
        family="pokebnn",
        source="mapping",
        format="mapping",
        keys=len(flat),
        assigned_keys=len(used),
        skipped_keys=len(flat) - len(used),
        keras_weights=len(assignments),
    )


def _owns(model) -> bool:
    return pokeinit_parts(model) is not None


def _no_pretrained(zoo_name, state=None):
    raise ValueError(NO_IMAGENET_WEIGHTS)


register_family(
    Family(
        name="pokebnn",
        official_format="flax_msgpack",
        owns=_owns,
        official_state=official_state,
        check_variant=_no_pretrained,
        assign=_assign,
        build=_no_pretrained,
    )
)
