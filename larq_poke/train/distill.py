"""``Model.fit`` with teachers: a Keras model that trains a student against frozen teachers.

:class:`Distiller` wraps a student and zero or more teachers. Its ``train_step`` runs the
teachers in inference mode on the same batch, the student in training mode, and minimises the
recipe's loss: PokeBNN's soft-target cross-entropy (one teacher) or BNext's diversified KD (several
teachers), plus an optional coupled L2 term; without teachers it is the plain cross-entropy with
the labels (for float teachers). Gradients are clipped by global norm when asked (BNext: 5).
Evaluation (``test_step``) scores the student against the labels. Users' own callbacks, metrics
and TensorBoard work as with any Keras model.

```python
distiller = Distiller(student, teachers=[teacher], l2=5e-5)
distiller.compile(optimizer=tf.keras.optimizers.Adam(schedule, beta_2=0.99))
distiller.fit(train, validation_data=test, epochs=10)
```
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from larq_poke.train.losses import coupled_l2, diversified_kd_loss, soft_target_cross_entropy

__all__ = ["Distiller", "check_teachers"]


def check_teachers(student, teachers) -> None:
    """``ValueError`` unless every teacher predicts the student's number of classes."""
    classes = student.output_shape[-1]
    for teacher in teachers:
        if teacher.output_shape[-1] != classes:
            raise ValueError(
                f"teacher {teacher.name!r} predicts {teacher.output_shape[-1]} classes but the "
                f"student {student.name!r} predicts {classes}; they must match."
            )


class Distiller(tf.keras.Model):
    """Student + frozen teachers (see the module docstring).

    # Arguments
    student: the Keras model being trained (outputs logits).
    teachers: Keras models with the student's class count (logits); frozen, run with
        ``training=False``. None or empty: train on the labels.
    l2: coefficient of the coupled L2 term ``0.5 · l2 · Σ kernel²`` (PokeBNN: 5e-5), 0 for none.
    clip_norm: global gradient-norm clipping (BNext: 5), None for none.
    """

    def __init__(
        self,
        student: tf.keras.Model,
        teachers: Optional[Sequence[tf.keras.Model]] = None,
        *,
        l2: float = 0.0,
        clip_norm: Optional[float] = None,
        **kwargs,
    ):
        super().__init__(name=kwargs.pop("name", f"{student.name}_distiller"), **kwargs)
        self.student = student
        self.teachers = list(teachers or [])
        check_teachers(student, self.teachers)
        for teacher in self.teachers:
            teacher.trainable = False
        self.l2 = float(l2)
        self.clip_norm = clip_norm
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _loss(self, x, y, student_logits):
        if not self.teachers:
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(y, student_logits, from_logits=True)
            )
        else:
            teacher_logits = [tf.stop_gradient(t(x, training=False)) for t in self.teachers]
            if len(teacher_logits) == 1:
                loss = soft_target_cross_entropy(teacher_logits[0], student_logits)
            else:
                loss = diversified_kd_loss(teacher_logits, student_logits)
        if self.l2:
            loss = loss + coupled_l2(self.student.trainable_variables, self.l2)
        return loss

    # The steps are plain TensorFlow (no data-dependent Python control flow), so AutoGraph has
    # nothing to convert; without this it tries Larq's quantized-variable code and warns.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            loss = self._loss(x, y, logits)
            # The optimizer sums gradients over replicas: each replica's batch mean counts 1/R.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.student.trainable_variables
        gradients = tape.gradient(scaled, variables)
        if self.clip_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, y = data[0], data[1]
        logits = self.student(x, training=False)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}
