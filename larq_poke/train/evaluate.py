"""Top-1 / top-5 accuracy of a Keras model or an LCE ``.tflite`` on a labelled ``tf.data`` set.

```python
from larq_poke.data import load_dataset
from larq_poke.train.evaluate import evaluate
test = load_dataset("imagenet2012", "validation", manual_dir="~/imagenet", preprocessing="bnext",
                    batch_size=50)
evaluate(model, test)                 # {'top1': 0.724, 'top5': 0.906, 'n': 50000}
evaluate("bnext_t.tflite", test)      # the flatbuffer, in the LCE interpreter
evaluate(model, test, with_predictions=True)["predictions"]  # top-1 class per image, in order
```
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

__all__ = ["evaluate", "TFLiteClassifier"]


class TFLiteClassifier:
    """A ``.tflite`` flatbuffer in the LCE interpreter (indirect BGEMM kernels, the fast ones on
    x86; LCE's optimised kernels on ARM), called like a model: ``logits = clf(images)``."""

    def __init__(self, flatbuffer: Union[bytes, str, os.PathLike], threads: int = 1):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        if not isinstance(flatbuffer, (bytes, bytearray)):
            with open(flatbuffer, "rb") as f:
                flatbuffer = f.read()
        self.interpreter = Interpreter(flatbuffer, num_threads=threads, use_indirect_bgemm=True)
        shapes = self.interpreter.input_shapes
        if len(shapes) != 1:
            raise ValueError(f"expected a model with one image input, got inputs of shapes {shapes}.")
        self.input_shape = tuple(shapes[0])

    def __call__(self, images) -> np.ndarray:
        return np.asarray(self.interpreter.predict(np.asarray(images, np.float32)))


def evaluate(model, dataset, *, top_k: int = 5, with_predictions: bool = False) -> dict:
    """``{"top1", "top5", "n"}`` of ``model`` (Keras model, :class:`TFLiteClassifier`, or a path
    to a ``.tflite``) over ``dataset`` (batches of ``(image, label)``). ``with_predictions``
    adds ``"predictions"``: the top-1 class of every image in the data set's order (an int64
    array), to count how many predictions a conversion changes."""
    if isinstance(model, (str, os.PathLike)):
        model = TFLiteClassifier(model)
    correct1 = correctk = total = 0
    predictions = []
    for images, labels in dataset:
        if isinstance(model, TFLiteClassifier):
            logits = model(images.numpy())
        else:
            logits = np.asarray(model(images, training=False))
        logits = logits.reshape(len(logits), -1)
        labels = np.asarray(labels).reshape(-1)
        k = min(top_k, logits.shape[-1])
        ranked = np.argsort(-logits, axis=-1)[:, :k]
        predictions.append(ranked[:, 0].astype(np.int64))
        correct1 += int(np.sum(ranked[:, 0] == labels))
        correctk += int(np.sum(np.any(ranked == labels[:, None], axis=-1)))
        total += len(labels)
    if not total:
        raise ValueError("the evaluation data set is empty.")
    metrics = {"top1": correct1 / total, f"top{top_k}": correctk / total, "n": total}
    if with_predictions:
        metrics["predictions"] = np.concatenate(predictions)
    return metrics
