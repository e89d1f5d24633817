"""One way to put weights into a zoo model: :func:`load_weights`.

``source`` is a file (Keras ``.h5`` weights, a PyTorch ``.pth`` / ``.pth.tar``, a Flax msgpack
checkpoint or an ``.npz``) or a mapping from the family's official variable names to arrays. The
file's format is read from its bytes (:func:`larq_poke.checkpoints.detect_format`), the family
from the model; the family translates the official names to Keras variables and checks every
tensor (names, shapes, values) before it assigns any. Every zoo constructor's ``weights=`` and
``larq-poke weights import`` go through here; the families with no official checkpoints (BiNeal
and its task models) read Keras ``.h5`` files only, through :func:`load_keras_weights`.

```python
from larq_poke.zoo import BNextT, load_weights
model = BNextT()
report = load_weights(model, "bnext_tiny_checkpoint.pth.tar")   # no torch needed
report.to_dict()
```

A family module registers itself with :func:`register_family`; see docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Dict, Optional

from larq_poke.checkpoints import CheckpointError, detect_format, read_checkpoint
from larq_poke.zoo.weights import WeightsEntry, WeightsError, atomic_path, cache_dir, fetch, sha256_of

__all__ = [
    "Family",
    "ImportReport",
    "register_family",
    "family_of",
    "load_weights",
    "load_keras_weights",
    "records_settings",
    "save_keras_weights",
    "existing_weights_file",
    "converted_weights_path",
    "PretrainedWeights",
    "import_weights",
    "CONVERTED_FORMAT_VERSION",
]

#: Bump when a conversion changes, so that stale converted weights in the cache are not reused.
CONVERTED_FORMAT_VERSION = 1


@dataclasses.dataclass(kw_only=True)
class ImportReport:
    """What :func:`load_weights` did."""

    family: Optional[str]
    source: str
    format: str
    keys: int = 0
    assigned_keys: int = 0
    skipped_keys: int = 0
    keras_weights: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Family:
    """How one model family reads official weights.

    # Arguments
    name: ``"bnext"``, ``"pokebnn"``, ...
    official_format: the format the authors publish (``"torch"``, ``"flax_msgpack"``).
    owns: ``owns(model) -> bool``: whether a Keras model was built by this family.
    official_state: ``official_state(content) -> {official name: array}`` from what a reader
        returned (or a user's mapping); ``ValueError`` naming what is wrong.
    check_variant: ``check_variant(zoo_name, state)``: ``ValueError`` unless ``state`` has the
        layout of zoo model ``zoo_name`` (checked before a large model is built).
    assign: ``assign(model, state, allow_missing_head) -> ImportReport``: check everything,
        then assign; the model is unchanged when it raises.
    build: ``build(zoo_name) -> model`` with the full ImageNet head, for converting a
        checkpoint into the cache.
    """

    name: str
    official_format: str
    owns: Callable
    official_state: Callable
    check_variant: Callable
    assign: Callable
    build: Callable


_FAMILIES: Dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make :func:`load_weights` know ``family`` (called by each family module on import)."""
    _FAMILIES[family.name] = family
    return family


def family_of(model) -> Family:
    """The registered family that built ``model``; ``ValueError`` naming the known ones."""
    family = _owner(model)
    if family is not None:
        return family
    raise ValueError(
        f"model {model.name!r} was not built by a larq_poke zoo family "
        f"({', '.join(sorted(_FAMILIES)) or 'none registered'}); its official weights cannot be mapped."
    )


def _keras_weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _h5_names(group, attribute: str) -> list:
    """A list attribute of a Keras h5 group, read as Keras writes it: one attribute, or chunks
    ``attribute0``, ``attribute1``, ... when it is too long for one."""
    if attribute in group.attrs:
        raw = list(group.attrs[attribute])
    else:
        raw, chunk = [], 0
        while f"{attribute}{chunk}" in group.attrs:
            raw += list(group.attrs[f"{attribute}{chunk}"])
            chunk += 1
    return [n.decode() if isinstance(n, bytes) else n for n in raw]


def _stored_shapes(group, name: str) -> list:
    layer = group[name]
    return [tuple(layer[n].shape) for n in _h5_names(layer, "weight_names")]


def _read_h5_layers(path: str) -> dict:
    """``{layer name: [weight shapes]}`` of a Keras h5 weights file (or of a whole saved model's
    ``model_weights``), for the layers with weights, in the file's layer order."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f and not _h5_names(f, "layer_names") else f
            names = _h5_names(group, "layer_names")
            if not names:
                if "vars" in group or "layers" in group:
                    raise ValueError(
                        f"{path} holds weights in the newer Keras format (save_weights to a name ending in "
                        ".weights.h5): zoo models read h5 weights saved with model.save_weights('x.h5'); "
                        "load this file with model.load_weights(path)."
                    )
                raise ValueError(f"{path} is an HDF5 file but not Keras weights (no layer names).")
            return {n: _stored_shapes(group, n) for n in names if _h5_names(group[n], "weight_names")}
    except (OSError, KeyError) as err:
        raise ValueError(f"cannot read Keras weights file {path}: {err}") from err


#: The root attribute in which :func:`save_keras_weights` records the model's configuration.
CONFIG_ATTRIBUTE = "larq_poke_model_config"

# Layer settings that do not change what a layer's weights mean, left out when a file's settings
# are compared: training-only ones, the dtype (a mixed-precision run changes it) and the spatial
# geometry (a dense-prediction backbone may run a classifier's convs with other strides or dilation).
_NOT_COMPARED = ("name", "trainable", "dtype", "momentum", "metrics", "batch_input_shape", "input_shape",
                 "strides", "dilation_rate", "padding",
                 "module", "registered_name", "build_config", "shared_object_id")  # how Keras wrote it
_NOT_COMPARED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def records_settings(path, save_format=None) -> bool:
    """Whether ``model.save_weights(path, save_format=...)`` writes Keras h5 weights to a name
    :func:`save_keras_weights` accepts (``*.h5``, not ``*.weights.h5``)."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    label = os.fspath(path)
    plain_h5 = isinstance(label, str) and label.endswith(".h5") and not label.endswith(".weights.h5")
    return plain_h5 and (save_format is None or str(save_format).lower() in ("h5", "hdf5"))


def save_keras_weights(model, path) -> str:
    """Save ``model``'s weights as a Keras ``.h5`` file that also records every layer's settings,
    written atomically (a failed save leaves no file, or the old one); returns the path.

    ```python
    save_keras_weights(model, "runs/bineal/weights.h5")    # what `larq-poke train` writes
    model = BiNeal(1.0, weights="runs/bineal/weights.h5")   # checks the settings too
    ```

    A zoo model's ``model.save_weights("x.h5")`` calls this. Keras reads the file as usual
    (``model.load_weights``). :func:`load_keras_weights` then
    also refuses it for a model whose layers were built with other settings that change no
    weight shape (e.g. ``BranchQuantizer`` bits 4 or 3), which weights alone cannot tell apart.
    Compared: the settings of every top-level layer with weights (a nested model's weights are
    checked by shape only). Not compared: what only training uses (initializers, regularizers,
    constraints, BN momentum), the dtype of a mixed-precision run, and strides, dilation and
    padding (a dense-prediction backbone may run a classifier's convs differently). A
    subclassed model, which has no configuration, gets a plain weights file. A file that does
    not fit names the layer and the settings; ``model.load_weights(path)`` skips the check.
    """
    import h5py
    import tensorflow as tf

    label = os.fspath(path)
    if not records_settings(label):
        raise ValueError(f"save_keras_weights writes Keras h5 weights: name the file *.h5 (not .weights.h5), "
                         f"got {label!r}.")
    try:
        config = model.to_json()
    except NotImplementedError:  # a subclassed model has no config: its file checks shapes only
        config = None
    with atomic_path(label, suffix=".part.h5") as tmp_name:
        tf.keras.Model.save_weights(model, tmp_name, save_format="h5")  # Keras' own, not a zoo model's
        if config is not None:
            with h5py.File(tmp_name, "a") as f:
                f.attrs[CONFIG_ATTRIBUTE] = config
    return label


def _layer_settings(model_json) -> Optional[dict]:
    """``{layer name: (class name, config)}`` of a model's JSON configuration, for its top-level
    layers other than inputs and nested models (None when it has no layer list)."""
    try:
        layers = json.loads(model_json)["config"]["layers"]
    except (TypeError, KeyError, ValueError):
        return None
    if not isinstance(layers, list):
        return None
    settings = {}
    for layer in layers:
        config = layer.get("config") if isinstance(layer, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("name"), str):
            continue
        if layer.get("class_name") == "InputLayer" or "layers" in config:  # nested models: shapes only
            continue
        settings[config["name"]] = (layer.get("class_name"), config)
    return settings


def _stored_settings(path: str) -> Optional[dict]:
    """The layer settings a Keras h5 file records: written by :func:`save_keras_weights`, or a
    whole model saved as ``.h5`` (Keras' ``model_config``); None for plain weights files."""
    import h5py

    with h5py.File(path, "r") as f:
        for attribute in (CONFIG_ATTRIBUTE, "model_config"):
            if attribute in f.attrs:
                raw = f.attrs[attribute]
                try:
                    return _layer_settings(raw.decode() if isinstance(raw, bytes) else raw)
                except UnicodeDecodeError:
                    return None
    return None


def _settings_differences(stored, own, where: str = "") -> list:
    """``[(key path, stored value, own value)]`` where two layer configs differ in a setting that
    changes what the layer's weights mean."""
    if isinstance(stored, dict) and isinstance(own, dict):
        differences = []
        for key in sorted(set(stored) | set(own)):
            if key in _NOT_COMPARED or key.endswith(_NOT_COMPARED_SUFFIXES):
                continue
            differences += _settings_differences(stored.get(key), own.get(key), f"{where}.{key}" if where else key)
        return differences
    if where.endswith("class_name") and isinstance(stored, str) and isinstance(own, str):
        # a whole saved model names registered classes "package>Class", model.to_json "Class"
        stored, own = stored.rpartition(">")[2], own.rpartition(">")[2]
    if isinstance(stored, (list, tuple)) and isinstance(own, (list, tuple)) and len(stored) == len(own):
        return [d for i, (a, b) in enumerate(zip(stored, own)) for d in _settings_differences(a, b, f"{where}[{i}]")]
    return [] if stored == own else [(where, stored, own)]


def _check_settings(model, path: str, weighted, misfit) -> None:
    """Refuse a file whose recorded layer settings differ from ``model``'s for a layer named in
    ``weighted`` (weights alone cannot tell such settings apart)."""
    stored = _stored_settings(path)
    if not stored:
        return
    try:
        own = _layer_settings(model.to_json()) or {}
    except (NotImplementedError, TypeError, ValueError):  # a model with no serializable config
        return
    for name, (class_name, config) in own.items():
        if name not in stored or name not in weighted:
            continue
        stored_class, stored_config = stored[name]
        differences = _settings_differences({"class_name": stored_class, **stored_config},
                                            {"class_name": class_name, **config})
        if differences:
            listed = "; ".join(f"{key}={theirs!r} in the file, {ours!r} in the model"
                               for key, theirs, ours in differences[:3])
            more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
            raise misfit(f"layer {name!r} was saved with other settings: {listed}{more}. Build the model with "
                         "the file's settings (another option?); model.load_weights(path) skips this check.")


def _load_keras_h5(model, path: str, allow_missing_head: bool = False) -> int:
    """Load Keras h5 weights by layer name, after checking that every weighted layer of ``model``
    is in the file with the same weight shapes and that the file holds no other layers, except,
    with ``allow_missing_head``, layers after all of the model's (the head of a model built
    without it). A file that does not fit assigns nothing."""
    stored = _read_h5_layers(path)
    if path.endswith(".weights.h5"):  # Keras reads such names in its newer format, whatever they hold
        raise ValueError(f"{path} holds h5 weights but its name ends in .weights.h5, which Keras reads in its "
                         "newer format: rename it to end in .h5 only.")
    layers = _keras_weighted_layers(model)

    def misfit(problem: str) -> ValueError:
        return ValueError(f"{path} is a Keras weights file that does not fit {model.name}: {problem}")

    missing = [layer.name for layer in layers if layer.name not in stored]
    if missing:
        raise misfit(f"it has no weights for layers {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for layer in layers:
        # Keras' h5 order: trainable, then non-trainable weights
        wanted = [tuple(w.shape) for w in layer.trainable_weights + layer.non_trainable_weights]
        if stored[layer.name] != wanted:
            raise misfit(f"layer {layer.name!r} has weights of shapes {wanted}, the file {stored[layer.name]} "
                         "(another width, number of classes or option?)")
    order = {name: index for index, name in enumerate(stored)}
    own = {layer.name for layer in layers}
    extra = [name for name in stored if name not in own]
    if extra:
        last_own = max(order[name] for name in own) if own else -1
        between = [name for name in extra if order[name] < last_own]
        if between:
            raise misfit(f"it holds weights for layers the model does not have, among its own: {between[:5]} "
                         "(a model built with another option, e.g. branch_bits?)")
        if not allow_missing_head:
            raise misfit(f"it holds weights for layers the model does not have: {extra[:5]} (a head? only a model "
                         "built with include_top=False leaves its head's weights out)")
    _check_settings(model, path, own, misfit)
    try:
        # by name: Keras checks and collects every value before it assigns any
        model.load_weights(path, by_name=True)
    except (ValueError, KeyError) as err:
        raise misfit(str(err)) from err
    return len(model.weights)


def existing_weights_file(source, what: str = "weights file") -> str:
    """``source`` as a path to an existing file; ValueError starting with ``what`` otherwise, with
    a hint for a TensorFlow checkpoint prefix (``source.index`` exists), which is not a file."""
    label = os.fspath(source)
    if not os.path.isfile(label):
        hint = ""
        if os.path.isfile(label + ".index"):
            hint = (" It is a TensorFlow checkpoint prefix: load it with model.load_weights(path), or save Keras "
                    "weights with model.save_weights('weights.h5').")
        raise ValueError(f"{what} {label!r} does not exist or is not a file.{hint}")
    return label


def load_keras_weights(model, path, *, allow_missing_head: bool = False) -> int:
    """Load a Keras ``.h5`` weights file into ``model``, a zoo model with no official checkpoint
    format (BiNeal and its task models); returns the number of the model's weights.

    ```python
    backbone = BiNeal(1.0, include_top=False, weights="runs/bineal/weights.h5")  # calls this
    ```

    The file must hold every weighted layer of ``model`` with the same shapes, and no other
    layer, except with ``allow_missing_head`` the layers after all of the model's (a classifier's
    file then fills a model built without its head, or a backbone). ``ValueError`` naming the
    file and the problem (missing file, another format, a layer or shape that does not fit);
    nothing is assigned then. Settings that change no weight shape (e.g. ``BranchQuantizer``
    bits 4 or 3) are checked too when the file records them: written by
    :func:`save_keras_weights` (``larq-poke train``, and a zoo model's ``save_weights`` to an
    ``.h5`` name) or a whole model saved as ``.h5``; h5 weights written by Keras alone cannot
    tell them apart.
    """
    label = existing_weights_file(path)
    try:
        fmt = detect_format(label)
    except CheckpointError:
        raise ValueError(f"{label} is not a Keras .h5 weights file, the only kind {model.name} reads.") from None
    if fmt != "keras_h5":
        raise ValueError(
            f"{label} is a {fmt} checkpoint; {model.name} has no official checkpoints to import, so it "
            "reads Keras .h5 weights files only (what `larq-poke train` writes, or model.save_weights('x.h5'))."
        )
    return _load_keras_h5(model, label, allow_missing_head)


def _owner(model) -> Optional[Family]:
    return next((family for family in _FAMILIES.values() if family.owns(model)), None)


def load_weights(
    model, source, *, allow_missing_head: bool = False, family: Optional[str] = None
) -> ImportReport:
    """Load ``source`` into zoo ``model`` (see the module docstring); returns an :class:`ImportReport`.

    ``allow_missing_head`` accepts classifier weights that a model built with ``include_top=False``
    has no place for (they are skipped): official ones, or in a Keras file layers after all of the
    model's own (any other layer the model lacks is an error). Raises ``ValueError`` (a
    :class:`~larq_poke.checkpoints.CheckpointError` for an unreadable or unsafe file) naming the
    problem; nothing is assigned then. ``family`` names the family when the caller knows it (the
    families' own entry points), instead of recognising it from the model. A Keras ``.h5`` file
    needs no family (:func:`load_keras_weights`; the report's ``family`` is then None).
    """
    known = _FAMILIES[family] if family else _owner(model)
    if isinstance(source, Mapping):
        label, fmt, content = "mapping", "mapping", source
    else:
        label = existing_weights_file(source)
        try:
            fmt = detect_format(label)
        except CheckpointError:
            # msgpack has no signature: an unrecognised file for a Flax family is read as Flax,
            # so that the error says what is wrong with it as a Flax checkpoint.
            if known is None or known.official_format != "flax_msgpack":
                raise
            fmt = known.official_format
        if fmt == "keras_h5":
            count = _load_keras_h5(model, label, allow_missing_head)
            return ImportReport(family=known.name if known else None, source=label, format=fmt, keras_weights=count)
        content = read_checkpoint(label, fmt)
    known = known or family_of(model)  # raises, naming the families that map official weights
    state = known.official_state(content)
    report = known.assign(model, state, allow_missing_head)
    report.source, report.format = label, fmt
    return report


# ------------------------------------------------------------------------------------------------
# Pretrained weights: official checkpoints converted once to Keras weights and cached.


def converted_weights_path(entry: WeightsEntry) -> Path:
    """Where the Keras weights converted from ``entry``'s official checkpoint are cached."""
    return (
        cache_dir()
        / entry.model
        / entry.variant
        / f"{entry.model}_{entry.variant}_keras_v{CONVERTED_FORMAT_VERSION}.h5"
    )


def _family(entry: WeightsEntry) -> Family:
    if entry.family not in _FAMILIES:
        raise ValueError(
            f"{entry.model}/{entry.variant}: no zoo family {entry.family!r} is registered "
            f"({', '.join(sorted(_FAMILIES))})."
        )
    return _FAMILIES[entry.family]


def _read_official(entry: WeightsEntry, path) -> dict:
    """Read ``path`` and check it has the layout of ``entry.model`` (no model is built)."""
    family = _family(entry)
    state = family.official_state(read_checkpoint(path, entry.format))
    family.check_variant(entry.model, state)
    return state


def _convert_and_cache(entry: WeightsEntry, state, model=None) -> Path:
    import tensorflow as tf

    family = _family(entry)
    if model is None:
        model = family.build(entry.model)
    family.assign(model, state, False)
    # plain weights: the official checkpoint fixes no option the family leaves to the user (BNext's
    # zero_sign), so the cache records none
    with atomic_path(converted_weights_path(entry), suffix=".part.h5") as tmp_name:
        tf.keras.Model.save_weights(model, tmp_name, save_format="h5")  # not ZooModel's, which records them
    return converted_weights_path(entry)


def import_weights(entry: WeightsEntry, checkpoint, *, model=None) -> Path:
    """Install a manually downloaded official ``checkpoint`` for ``entry`` in the cache.

    What ``larq-poke weights import MODEL FILE`` runs. The sha256 is checked when the registry
    pins one, the checkpoint's layout must be that of ``entry.model``, and it is converted to
    Keras weights; nothing is cached when a check fails. Returns the cached Keras file.
    """
    if entry.sha256 is not None:
        actual = sha256_of(checkpoint)
        if actual != entry.sha256.lower():
            raise WeightsError(
                f"sha256 mismatch for {checkpoint}: expected {entry.sha256}, got {actual}. "
                "It is not the registered file; nothing was cached."
            )
    return _convert_and_cache(entry, _read_official(entry, checkpoint), model)


class PretrainedWeights:
    """``weights="imagenet"`` of a zoo model, prepared before the model is built.

    Either the cached converted Keras file, or a downloaded official checkpoint that has been read
    and checked already (so a bad download fails before an expensive model build). A downloaded
    file that fails any check is deleted: nothing stays in the cache.

    ```python
    pretrained = PretrainedWeights(weights.get("bnext-t"))
    model = ...                                   # build
    pretrained.load_into(model)
    ```
    """

    def __init__(self, entry: WeightsEntry):
        self.entry = entry
        self.converted = converted_weights_path(entry)
        self.raw: Optional[Path] = None
        self.state = None
        if not self.converted.is_file():
            self.raw = fetch(entry)
            try:
                self.state = _read_official(entry, self.raw)
            except Exception:
                self.raw.unlink(missing_ok=True)
                raise

    def load_into(self, model, *, full: bool) -> ImportReport:
        """Load into ``model``; ``full``: it has the official head, so it can be converted in place."""
        if self.state is not None:
            try:
                _convert_and_cache(self.entry, self.state, model if full else None)
            except Exception:
                self.raw.unlink(missing_ok=True)
                raise
            self.state = None
        return load_weights(model, self.converted, allow_missing_head=not full)
