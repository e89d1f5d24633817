"""Zoo-wide model names: ``build("pokebnn-1.0x")``, ``list_models()``, ``list_task_models()``.

Each family module exposes ``MODELS``, a dict from zoo name to a constructor that takes the
keras.applications keyword arguments (``input_shape``, ``input_tensor``, ``include_top``,
``num_classes``, ``weights``). Dense-prediction models (:mod:`larq_poke.zoo.bineal_tasks`) are
listed apart, by task, in ``TASK_MODELS``: their constructors take the task's own arguments
(``num_classes`` of a segmentation or detection head, ``input_shape``, ``weights``, ``precision``).

```python
from larq_poke.zoo import build, list_models, list_task_models
list_models()                       # ['bnext-18', ..., 'pokebnn-0.5x', ...]: classifiers
list_task_models("detection")       # ['bineal-centernet-2.0x', 'bineal-centernet-head-2.0x']
model = build("pokebnn-1.0x", input_shape=(160, 160, 3))
detector = build("bineal-centernet-2.0x", num_classes=80)
```
"""

from __future__ import annotations

import importlib
import inspect
from typing import Callable, Dict, List, Optional

__all__ = ["build", "list_models", "list_task_models", "model_constructor"]

_FAMILY_MODULES = ("larq_poke.zoo.pokebnn", "larq_poke.zoo.bnext", "larq_poke.zoo.bineal")
_TASK_MODULES = ("larq_poke.zoo.bineal_tasks",)


def _models() -> Dict[str, Callable]:
    models: Dict[str, Callable] = {}
    for module_name in _FAMILY_MODULES:
        models.update(importlib.import_module(module_name).MODELS)
    return models


def _task_models() -> Dict[str, Dict[str, Callable]]:
    tasks: Dict[str, Dict[str, Callable]] = {}
    for module_name in _TASK_MODULES:
        for task, models in importlib.import_module(module_name).TASK_MODELS.items():
            tasks.setdefault(task, {}).update(models)
    return tasks


def list_models() -> List[str]:
    """Sorted zoo names of the classifiers."""
    return sorted(_models())


def list_task_models(task: Optional[str] = None) -> List[str]:
    """Sorted zoo names of the dense-prediction models, of one ``task`` ("segmentation",
    "detection", "super-resolution", "matching") or all."""
    tasks = _task_models()
    if task is not None and task not in tasks:
        raise KeyError(f"Unknown task {task!r}. Known tasks: {', '.join(sorted(tasks))}.")
    return sorted(name for t, models in tasks.items() if task in (None, t) for name in models)


def model_constructor(name: str) -> Callable:
    """The constructor registered as ``name`` (classifier or task model); ``KeyError`` listing
    the known names."""
    models = dict(_models())
    for task_models in _task_models().values():
        models.update(task_models)
    key = name.lower()
    if key not in models:
        raise KeyError(f"Unknown zoo model {name!r}. Known models: {', '.join(sorted(models))}.")
    return models[key]


def build(name: str, **kwargs):
    """Build zoo model ``name`` with keras.applications keyword arguments; an argument the name
    does not take (e.g. a width for ``bineal-1.0x``, whose name fixes it) is a ``ValueError``."""
    constructor = model_constructor(name)
    try:
        inspect.signature(constructor).bind(**kwargs)
    except TypeError as err:
        raise ValueError(
            f"zoo model {name!r}: {err}. A zoo name fixes the architecture (e.g. its width); call "
            "the family's constructor for other settings."
        ) from None
    return constructor(**kwargs)
