"""Trace time of a training step: how long the first step of a zoo model takes (tracing the step
into a graph, then running it), with and without larq-poke's AutoGraph rule for Keras 2
(``larq_poke.no_autograph.keep_autograph_out_of_tf_keras``), and the time of a later step.

    python benchmarks/trace_time.py [--models pokebnn-0.5x,bnext-t] [--size 32] [--batch 64] [--rounds 1]

Each measurement runs in a fresh Python process (the rule is process-wide, and a second trace in
the same process would reuse TensorFlow's caches). The step is ``larq-poke train``'s
(``larq_poke.train.distill.Distiller``, no teacher, 10 classes, its optimizer built first as
``Distiller.fit`` does, so that the step is traced once); the process without the rule
removes it right after importing larq-poke, before anything is traced. Runs are interleaved:
per round, every model with the rule, then without. Figures: the minimum per variant over the
rounds; the later step is the mean of ``--steps`` steps after the first. TensorFlow runs with its
default threads. Last line:
``trace: <model>_first_s=… <model>_first_without_rule_s=… <model>_step_s=… ...`` (per model).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import larq_poke  # Keras 2 before TensorFlow
import numpy as np
import tensorflow as tf
from larq_poke.train.distill import Distiller, build_optimizer
from larq_poke.zoo.resolve import load_model
if not {rule}:
    from tensorflow.python.autograph.core import config
    config.CONVERSION_RULES = tuple(r for r in config.CONVERSION_RULES
                                    if not (isinstance(r, config.DoNotConvert) and r.matches("tf_keras")))
student = load_model({model!r}, input_size={size}, num_classes=10)
model = Distiller(student, [])
model.compile(tf.keras.optimizers.Adam(1e-3))
build_optimizer(model, student.trainable_variables)  # as Distiller.fit does: one trace
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=({batch}, {size}, {size}, 3)).astype(np.float32))
y = tf.constant(rng.integers(0, 10, {batch}))
began = time.perf_counter()
model.train_on_batch(x, y)
first = time.perf_counter() - began
began = time.perf_counter()
for _ in range({steps}):
    model.train_on_batch(x, y)
print(json.dumps({{"first": first, "step": (time.perf_counter() - began) / {steps}}}))
"""


def measure(model: str, rule: bool, args) -> dict:
    code = CHILD.format(root=str(ROOT), rule=rule, model=model, size=args.size, batch=args.batch, steps=args.steps)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{model} (rule={rule}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pokebnn-0.5x,bnext-t")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="later steps timed after the first")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    best: dict = {}
    for r in range(args.rounds):
        for model in models:
            for rule in (True, False):
                got = measure(model, rule, args)
                key = (model, rule)
                old = best.get(key, {"first": float("inf"), "step": float("inf")})
                best[key] = {k: min(old[k], got[k]) for k in old}
                print(f"round {r + 1}: {model} {'with' if rule else 'without'} the rule: first step "
                      f"{got['first']:.1f} s, later steps {got['step']:.2f} s", flush=True)
    print(f"\n{args.size}x{args.size}, batch {args.batch}, minimum of {args.rounds} round(s):")
    figures = []
    for model in models:
        with_rule, without = best[(model, True)], best[(model, False)]
        print(f"  {model:14s} first step {with_rule['first']:6.1f} s (without the rule {without['first']:6.1f} s), "
              f"later steps {with_rule['step']:.2f} s")
        key = model.replace("-", "_").replace(".", "")
        figures += [f"{key}_first_s={with_rule['first']:.1f}", f"{key}_first_without_rule_s={without['first']:.1f}",
                    f"{key}_step_s={with_rule['step']:.2f}"]
    print("trace: " + " ".join(figures))


if __name__ == "__main__":
    main()
