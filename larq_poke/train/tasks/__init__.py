"""Training BiNeal's dense-prediction models (:mod:`larq_poke.zoo.bineal_tasks`): the recipe as a
Python entry point (:func:`fit_task`) and, per task, its targets, losses and metrics.

```python
from larq_poke.train.tasks import fit_task
fit_task(model, dataset, loss=loss, epochs=10, calibration_inputs=images[:32])
```

Submodules: :mod:`~.fit` (the recipe), :mod:`~.segmentation`, :mod:`~.detection`,
:mod:`~.super_resolution`, :mod:`~.matching`.
"""

from larq_poke.train.tasks.fit import bineal_optimizer, fit_task

__all__ = ["bineal_optimizer", "fit_task"]
