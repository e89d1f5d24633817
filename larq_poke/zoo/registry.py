"""Zoo-wide model names: ``build("pokebnn-1.0x")``, ``list_models()``.

Each family module exposes ``MODELS``, a dict from zoo name to a constructor that takes the
keras.applications keyword arguments (``input_shape``, ``input_tensor``, ``include_top``,
``num_classes``, ``weights``).

```python
from larq_poke.zoo import build, list_models
list_models()                       # ['bnext-18', ..., 'pokebnn-0.5x', ...]
model = build("pokebnn-1.0x", input_shape=(160, 160, 3))
```
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List

__all__ = ["build", "list_models", "model_constructor"]

_FAMILY_MODULES = ("larq_poke.zoo.pokebnn", "larq_poke.zoo.bnext", "larq_poke.zoo.bineal")


def _models() -> Dict[str, Callable]:
    models: Dict[str, Callable] = {}
    for module_name in _FAMILY_MODULES:
        models.update(importlib.import_module(module_name).MODELS)
    return models


def list_models() -> List[str]:
    """Sorted zoo names."""
    return sorted(_models())


def model_constructor(name: str) -> Callable:
    """The constructor registered as ``name``; ``KeyError`` listing the known names."""
    models = _models()
    key = name.lower()
    if key not in models:
        raise KeyError(f"Unknown zoo model {name!r}. Known models: {', '.join(sorted(models))}.")
    return models[key]


def build(name: str, **kwargs):
    """Build zoo model ``name`` with keras.applications keyword arguments."""
    return model_constructor(name)(**kwargs)
