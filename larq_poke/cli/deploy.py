"""``larq-poke deploy``: model name to verified numbers in one command.

```
larq-poke deploy pokebnn-1.0x                     # -> deploy-pokebnn-1.0x/
larq-poke deploy bnext-t -o out --runs 20
larq-poke deploy my_model.h5 --int8 --input-size 160
```

Builds the zoo model (or loads a saved Keras model), converts it with
:func:`larq_poke.converters.convert` (deployable rewrite, census, parity), writes
``<name>.tflite`` and ``<name>.report.json`` to the output folder, converts larq-zoo's QuickNet
the same way as the reference and benchmarks both on this machine, interleaved
(:mod:`larq_poke.bench`), then prints the cost table, the conversion census and the latency in
one summary. Progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import time

from larq_poke.cli.output import emit_json, progress


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="build, convert, verify and benchmark a model against QuickNet in one go",
        description=(
            "Build a zoo model (or load a saved Keras model), convert it for the Larq Compute "
            "Engine, write the .tflite and the JSON report, benchmark it on this machine against "
            "larq-zoo's QuickNet converted the same way, and print costs, census and latency."
        ),
    )
    parser.add_argument("model", metavar="MODEL", nargs="?", default="pokebnn-1.0x",
                        help="zoo name (default pokebnn-1.0x) or a saved Keras model file")
    parser.add_argument("-o", "--output-dir", metavar="DIR", default=None,
                        help="output folder (default: deploy-<model name>)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="build zoo models (and the reference) for N x N inputs")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="classifier outputs of a zoo model built by name or with --arch (e.g. for a "
                             "weights file trained on N classes; default: the constructor's; a saved "
                             "model keeps its own)")
    parser.add_argument("--int8", action="store_true",
                        help="int8 stem / SE / head (needs calibrated quantizers)")
    parser.add_argument("--runs", type=int, default=10, metavar="N",
                        help="timed inferences per model (default 10)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="interpreter threads (default 1)")
    parser.add_argument("--weights", metavar="PATH|none", default=None,
                        help="weights for a zoo name (default: the constructor's default)")
    parser.add_argument("--arch", metavar="NAME", default=None,
                        help="zoo architecture when MODEL is a weights file")
    parser.add_argument("--reference", choices=("quicknet", "none"), default="quicknet",
                        help="reference model for the latency ratio (default quicknet)")
    parser.add_argument("--no-bench", dest="bench", action="store_false",
                        help="convert and verify only")
    parser.add_argument("--json", action="store_true",
                        help="print the report (cost, census, parity, latency) as JSON only")
    parser.set_defaults(func=run)


def _section(title: str) -> str:
    return f"\n== {title} " + "=" * max(0, 70 - len(title))


def _convert(model, int8: bool, verify: bool):
    from larq_poke.cli.models import converter_log
    from larq_poke.converters.lce import convert

    with converter_log("larq-poke deploy"):
        return convert(model, int8=int8, verify=verify)


def _reference_model(input_shape):
    import larq_zoo

    return larq_zoo.sota.QuickNet(weights=None, input_shape=input_shape)


def _has_untrained_batch_norm(model) -> bool:
    import numpy as np
    import tensorflow as tf

    from larq_poke.keras_graph import walk_layers

    return any(
        isinstance(layer, tf.keras.layers.BatchNormalization)
        and layer.gamma is not None
        and not np.any(layer.gamma.numpy())
        for _, layer in walk_layers(model)
    )


def run(args) -> int:
    from larq_poke.zoo.resolve import load_model
    from larq_poke.converters.flatbuffer import full_resolution_elementwise_ops
    from larq_poke.cost import profile

    start = time.perf_counter()
    progress("deploy", f"loading {args.model} ...")
    model = load_model(args.model, arch=args.arch, weights=args.weights, input_size=args.input_size,
                       num_classes=args.num_classes)
    name = model.name
    out_dir = args.output_dir or f"deploy-{name}"
    os.makedirs(out_dir, exist_ok=True)
    progress("deploy", f"loaded {name!r} ({model.count_params():,} parameters)")

    costs = profile(model)
    result = _convert(model, args.int8, verify=True)
    tflite_path = result.save(os.path.join(out_dir, f"{name}.tflite"))
    report_path = os.path.join(out_dir, f"{name}.report.json")
    data = result.report.to_dict()
    glue = full_resolution_elementwise_ops(result.model_info)
    data["full_resolution_elementwise_ops"] = glue
    data["cost"] = costs.to_dict()["totals"]

    comparison = None
    if args.bench:
        paths = [tflite_path]
        if args.reference == "quicknet":
            input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
            progress("deploy", "converting the reference, larq-zoo QuickNet (random weights) ...")
            reference = _reference_model(input_shape)
            ref_result = _convert(reference, False, verify=False)
            ref_path = ref_result.save(os.path.join(out_dir, "quicknet.tflite"))
            paths = [ref_path, tflite_path]
            data["reference"] = {
                "model": "quicknet",
                "bops": profile(reference).to_dict()["totals"]["bops"],
                "size_bytes": ref_result.report.size_bytes,
            }
        progress("deploy", f"benchmarking {len(paths)} model(s) on this machine, {args.runs} runs ...")
        from larq_poke.bench import benchmark

        comparison = benchmark(paths, target="host", threads=args.threads, runs=args.runs)
        data["latency"] = comparison.to_dict()
    with open(report_path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    if args.json:
        emit_json(args, {**data, "tflite": tflite_path, "report": report_path})
        progress("deploy", f"done in {time.perf_counter() - start:.0f} s")
        return 0

    lines = [f"larq-poke deploy {name}: {tflite_path}, {report_path}"]
    lines.append(_section("cost (larq_poke.cost)"))
    lines.append(costs.to_text())
    lines.append(_section("conversion (LCE)"))
    lines.append(result.report.to_text())
    if _has_untrained_batch_norm(model):
        lines.append(
            "  note: this model has initial, untrained parameters (batch norms with all-zero gamma): "
            "they put exact zeros in front of binarizers, where the float reassociation of folded "
            "ops can flip sign(0), so parity figures are only meaningful for trained or calibrated "
            "weights (with non-trivial parameters, as in the golden tests, the pipeline matches Keras)."
        )
    if glue["binary_convs"]:
        lines.append(
            f"  full-resolution elementwise ops in the binary part: {glue['total']} "
            f"({glue['per_binary_conv']:.2f} per binary conv) {glue['counts']}"
        )
    if comparison is not None:
        lines.append(_section("latency (host, LCE interpreter)"))
        lines.append(comparison.to_text())
        if args.reference == "quicknet":
            ratio = comparison.ratios()[1]
            bops_ratio = costs.to_dict()["totals"]["bops"] / max(data["reference"]["bops"], 1)
            lines.append(
                f"  {name} / QuickNet: latency x{ratio:.2f}, BOPs x{bops_ratio:.2f}, "
                f"overhead per binary MAC O = {ratio / bops_ratio:.2f}"
            )
        lines.append("  x86 timings are no guide to ARM; ratios and the census carry over. "
                     "Measure on a phone with `larq-poke bench --target adb`.")
    print("\n".join(lines))
    progress("deploy", f"done in {time.perf_counter() - start:.0f} s")
    return 0
