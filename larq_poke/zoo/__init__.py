"""Model zoo: keras.applications-style constructors, a name registry and pretrained weights.

```python
import larq_poke
model = larq_poke.zoo.PokeBNN(1.0, weights=None)
model = larq_poke.zoo.build("pokebnn-0.5x", input_shape=(128, 128, 3))
larq_poke.zoo.list_models()
```
"""

from larq_poke.zoo import weights
from larq_poke.zoo.pokebnn import PokeBNN
from larq_poke.zoo.registry import build, list_models
from larq_poke.zoo.bnext import BNext, BNext18, BNextL, BNextM, BNextS, BNextT
