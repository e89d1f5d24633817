"""Host latency of PokeBNN-1.0x and BNext-T against larq-zoo QuickNet, LCE's reference design,
all converted the same way: one interleaved run, indirect BGEMM kernel, 1 thread.

    python benchmarks/latency.py [--runs 50] [--size 224] [--xnnpack]

Prints each model's latency ratio to QuickNet and the overhead factor
O = (latency ratio) / (BOPs ratio): how much slower per binary MAC than QuickNet (target O <= 1.3).
x86 timings are no guide to ARM (LCE has no optimised x86 kernels); ratios carry over better.
Last line: ``latency: pokebnn_ratio=... pokebnn_overhead=... bnext_ratio=... bnext_overhead=...``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--xnnpack", action="store_true",
                        help="float ops through XNNPACK (default: TFLite's builtin kernels)")
    args = parser.parse_args()

    from larq_poke.bench import benchmark
    from larq_poke.converters import convert
    from larq_poke.cost import profile

    models = {
        "quicknet": common.quicknet(args.size),
        "pokebnn": common.pokebnn(1.0, args.size),
        "bnext": common.bnext_t(args.size),
    }
    folder = tempfile.mkdtemp(prefix="larq_poke_latency_")
    paths, bops = {}, {}
    for key, model in models.items():
        result = convert(model, verify=False)
        report = result.report
        fused = sum(1 for fate in report.binary_layers if fate.fused)
        paths[key] = result.save(os.path.join(folder, f"{key}.tflite"))
        bops[key] = profile(model).to_dict()["totals"]["bops"]
        print(f"{key}: {model.name}, {fused}/{len(report.binary_layers)} binary layers -> "
              f"LceBconv2d, {sum(report.op_counts.values())} ops, "
              f"{report.size_bytes / 1e6:.2f} MB, {bops[key] / 1e9:.3f} G BOPs, "
              f"converted in {report.conversion_seconds:.0f} s")

    order = ["quicknet", "pokebnn", "bnext"]
    comparison = benchmark([paths[k] for k in order], target="host", threads=1, runs=args.runs,
                           kernel="indirect_bgemm", xnnpack=args.xnnpack)
    print(comparison.to_text())
    ratios = dict(zip(order, comparison.ratios()))
    fastest = {k: r.min_ms for k, r in zip(order, comparison.results)}
    figures = {}
    for key in ("pokebnn", "bnext"):
        bops_ratio = bops[key] / bops["quicknet"]
        figures[key] = (ratios[key], ratios[key] / bops_ratio)
        min_ratio = fastest[key] / fastest["quicknet"]
        print(f"{key}: latency ratio {ratios[key]:.2f}, BOPs ratio {bops_ratio:.2f}, "
              f"overhead O = {ratios[key] / bops_ratio:.2f} (from the fastest runs, less "
              f"sensitive to a busy host: ratio {min_ratio:.2f}, O = {min_ratio / bops_ratio:.2f})")
    print(f"latency: pokebnn_ratio={figures['pokebnn'][0]:.2f} "
          f"pokebnn_overhead={figures['pokebnn'][1]:.2f} bnext_ratio={figures['bnext'][0]:.2f} "
          f"bnext_overhead={figures['bnext'][1]:.2f}")


if __name__ == "__main__":
    main()
