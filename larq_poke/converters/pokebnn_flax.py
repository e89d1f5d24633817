"""Load official PokeBNN (google/aqt, Flax) variables into a larq_poke PokeBNN model.

The official variables use flattened Flax names: ``params/<module>/<name>``,
``batch_stats/<bn>/{mean,var}`` and ``get_bounds/<layer>/GetBounds_0/bounds``. Accepted sources:

* a mapping from those names to arrays;
* an ``.npz`` file holding those names;
* a checkpoint written by ``flax.training.checkpoints`` (msgpack; read with the ``msgpack``
  package, no JAX needed) of a TrainState with ``params`` and ``mutable_vars`` (``batch_stats``,
  ``get_bounds``); optimizer state, step and EMA statistics are ignored.

Every official variable must be consumed and every Keras weight assigned; anything missing,
extra or mis-shaped raises a ``ValueError`` naming the variable.

```python
from larq_poke.zoo import PokeBNN
from larq_poke.converters import load_pokebnn_flax
model = PokeBNN(0.5, input_shape=(64, 64, 3))
load_pokebnn_flax(model, "golden/pokebnn_small.npz")
```
"""

from __future__ import annotations

import os
import re
from typing import Dict, Mapping

import msgpack
import numpy as np

__all__ = ["load_pokebnn_flax", "read_flax_checkpoint", "official_variable_map"]

# flax.serialization msgpack extension codes.
_EXT_NDARRAY = 1
_EXT_NATIVE_COMPLEX = 2
_EXT_NPSCALAR = 3
_CHUNKED = "__msgpack_chunked_array__"

# The variable collections of the official model; other keys of an .npz (inputs, outputs,
# intermediates of a recorded run) are not variables.
_COLLECTIONS = ("params", "batch_stats", "get_bounds")
# Official entries that carry no inference information.
_IGNORED = re.compile(r"^get_bounds/.+/GetBounds_0/stats(/|$)")


def _decode_ext(code: int, data: bytes):
    if code == _EXT_NDARRAY:
        shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
        dtype = np.dtype(dtype_name.decode() if isinstance(dtype_name, bytes) else dtype_name)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)
    if code == _EXT_NPSCALAR:
        dtype_name, buffer = msgpack.unpackb(data, raw=True)
        dtype = np.dtype(dtype_name.decode() if isinstance(dtype_name, bytes) else dtype_name)
        return np.frombuffer(buffer, dtype=dtype)[0]
    if code == _EXT_NATIVE_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    raise ValueError(f"Unknown msgpack extension type {code} in a Flax checkpoint.")


def _unchunk(tree):
    if isinstance(tree, dict):
        if tree.get(_CHUNKED):
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate([np.ravel(c) for c in chunks]).reshape(tree["shape"])
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_flax_checkpoint(path) -> dict:
    """The nested state dict of a ``flax.training.checkpoints`` file, arrays as numpy."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        state = msgpack.unpackb(data, ext_hook=_decode_ext, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as err:
        raise ValueError(f"{path} is not a readable Flax msgpack checkpoint: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a Flax checkpoint (top level is {type(state).__name__}).")
    return _unchunk(state)


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


def _read_source(source) -> Dict[str, np.ndarray]:
    if isinstance(source, Mapping):
        flat = dict(source)
        if any(isinstance(v, Mapping) for v in flat.values()):
            flat = _official_names(flat)
        return flat
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ValueError(f"PokeBNN variables file {path!r} does not exist.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    return _official_names(read_flax_checkpoint(path))


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
    from larq_poke.layers.pokebnn import PokeConv

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
    stem = _layer(model, "init")
    if stem is None:
        raise ValueError(f"{model.name} is not a larq_poke PokeBNN model (no 'init' stem layer).")
    mapping[f"params/init_conv/kernel"] = (stem.conv.kernel, None)
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

    pokeconvs = [layer for layer in model.layers if isinstance(layer, PokeConv)]
    for layer in pokeconvs:
        match = re.fullmatch(r"resblock(\d+)-([123])", layer.name)
        if match is None:
            raise ValueError(f"Unexpected PokeConv name {layer.name!r}; expected resblock<i>-<j>.")
        i, j = int(match.group(1)), int(match.group(2))
        n = layer.name
        mapping[f"params/conv-{n}/kernel"] = (layer.conv.kernel, None)
        mapping[f"get_bounds/conv-{n}/GetBounds_0/bounds"] = (None, layer.activation_bound)
        mapping.update(bn(f"bn{n}", layer.bn))
        mapping.update(dprelu(2 + 3 * i + (j - 1), layer.dprelu))
        for fc, official in ((layer.se.fc1, f"sefc1-{n}"), (layer.se.fc2, f"sefc2-{n}")):
            mapping[f"params/{official}/kernel"] = (fc.kernel, None)
            mapping[f"params/{official}/bias"] = (fc.bias, None)
            mapping.update(bounds(official, fc.input_quantizer))
        mapping.update(bn(f"bn_split{n}", layer.bn_split))

    dense = _layer(model, "dense")
    if dense is not None:
        mapping["params/DenseAqt_0/kernel"] = (dense.kernel, None)
        mapping["params/DenseAqt_0/bias"] = (dense.bias, None)
        mapping.update(bounds("DenseAqt_0", dense.input_quantizer))
    return mapping


def load_pokebnn_flax(model, variables, *, allow_missing_head: bool = False):
    """Assign official PokeBNN variables to ``model`` (built by :func:`larq_poke.zoo.PokeBNN`).

    # Arguments
    model: a built larq_poke PokeBNN model.
    variables: mapping of official flattened names to arrays, an ``.npz`` of them, or a
        ``flax.training.checkpoints`` msgpack file.
    allow_missing_head: accept (and skip) the official ``DenseAqt_0`` variables for a model
        built with ``include_top=False``.

    # Raises
    ValueError: naming every official variable that is missing, unexpected or mis-shaped.
    """
    flat = {
        k: v
        for k, v in _read_source(variables).items()
        if k.split("/", 1)[0] in _COLLECTIONS and not _IGNORED.match(k)
    }
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
        value = np.asarray(flat[name], dtype=np.float32)
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
    for variable, value in assignments:
        variable.assign(value)
    return model
