"""Cost of the float ops between PokeBNN's binary convs, one op type at a time, on the LCE
interpreter (1 thread): the figures behind the choices in ``larq_poke.converters.rewrites.pokebnn``.

    python benchmarks/tflite_op_costs.py [--shape 56 56 256] [--runs 50]

Each op is chained ``--chain`` times inside one small TFLite model (so interpreter and copy
overheads are amortised) on a PokeBNN-1.0x stage-1 map (56x56x256 by default); the script prints
the time per op. Spelling matters: Keras' PReLU formula becomes one PRELU op, ``max(x, a * x)``
becomes MUL + MAXIMUM, three-way sums written as ADD_N use TFLite's slow reference kernel.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (Keras 2 before TensorFlow)

import numpy as np
import tensorflow as tf


def per_op_ms(fn, shapes, *, chain: int, runs: int) -> float:
    """Median milliseconds per application of ``fn(x, *extra)`` chained ``chain`` times."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    @tf.function(input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
    def chained(x, *extra):
        for _ in range(chain):
            x = fn(x, *extra)
        return x

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [chained.get_concrete_function()], chained
    )
    interpreter = Interpreter(converter.convert(), num_threads=1)
    rng = np.random.default_rng(0)
    inputs = [0.1 * rng.standard_normal(s).astype(np.float32) for s in shapes]
    feed = inputs if len(inputs) > 1 else inputs[0]
    interpreter.predict(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.predict(feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3 / chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(56, 56, 256), metavar=("H", "W", "C"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--chain", type=int, default=10)
    args = parser.parse_args()

    h, w, c = args.shape
    full, gate, narrow = [1, h, w, c], [1, 1, 1, c], [1, h, w, c // 4]
    rng = np.random.default_rng(1)
    alpha = rng.uniform(0.0, 0.5, (1, 1, c)).astype(np.float32)

    cases = [
        ("ADD (two maps)", lambda x, y: x + y, [full, full]),
        ("MUL by a 1x1 gate", lambda x, s: x * s, [full, gate]),
        ("PRELU (Keras formula)", lambda x: tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x), [full]),
        ("MUL + MAXIMUM: max(x, a*x)", lambda x: tf.maximum(x, alpha.reshape(-1) * x), [full]),
        ("ADD_N of three maps", lambda x, y, z: tf.math.add_n([x, y, z]), [full, full, full]),
        ("PAD channels C/4 -> C, then ADD",
         lambda x, y: x + tf.pad(y, [[0, 0], [0, 0], [0, 0], [0, c - c // 4]]), [full, narrow]),
        ("RESHAPE + MEAN of 4 channels, then ADD",
         lambda x, y: x + tf.reshape(tf.reduce_mean(tf.reshape(y, [1, h * w, c // 4, 4]), -1),
                                     [1, h, w, c // 4]), [narrow, full]),
        ("full-map AVERAGE_POOL_2D, then MUL",
         lambda x: x * tf.nn.avg_pool2d(x, (h, w), (h, w), "VALID"), [full]),
    ]
    print(f"map {h}x{w}x{c}, LCE interpreter, 1 thread, median of {args.runs} runs "
          f"of {args.chain} chained ops")
    for label, fn, shapes in cases:
        print(f"  {label:<42} {per_op_ms(fn, shapes, chain=args.chain, runs=args.runs):7.3f} ms")


if __name__ == "__main__":
    main()
