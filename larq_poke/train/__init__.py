"""Training with the authors' recipes: losses, schedules and a ``Model.fit``-native distiller.

```python
from larq_poke.train import Distiller, PokeBNNSchedule
distiller = Distiller(student, teachers=[teacher], l2=5e-5)
distiller.compile(tf.keras.optimizers.Adam(PokeBNNSchedule(6.4e-4, total_steps), beta_2=0.99))
distiller.fit(train_dataset, epochs=10)
```
"""

from larq_poke.train.determinism import make_deterministic
from larq_poke.train.distill import Distiller
from larq_poke.train.losses import coupled_l2, diversified_kd_loss, soft_target_cross_entropy
from larq_poke.train.schedules import BNextSchedule, PokeBNNSchedule, pokebnn_base_lr

__all__ = [
    "BNextSchedule",
    "Distiller",
    "PokeBNNSchedule",
    "coupled_l2",
    "diversified_kd_loss",
    "make_deterministic",
    "pokebnn_base_lr",
    "soft_target_cross_entropy",
]
