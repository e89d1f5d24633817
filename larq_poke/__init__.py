"""larq-poke: the strongest binary neural networks for Keras / Larq, with cost accounting and
Larq Compute Engine deployment.

```python
import larq_poke
model = larq_poke.zoo.PokeBNN(1.0)
model.summary()                      # Keras summary followed by the ACE / BOPs cost table
report = larq_poke.cost.profile(model)
```

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` (Larq needs Keras 2); submodules load on
first use, so ``import larq_poke`` itself stays cheap.
"""

import importlib

from larq_poke.legacy_keras import ensure_legacy_keras

ensure_legacy_keras()

__version__ = "0.1.0"

_SUBMODULES = ("quantizers", "layers", "cost", "zoo", "converters", "bench")

__all__ = list(_SUBMODULES) + ["summary", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"larq_poke.{name}")
    if name == "summary":
        return importlib.import_module("larq_poke.cost").summary
    raise AttributeError(f"module 'larq_poke' has no attribute {name!r}")
