"""The conversion and latency figures of the model cards (``docs/models/measurements.json``).

    python benchmarks/model_cards.py [--models pokebnn-1.0x bnext-t ...] [--runs 10] [--size 224]
    python -m larq_poke.cards docs/models          # then rewrite the cards

Per zoo classifier: seeded random parameters (``common.randomize``; PokeBNN's activation bounds
and BiNeal's batch norms calibrated on random images, as their conversion needs), float stem and
head, converted with ``larq_poke.converters.convert`` (no parity run: census and latency do not
depend on trained values), then timed against larq-zoo's QuickNet converted the same way, in one
interleaved host run per model (LCE interpreter, indirect BGEMM on x86-64, 1 thread); larq-zoo's
QuickNetSmall and QuickNetLarge are timed against QuickNet the same way, for the Pareto plots.
Results are merged into the measurements file, so models can be measured a few at a time.

Last line: ``model_cards: <name>=<latency ratio to QuickNet> ...`` for the models of this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _model(name: str, size: int):
    from larq_poke.zoo import build

    family, _, variant = name.partition("-")
    if family == "pokebnn":
        return common.pokebnn(float(variant.rstrip("x")), size)
    if family == "bineal":
        return common.bineal(float(variant.rstrip("x")), size)
    # BNext: random parameters are enough for census and latency (no parity run here).
    return common.randomize(build(name, input_shape=(size, size, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--no-anchors", action="store_true", help="skip timing QuickNetSmall / QuickNetLarge")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "models", "measurements.json"))
    args = parser.parse_args()

    from larq_poke.bench import benchmark
    from larq_poke.converters import convert
    from larq_poke.zoo import list_models

    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        raise SystemExit(f"unknown zoo classifiers: {unknown}")
    data = {"machine": {}, "models": {}}
    if os.path.exists(args.out):
        with open(args.out) as f:
            data = json.load(f)
    folder = tempfile.mkdtemp(prefix="larq_poke_cards_")
    quicknet = convert(common.quicknet(args.size), verify=False).save(os.path.join(folder, "quicknet.tflite"))

    summary = []
    if not args.no_anchors:  # larq-zoo's QuickNet family, timed in one interleaved run
        import larq_zoo

        anchors = ["QuickNetSmall", "QuickNetLarge"]
        paths = [quicknet] + [
            convert(common.randomize(getattr(larq_zoo.sota, a)(weights=None, input_shape=(args.size, args.size, 3))),
                    verify=False).save(os.path.join(folder, f"{a}.tflite"))
            for a in anchors
        ]
        ratios = benchmark(paths, target="host", threads=1, runs=args.runs).ratios()
        data["anchors"] = {"QuickNet": 1.0, **{a: r for a, r in zip(anchors, ratios[1:])}}
        summary += [f"{a}={r:.3f}" for a, r in zip(anchors, ratios[1:])]
    for name in names:
        result = convert(_model(name, args.size), verify=False)
        report = result.report
        path = result.save(os.path.join(folder, f"{name}.tflite"))
        comparison = benchmark([quicknet, path], target="host", threads=1, runs=args.runs)
        reference, model = comparison.results
        data["models"][name] = {
            "census": {
                "lce_bconv2d": sum(1 for fate in report.binary_layers if fate.fused),
                "binary_layers": len(report.binary_layers),
                "bitpacked_outputs": report.bitpacked_outputs,
                "float_ops_between_binary_convs": len(report.float_ops_between_binary_convs),
                "size_bytes": report.size_bytes,
                "op_counts": dict(report.op_counts),
            },
            "latency_ms": model.median_ms,
            "quicknet_ms": reference.median_ms,
            "ratio_to_quicknet": comparison.ratios()[1],
            "runs": args.runs,
            "input_size": args.size,
        }
        data["machine"] = {"cpu": _cpu(), "kernel": model.kernel, "threads": model.threads}
        data["date"] = datetime.date.today().isoformat()
        with open(args.out, "w") as f:  # after every model: a long run keeps what it measured
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        summary.append(f"{name}={comparison.ratios()[1]:.3f}")
        print(f"{name}: {report.to_text().splitlines()[0]}; latency {model.median_ms:.1f} ms, "
              f"QuickNet {reference.median_ms:.1f} ms", flush=True)
    print("model_cards: " + " ".join(summary))


if __name__ == "__main__":
    main()
