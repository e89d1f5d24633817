"""Input pipelines: labelled images from TensorFlow Datasets or an image folder, with each
recipe's preprocessing (:mod:`larq_poke.data.preprocessing`).

```python
from larq_poke.data import load_dataset, preprocessing
test = load_dataset("imagenet2012", "validation", manual_dir="~/imagenet", preprocessing="bnext",
                    batch_size=50)
```
"""

from larq_poke.data import preprocessing
from larq_poke.data.datasets import DatasetError, DatasetInfo, dataset_info, load_dataset, write_image_folder
from larq_poke.data.preprocessing import Preprocessing

__all__ = ["DatasetError", "DatasetInfo", "Preprocessing", "dataset_info", "load_dataset", "preprocessing",
           "write_image_folder"]
