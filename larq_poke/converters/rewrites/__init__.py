"""Rewrites of trained models into numerically equivalent graphs that the Larq Compute Engine
converter optimizes fully, applied by :func:`larq_poke.converters.convert` before conversion.

A model as trained is often not in the form LCE recognises: activations binarized to ±1.5 instead
of ±1, weights scaled by a constant, activations lowered to GREATER/SELECT, channel tiling as
TILE/TRANSPOSE. A *rewrite* builds an equivalent Keras model whose layers LCE fuses (scales folded
into the following BatchNormalization, activations expressed through PRELU / affine ops, ...).
Model families register their rewrite here; the converter calls :func:`deployable` and never needs
to know the families.

```python
from larq_poke.converters.rewrites import deployable, register_rewrite

@register_rewrite(PokeConv, name="pokebnn")   # applies when the model has a PokeConv layer
def pokebnn_deployable(model):
    ...                                         # build and return the equivalent model
    return rewritten

deployable(model)       # the rewritten model; the model itself when no rewrite applies
```

Rules for a rewrite function:

* take a built ``tf.keras.Model`` and return a new built model with the same inputs and outputs
  (shapes and output order) that computes the same function in inference mode; do not modify the
  argument;
* be idempotent in effect: its predicate should not match its own output (otherwise
  :func:`deployable` would apply it again, which it refuses to do: each rewrite runs at most once);
* the converter checks the claim: it compares the converted model against the *original* model;
* a rewrite may set ``_deployment_checks`` on the model it returns: functions of the conversion
  report that return a note for the report (or None), e.g. what float work is left per block.

``larq_poke.converters.deployable`` is this module's :func:`deployable`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Type, Union

from larq_poke.keras_graph import walk_layers

__all__ = [
    "Rewrite",
    "applicable_rewrites",
    "apply_rewrites",
    "deployable",
    "register_rewrite",
    "registered_rewrites",
    "unregister_rewrite",
]

Predicate = Callable[[object], bool]


@dataclass(frozen=True)
class Rewrite:
    """A registered rewrite: ``applies(model)`` says whether ``fn(model)`` should run."""

    name: str
    applies: Predicate
    fn: Callable[[object], object]


_REGISTRY: List[Rewrite] = []

#: The zoo families' rewrites, one module each; imported (and so registered) on first use.
BUILTIN_REWRITES = (
    "larq_poke.converters.rewrites.pokebnn",
    "larq_poke.converters.rewrites.bnext",
    "larq_poke.converters.rewrites.bineal",
    "larq_poke.converters.rewrites.small_maps",  # last: on the families' rewritten convs too
)


def _load_builtin() -> None:
    for module in BUILTIN_REWRITES:
        importlib.import_module(module)


def _layer_type_predicate(layer_types: Tuple[Type, ...]) -> Predicate:
    def applies(model) -> bool:
        return any(isinstance(layer, layer_types) for _, layer in walk_layers(model))

    names = ", ".join(t.__name__ for t in layer_types)
    applies.__doc__ = f"the model contains a layer of type {names}"
    return applies


def register_rewrite(
    predicate_or_layer_types: Union[Predicate, Type, Sequence[Type]],
    fn: Optional[Callable] = None,
    *,
    name: Optional[str] = None,
):
    """Register ``fn`` as the rewrite for models matched by ``predicate_or_layer_types``.

    # Arguments
        predicate_or_layer_types: a layer class or a tuple / list of layer classes (the rewrite
            applies when any layer of the model, nested layers included, is an instance of one), or
            a callable ``predicate(model) -> bool``.
        fn: ``fn(model) -> model``. Omit it to use ``register_rewrite`` as a decorator.
        name: a unique name, reported by the converter; defaults to ``fn.__name__``. Registering
            an existing name replaces that rewrite (so re-importing a module is harmless).

    # Returns
        ``fn`` (so that the decorator form leaves the function usable).
    """
    if isinstance(predicate_or_layer_types, type):
        predicate = _layer_type_predicate((predicate_or_layer_types,))
    elif isinstance(predicate_or_layer_types, (tuple, list)):
        types = tuple(predicate_or_layer_types)
        if not types or not all(isinstance(t, type) for t in types):
            raise TypeError("register_rewrite: expected a non-empty sequence of layer classes")
        predicate = _layer_type_predicate(types)
    elif callable(predicate_or_layer_types):
        predicate = predicate_or_layer_types
    else:
        raise TypeError(
            "register_rewrite: the first argument must be a layer class, a sequence of layer "
            f"classes or a predicate callable, got {predicate_or_layer_types!r}"
        )

    def register(function):
        if not callable(function):
            raise TypeError(f"register_rewrite: the rewrite must be callable, got {function!r}")
        rewrite_name = name or getattr(function, "__name__", repr(function))
        for i, existing in enumerate(_REGISTRY):
            if existing.name == rewrite_name:
                _REGISTRY[i] = Rewrite(rewrite_name, predicate, function)
                break
        else:
            _REGISTRY.append(Rewrite(rewrite_name, predicate, function))
        return function

    if fn is None:
        return register
    return register(fn)


def unregister_rewrite(name: str) -> None:
    """Remove the rewrite called ``name`` (KeyError if there is none)."""
    for i, existing in enumerate(_REGISTRY):
        if existing.name == name:
            del _REGISTRY[i]
            return
    raise KeyError(f"no rewrite named {name!r} is registered")


def registered_rewrites() -> List[Rewrite]:
    """The registered rewrites, in the order they are tried."""
    _load_builtin()
    return list(_REGISTRY)


def applicable_rewrites(model) -> List[str]:
    """Names of the registered rewrites whose predicate matches ``model``."""
    return [rewrite.name for rewrite in registered_rewrites() if rewrite.applies(model)]


def _accepted_options(fn, options: dict) -> dict:
    """The subset of ``options`` that ``fn`` takes as keyword arguments."""
    import inspect

    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in parameters}


def apply_rewrites(model, **options) -> Tuple[object, List[str]]:
    """Apply every matching rewrite once, in registration order, each to the previous result.

    ``options`` (e.g. ``int8=True``, ``calibration_inputs=...`` from the converter) are passed
    to the rewrite functions that accept them as keyword arguments.

    Returns the (possibly unchanged) model and the names of the rewrites that ran.
    """
    applied = []
    for rewrite in registered_rewrites():
        if rewrite.applies(model):
            result = rewrite.fn(model, **_accepted_options(rewrite.fn, options))
            if result is None:
                raise TypeError(f"rewrite {rewrite.name!r} returned None instead of a model")
            model = result
            applied.append(rewrite.name)
    return model, applied


def deployable(model, **options):
    """The LCE-friendly equivalent of ``model``: ``model`` itself when no rewrite applies.

    ``options`` go to the rewrites that accept them (``int8=True`` for int8 fake-quant forms).
    """
    return apply_rewrites(model, **options)[0]
