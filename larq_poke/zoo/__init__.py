"""Model zoo: keras.applications-style constructors, a name registry, pretrained weights and one
weights loader for every family and format.

```python
import larq_poke
model = larq_poke.zoo.PokeBNN(1.0, weights=None)
model = larq_poke.zoo.build("pokebnn-0.5x", input_shape=(128, 128, 3))
larq_poke.zoo.list_models()
larq_poke.zoo.load_weights(model, "checkpoint_125000")      # official Flax checkpoint
```
"""

from larq_poke.zoo import gdrive, weights
from larq_poke.zoo.loading import ImportReport, import_weights, load_keras_weights, load_weights, save_keras_weights
from larq_poke.zoo.pokebnn import PokeBNN
from larq_poke.zoo.registry import build, list_models, list_task_models
from larq_poke.zoo.bineal import BiNeal
from larq_poke.zoo.bnext import BNext, BNext18, BNextL, BNextM, BNextS, BNextT

weights.register_transport("gdrive", gdrive.open_gdrive)

__all__ = [
    "BiNeal",
    "BNext",
    "BNext18",
    "BNextL",
    "BNextM",
    "BNextS",
    "BNextT",
    "ImportReport",
    "PokeBNN",
    "build",
    "import_weights",
    "list_models",
    "list_task_models",
    "load_keras_weights",
    "load_weights",
    "save_keras_weights",
    "weights",
]
