"""Training speed: images/s of one trainer step of BNext-T and PokeBNN-1.0x (batch 16, 224x224,
ImageNet's 1000 classes) and of each recipe's input pipeline on JPEGs, in one interleaved run.

    python benchmarks/train_throughput.py [--threads 2] [--batch 16] [--rounds 5] [--steps 3]

Variants, each timed in every round (round-robin, the minimum per variant reported):

* ``keras``: a plain Keras ``train_on_batch`` of the student with cross-entropy (the reference).
* ``trainer``: larq-poke's ``Distiller`` step as ``larq-poke train`` runs it, no teacher.
* ``trainer+teacher``: the same with a float teacher (keras.applications EfficientNetB0, logits).
* ``trainer bf16``: the trainer under Keras' ``mixed_bfloat16`` policy (variables, batch-norm
  statistics and the loss in float32; the binarizers' ±1 values are exact in bfloat16).
* ``pipeline``: ``larq_poke.data.load_dataset`` with the recipe's training preprocessing on an
  image folder of 500x375 JPEGs (PokeBNN: crop, flip; BNext: crop, flip, timm's RandAugment).

TensorFlow runs with ``--threads`` intra- and inter-op threads (the process is restricted to as
many CPUs when the OS allows). Target (issue "Training"): BNext-T trainer >= 1.5x the official
PyTorch BNext-T's 3.4 images/s on this machine class, pipeline >= 2x the trainer.
Last line: ``train: bnext_t_ips=… pokebnn_ips=… pipeline_ips=…`` (the trainer without teacher, and
the slower recipe's pipeline).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OFFICIAL_BNEXT_T_IPS = 3.4


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--models", default="bnext-t,pokebnn-1.0x")
    parser.add_argument("--variants", default="keras,trainer,trainer+teacher,trainer bf16")
    parser.add_argument("--images", type=int, default=256, help="JPEGs in the pipeline's folder")
    return parser.parse_args(argv)


ARGS = parse()
if hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: ARGS.threads]))
    except OSError:
        pass

import larq_poke  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)


def build_step(model_name: str, variant: str):
    """A function running one training step on a fixed batch, after a first (tracing) call."""
    from larq_poke.train.distill import Distiller
    from larq_poke.zoo.resolve import load_model

    tf.keras.backend.clear_session()
    policy = "mixed_bfloat16" if "bf16" in variant else "float32"
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        student = load_model(model_name, input_size=ARGS.size, num_classes=1000)
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(size=(ARGS.batch, ARGS.size, ARGS.size, 3)).astype(np.float32))
        y = tf.constant(rng.integers(0, 1000, ARGS.batch))
        if variant == "keras":
            student.compile(tf.keras.optimizers.Adam(1e-4),
                            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model = student
        else:
            teachers = []
            if "teacher" in variant:
                tf.keras.mixed_precision.set_global_policy("float32")
                teachers = [load_model("EfficientNetB0", input_size=ARGS.size, num_classes=1000)]
                tf.keras.mixed_precision.set_global_policy(policy)
            model = Distiller(student, teachers)
            model.compile(tf.keras.optimizers.Adam(1e-4))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    began = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - began

    def step():
        model.train_on_batch(x, y)

    return step, first


def jpeg_folder(root: Path, count: int) -> Path:
    """``count`` photo-like JPEGs (smooth colour fields with noise, 500x375) in two classes."""
    rng = np.random.default_rng(1)
    for i in range(count):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:375, 0:500]
        base = np.stack([np.sin(xx / rng.uniform(20, 90) + c) * 80 + 128 for c in range(3)], -1)
        image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        (folder / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(image, quality=90).numpy())
    return root


def pipeline_ips(root: Path, recipe: str) -> float:
    from larq_poke.data import load_dataset

    data = load_dataset(root, "train", preprocessing=recipe, image_size=ARGS.size, training=True,
                        batch_size=ARGS.batch).repeat()
    iterator = iter(data)
    next(iterator)
    batches = max(4, ARGS.images // ARGS.batch)
    began = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * ARGS.batch / (time.perf_counter() - began)


def main():
    variants = [v for v in ARGS.variants.split(",") if v]
    models = [m for m in ARGS.models.split(",") if m]
    steps, best = {}, {}
    for model in models:
        for variant in variants:
            steps[(model, variant)], first = build_step(model, variant)
            print(f"built {model} [{variant}]: first step {first:.1f} s", flush=True)
    for r in range(ARGS.rounds):  # interleaved: every variant once per round
        for key, step in steps.items():
            began = time.perf_counter()
            for _ in range(ARGS.steps):
                step()
            ips = ARGS.steps * ARGS.batch / (time.perf_counter() - began)
            best[key] = max(best.get(key, 0.0), ips)
        print(f"round {r + 1}/{ARGS.rounds}: " + ", ".join(f"{m} [{v}] {best[(m, v)]:.2f}" for m, v in steps), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = jpeg_folder(Path(tmp), ARGS.images)
        pipes = {recipe: pipeline_ips(root, recipe) for recipe in ("pokebnn", "bnext")}

    print(f"\nimages/s, batch {ARGS.batch}, {ARGS.size}x{ARGS.size}, {ARGS.threads} threads, best of {ARGS.rounds} rounds:")
    for (model, variant), ips in best.items():
        print(f"  {model:14s} {variant:18s} {ips:6.2f}")
    for recipe, ips in pipes.items():
        print(f"  pipeline       {recipe:18s} {ips:6.2f}")
    bnext = best.get(("bnext-t", "trainer"), float("nan"))
    print(f"BNext-T trainer / official PyTorch ({OFFICIAL_BNEXT_T_IPS} images/s): {bnext / OFFICIAL_BNEXT_T_IPS:.2f}x; "
          f"slowest pipeline / fastest trainer step: {min(pipes.values()) / max(best.values()):.1f}x")
    print(f"train: bnext_t_ips={bnext:.2f} pokebnn_ips={best.get(('pokebnn-1.0x', 'trainer'), float('nan')):.2f} "
          f"pipeline_ips={min(pipes.values()):.1f}")


if __name__ == "__main__":
    main()
