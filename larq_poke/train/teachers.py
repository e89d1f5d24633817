"""Teachers fed the student's batches in their own input normalisation.

A teacher trained with another preprocessing than the student's (a ``plain`` float teacher sees
[0, 1] pixels, a PokeBNN or BNext student ImageNet-normalised ones) would see inputs it was never
trained on. ``larq-poke train`` writes ``preprocessing.json`` beside each ``model.keras``; a teacher
loaded from such a file is wrapped in a per-channel affine map from the student's normalisation to
its own (exact: both are affine maps of the same [0, 1] pixels). Crops and sizes are the
student's: the teacher sees the same image region.

```python
teacher = load_teacher("runs/teacher/model.keras", student_preprocessing=prep, image_size=32,
                       num_classes=10)
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

__all__ = ["PREPROCESSING_FILE", "adapt_teacher", "load_teacher", "saved_preprocessing"]

#: Written beside ``model.keras`` by ``larq-poke train``: the run's preprocessing.
PREPROCESSING_FILE = "preprocessing.json"


def saved_preprocessing(source: str):
    """The :class:`~larq_poke.data.Preprocessing` a model file was trained with, when its folder
    holds ``preprocessing.json``; else ``None``."""
    from larq_poke.data import Preprocessing

    path = Path(source).expanduser()
    record = (path if path.is_dir() else path.parent) / PREPROCESSING_FILE
    if not path.exists() or not record.is_file():
        return None
    return Preprocessing.from_dict(json.loads(record.read_text()))


def _moments(prep):
    if prep.mean is None:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return tuple(prep.mean), tuple(prep.std)


def adapt_teacher(teacher, teacher_preprocessing, student_preprocessing):
    """``teacher`` behind a per-channel affine map from the student's normalisation to the
    teacher's; ``teacher`` itself when they agree."""
    import tensorflow as tf

    m_s, s_s = _moments(student_preprocessing)
    m_t, s_t = _moments(teacher_preprocessing)
    if (m_s, s_s) == (m_t, s_t):
        return teacher
    # x_t = (p - m_t) / s_t with p = x_s * s_s + m_s.
    scale = [a / b for a, b in zip(s_s, s_t)]
    offset = [(a - b) / c for a, b, c in zip(m_s, m_t, s_t)]
    inputs = tf.keras.Input(teacher.inputs[0].shape[1:])
    x = tf.keras.layers.Rescaling(scale, offset, name="to_teacher_normalisation")(inputs)
    return tf.keras.Model(inputs, teacher(x, training=False), name=f"{teacher.name}_adapted")


def load_teacher(source: str, *, student_preprocessing, image_size: int, num_classes: Optional[int] = None):
    """The teacher ``source`` names (see :func:`larq_poke.zoo.resolve.load_model`), adapted to
    the student's normalisation when its folder records its own.

    A teacher must be a saved model (``model.keras``, ``.h5``, a SavedModel folder): a model
    built by name (``ResNet50``, ``EfficientNetB0``, a zoo name) has
    random weights here, and distilling from it would be silently wrong, so a name is a
    ``ValueError``."""
    from larq_poke.zoo.resolve import load_model

    source = str(Path(source).expanduser())
    if not Path(source).exists():
        raise ValueError(
            f"teacher {source!r} is not a model file or folder. Built by name, a teacher would have "
            "random weights (larq-poke fetches no teacher weights), and distilling from it would "
            "train the student on noise. Pass a trained model: the model.keras of a `larq-poke "
            "train plain` run (its preprocessing.json beside it), or a Keras model you saved with "
            "its trained weights."
        )
    teacher = load_model(source, input_size=image_size, num_classes=num_classes)
    own = saved_preprocessing(source)
    return teacher if own is None else adapt_teacher(teacher, own, student_preprocessing)
