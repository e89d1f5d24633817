"""``Model.fit`` with teachers: a Keras model that trains a student against frozen teachers.

:class:`Distiller` wraps a student and zero or more teachers. Its ``train_step`` runs the
teachers in inference mode on the same batch, the student in training mode, and minimises the
recipe's loss: PokeBNN's soft-target cross-entropy (one teacher) or BNext's diversified KD (several
teachers), plus an optional coupled L2 term; without teachers it is the plain cross-entropy with
the labels (for float teachers). Gradients are clipped by global norm when asked (BNext: 5).

BNext's phase-wise assistants: ``assistants=[a0, a1, ...]`` with ``phase_steps=[s1, ...]`` (one
boundary fewer than assistants) adds assistant ``a_k`` to the teachers from optimizer step
``s_k`` to ``s_{k+1}``; only the active assistant runs (``tf.switch_case``), and the phase is
a function of the optimizer's step, so a resumed run is in the same phase.
Evaluation (``test_step``) scores the student against the labels. Users' own callbacks, metrics
and TensorBoard work as with any Keras model.

```python
distiller = Distiller(student, teachers=[teacher], l2=5e-5)
distiller.compile(optimizer=tf.keras.optimizers.Adam(schedule, beta_2=0.99))
distiller.fit(train, validation_data=test, epochs=10)
# BNext-M: EfficientNet-B0 then -B2 as assistants of EfficientNet-B4, half the run each
distiller = Distiller(student, teachers=[b4], assistants=[b0, b2], phase_steps=[total // 2], clip_norm=5)
```
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from larq_poke.no_autograph import keep_autograph_out_of_tf_keras
from larq_poke.train.losses import coupled_l2, diversified_kd_loss, soft_target_cross_entropy

keep_autograph_out_of_tf_keras()  # a plain Keras teacher or student loads no larq-poke quantizer

__all__ = ["Distiller", "build_optimizer", "check_teachers"]


def build_optimizer(model, variables=None) -> None:
    """Create the slot variables of compiled ``model``'s optimizer for ``variables`` (default: the
    model's trainable variables) now, in the model's distribution strategy, before a training
    step is traced (``Distiller.fit`` and ``fit_task`` do it).

    Keras 2's optimizers create them on their first ``apply_gradients``, which is inside the
    first trace of the training step, and a ``tf.function`` whose first trace created variables
    is traced again, within that first call: PokeBNN-0.5x's first training step (32x32,
    batch 64, CPU) took 178.5 s that way and 107.9 s with the slots made first
    (``benchmarks/trace_time.py``). Optimizers without ``build`` (Keras' legacy ones) are left
    alone.

    ```python
    model.compile(tf.keras.optimizers.Adam(1e-3), loss=...)
    build_optimizer(model)
    model.fit(data)                      # one trace of the training step
    ```
    """
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under a LossScaleOptimizer
    if hasattr(optimizer, "build"):
        with model.distribute_strategy.scope():
            optimizer.build(list(model.trainable_variables if variables is None else variables))


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
    assistants: teachers that take turns (BNext's assistant phases), one per phase.
    phase_steps: the optimizer steps at which the next assistant takes over (increasing,
        ``len(assistants) - 1`` of them).
    """

    def __init__(
        self,
        student: tf.keras.Model,
        teachers: Optional[Sequence[tf.keras.Model]] = None,
        *,
        l2: float = 0.0,
        clip_norm: Optional[float] = None,
        assistants: Optional[Sequence[tf.keras.Model]] = None,
        phase_steps: Optional[Sequence[int]] = None,
        **kwargs,
    ):
        super().__init__(name=kwargs.pop("name", f"{student.name}_distiller"), **kwargs)
        self.student = student
        self.teachers = list(teachers or [])
        self.assistants = list(assistants or [])
        self.phase_steps = [int(step) for step in (phase_steps or [])]
        if len(self.phase_steps) != max(len(self.assistants) - 1, 0):
            raise ValueError(
                f"{len(self.assistants)} assistants need {max(len(self.assistants) - 1, 0)} phase_steps "
                f"(the steps where the next one takes over), got {len(self.phase_steps)}."
            )
        if any(b <= a for a, b in zip(self.phase_steps, self.phase_steps[1:])) or any(s < 0 for s in self.phase_steps):
            raise ValueError(f"phase_steps must be increasing and non-negative, got {self.phase_steps}.")
        check_teachers(student, self.teachers + self.assistants)
        for teacher in self.teachers + self.assistants:
            teacher.trainable = False
        self.l2 = float(l2)
        self.clip_norm = clip_norm
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def fit(self, *args, **kwargs):
        """``Model.fit``, with the optimizer's slot variables created first (:func:`build_optimizer`)."""
        build_optimizer(self, self.student.trainable_variables)
        return super().fit(*args, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def phase(self, step):
        """Index of the assistant active at optimizer step ``step`` (a tensor)."""
        boundaries = tf.constant(self.phase_steps or [0], tf.int64)
        passed = tf.cast(tf.cast(step, tf.int64) >= boundaries, tf.int32)
        return tf.reduce_sum(passed) if self.phase_steps else tf.constant(0, tf.int32)

    def _teacher_logits(self, x):
        logits = [t(x, training=False) for t in self.teachers]
        if self.assistants:
            branches = [lambda a=a: a(x, training=False) for a in self.assistants]
            logits.insert(0, tf.switch_case(self.phase(self.optimizer.iterations), branches))
        return [tf.stop_gradient(tf.cast(t, tf.float32)) for t in logits]

    def _loss(self, x, y, student_logits):
        if not self.teachers and not self.assistants:
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(y, student_logits, from_logits=True)
            )
        else:
            teacher_logits = self._teacher_logits(x)
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
            # float32 losses also under a mixed_bfloat16 / mixed_float16 policy
            logits = tf.cast(self.student(x, training=True), tf.float32)
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
        logits = tf.cast(self.student(x, training=False), tf.float32)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}
