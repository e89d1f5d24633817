"""LCE conversion through larq-poke's inference-only SavedModel against LCE's own Keras route,
in one interleaved run per model, on the same (rewritten) Keras model.

    python benchmarks/conversion_export.py [--models pokebnn-0.5x@64 bineal-1.0x@32] [--repeats 1]

Routes: ``lce.convert_keras_model(model)`` (Keras' full SavedModel export, then LCE), and
:func:`larq_poke.converters.export.inference_saved_model` + ``lce.convert_saved_model`` (what
``larq_poke.converters.convert`` does). Both files must have the same size and operators.
Seconds are wall-clock on this host, best of ``--repeats``.

Last line: ``conversion: NAME@SIZE keras_route_s=… export_route_s=… speedup=… same_ops=… ...``.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def _seconds(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["pokebnn-0.5x@64", "bineal-1.0x@32"], metavar="NAME@SIZE")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    import larq_poke  # noqa: F401  (first: Keras 2 for tf.keras)

    import larq_compute_engine as lce
    from larq_poke.converters.export import inference_saved_model
    from larq_poke.converters.flatbuffer import read_flatbuffer
    from larq_poke.converters.rewrites import apply_rewrites
    from larq_poke.zoo.resolve import load_model

    def exported(model):
        with tempfile.TemporaryDirectory() as directory:
            inference_saved_model(model, directory)
            return lce.convert_saved_model(directory)

    figures = []
    for item in args.models:
        name, _, size = item.partition("@")
        model, _ = apply_rewrites(load_model(name, input_size=int(size)), int8=False, calibration_inputs=None)
        keras_times, export_times = [], []
        for _ in range(args.repeats):  # interleaved
            seconds, keras_file = _seconds(lce.convert_keras_model, model)
            keras_times.append(seconds)
            seconds, export_file = _seconds(exported, model)
            export_times.append(seconds)
        ops = [[op.op_type for op in read_flatbuffer(f).operators] for f in (keras_file, export_file)]
        same = ops[0] == ops[1] and len(keras_file) == len(export_file)
        print(f"{item}: Keras route {min(keras_times):.1f} s, inference export {min(export_times):.1f} s, "
              f"{len(ops[1])} operators, {len(export_file):,} bytes, same file shape: {same}", flush=True)
        figures.append(f"{item} keras_route_s={min(keras_times):.1f} export_route_s={min(export_times):.1f} "
                       f"speedup={min(keras_times) / min(export_times):.1f} same_ops={same}")
    print("conversion: " + " ".join(figures))


if __name__ == "__main__":
    main()
