"""larq-poke: the strongest binary neural networks for Keras / Larq, with cost accounting and
Larq Compute Engine deployment.

```python
import larq_poke
model = larq_poke.zoo.PokeBNN(1.0)
model.summary()                      # Keras summary followed by the ACE / BOPs cost table
report = larq_poke.cost.profile(model)
```
"""

from larq_poke.legacy_keras import ensure_legacy_keras

ensure_legacy_keras()

__version__ = "0.1.0"

from larq_poke import quantizers, layers, cost, zoo, converters  # noqa: E402
from larq_poke.cost import summary  # noqa: E402

__all__ = ["quantizers", "layers", "cost", "zoo", "converters", "summary", "__version__"]
