"""The recipes' losses, on logits.

* :func:`soft_target_cross_entropy`: PokeBNN's distillation loss, the batch mean of
  ``−Σ softmax(teacher) · log_softmax(student)`` (temperature 1, no hard-label term).
* :func:`diversified_kd_loss`: BNext's two-teacher loss. For each teacher t, ``L_t`` is the soft
  cross-entropy above; per-sample weights ``α[n, t]`` are the softmax over teachers of the
  per-sample cross-entropies (no gradient through them: the teacher the student disagrees with
  more weighs more), and the loss is ``(1 / T) · Σ_t L_t · mean_n α[n, t]``.
* :func:`coupled_l2`: PokeBNN's weight decay, ``0.5 · 5e-5 · Σ w²`` over kernels (variables with
  more than one dimension), added to the loss (not decoupled).

```python
loss = soft_target_cross_entropy(teacher(x), student(x, training=True))
loss += coupled_l2(student.trainable_variables)
```
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["soft_target_cross_entropy", "per_sample_soft_cross_entropy", "diversified_kd_loss", "coupled_l2"]


def per_sample_soft_cross_entropy(teacher_logits, student_logits):
    """``−Σ_c softmax(teacher)_c · log_softmax(student)_c`` for every sample, shape (N,)."""
    targets = tf.nn.softmax(tf.cast(teacher_logits, tf.float32), axis=-1)
    log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32), axis=-1)
    return -tf.reduce_sum(targets * log_probs, axis=-1)


def soft_target_cross_entropy(teacher_logits, student_logits):
    """Batch mean of :func:`per_sample_soft_cross_entropy` (PokeBNN's loss)."""
    return tf.reduce_mean(per_sample_soft_cross_entropy(teacher_logits, student_logits))


def diversified_kd_loss(teacher_logits: Sequence, student_logits):
    """BNext's loss for the active teachers' logits (see the module docstring)."""
    if not teacher_logits:
        raise ValueError("diversified_kd_loss needs at least one teacher.")
    per_sample = tf.stack([per_sample_soft_cross_entropy(t, student_logits) for t in teacher_logits], axis=-1)
    alpha = tf.stop_gradient(tf.nn.softmax(per_sample, axis=-1))  # (N, T)
    batch_losses = tf.reduce_mean(per_sample, axis=0)  # L_t, (T,)
    return tf.reduce_sum(batch_losses * tf.reduce_mean(alpha, axis=0)) / float(len(teacher_logits))


def coupled_l2(variables, coefficient: float = 5e-5):
    """``0.5 · coefficient · Σ w²`` over the variables with more than one dimension (kernels)."""
    terms = [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables if len(v.shape) > 1]
    if not terms:
        return tf.constant(0.0)
    return 0.5 * coefficient * tf.add_n(terms)
