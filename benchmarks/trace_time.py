"""Trace time of a training step: how long the first two steps of a zoo model take as ``larq-poke
train`` runs them, and without each of the two things larq-poke does to shorten them.

    python benchmarks/trace_time.py [--models pokebnn-0.5x,bnext-t] [--variants shipped,no_build,no_rule]
                                    [--size 32] [--batch 64] [--steps 3] [--rounds 1]

The step is the trainer's (``larq_poke.train.distill.Distiller``, no teacher, 10 classes, Adam,
``train_on_batch`` on one fixed batch). Variants:

* ``shipped``: as ``larq-poke train`` runs it: the optimizer's slot variables are made before
  the first trace (``larq_poke.train.distill.build_optimizer``, which ``Distiller.fit`` calls),
  and AutoGraph leaves Keras 2 alone (``larq_poke.no_autograph.keep_autograph_out_of_tf_keras``).
* ``no_build``: Keras' default: the optimizer makes its slot variables inside the first trace,
  so TensorFlow traces the step a second time.
* ``no_rule``: the AutoGraph rule for Keras 2 removed once larq-poke's modules that add it are
  imported, before anything is built or traced, so AutoGraph converts Keras 2's own code.

Each measurement runs in a fresh Python process (the rule is process-wide, and a second trace in
the same process would reuse TensorFlow's caches), with TensorFlow's default threads. Per round,
every model runs every variant (interleaved); figures are the minimum over rounds. ``first``:
the first step (trace and run; for ``no_build`` both traces, since TensorFlow makes the second
one within the first call); ``second``: the second step, a check that nothing is traced again;
``step``: the mean of ``--steps`` later steps. Last line (per model and variant):
``trace: <model>_<variant>_first_s=… <model>_<variant>_second_s=… <model>_step_s=… ...``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("shipped", "no_build", "no_rule")

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import larq_poke  # Keras 2 before TensorFlow
import numpy as np
import tensorflow as tf
from larq_poke.train.distill import Distiller, build_optimizer
from larq_poke.zoo.resolve import load_model
import larq_poke.quantizers  # adds the rule once (so that no later import adds it again)
if {variant!r} == "no_rule":
    from tensorflow.python.autograph.core import config
    config.CONVERSION_RULES = tuple(r for r in config.CONVERSION_RULES
                                    if not (isinstance(r, config.DoNotConvert) and r.matches("tf_keras")))
student = load_model({model!r}, input_size={size}, num_classes=10)
model = Distiller(student, [])
model.compile(tf.keras.optimizers.Adam(1e-3))
if {variant!r} != "no_build":
    build_optimizer(model, student.trainable_variables)
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=({batch}, {size}, {size}, 3)).astype(np.float32))
y = tf.constant(rng.integers(0, 10, {batch}))
times = []
for _ in range(2):
    began = time.perf_counter()
    model.train_on_batch(x, y)
    times.append(time.perf_counter() - began)
began = time.perf_counter()
for _ in range({steps}):
    model.train_on_batch(x, y)
print(json.dumps({{"first": times[0], "second": times[1], "step": (time.perf_counter() - began) / {steps}}}))
"""


def measure(model: str, variant: str, args) -> dict:
    code = CHILD.format(root=str(ROOT), variant=variant, model=model, size=args.size, batch=args.batch,
                        steps=args.steps)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{model} ({variant}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pokebnn-0.5x,bnext-t")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="later steps timed after the first two")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; use {', '.join(VARIANTS)}")
    best: dict = {}
    for r in range(args.rounds):
        for model in models:
            for variant in variants:
                got = measure(model, variant, args)
                old = best.get((model, variant), {k: float("inf") for k in got})
                best[(model, variant)] = {k: min(old[k], got[k]) for k in got}
                print(f"round {r + 1}: {model} [{variant}] first step {got['first']:.1f} s, second "
                      f"{got['second']:.1f} s, later steps {got['step']:.2f} s", flush=True)
    print(f"\n{args.size}x{args.size}, batch {args.batch}, minimum of {args.rounds} round(s):")
    figures = []
    for model in models:
        key = model.replace("-", "_").replace(".", "")
        for variant in variants:
            b = best[(model, variant)]
            print(f"  {model:14s} {variant:9s} first step {b['first']:6.1f} s, second {b['second']:6.1f} s, "
                  f"later steps {b['step']:.2f} s")
            figures += [f"{key}_{variant}_first_s={b['first']:.1f}", f"{key}_{variant}_second_s={b['second']:.1f}"]
        figures.append(f"{key}_step_s={min(best[(model, v)]['step'] for v in variants):.2f}")
    print("trace: " + " ".join(figures))


if __name__ == "__main__":
    main()
