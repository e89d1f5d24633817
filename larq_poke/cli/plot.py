"""``larq-poke plot``: Pareto plots of published top-1 against ACE, BOPs and host latency ratio.

```
larq-poke plot -o plots/                                           # ACE and BOPs plots
larq-poke plot -o docs/models --measurements docs/models/measurements.json   # + latency
larq-poke plot --models pokebnn-0.5x bnext-t --format svg --json
```
"""

from __future__ import annotations

import json
import os

from larq_poke.cli.output import emit_json, progress


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="Pareto plots of published top-1 against ACE, BOPs and host latency ratio",
        description="Plot our zoo models (published top-1, costs at 224x224) next to QuickNet, "
        "ReActNet and the literature anchors; PNG and SVG (matplotlib, the 'plot' extra).",
    )
    parser.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="where to write (default: .)")
    parser.add_argument("--measurements", metavar="FILE", default=None,
                        help="the model cards' measurements (benchmarks/model_cards.py): adds the "
                        "latency plot")
    parser.add_argument("--models", nargs="*", default=None, metavar="NAME",
                        help="zoo classifiers to plot (default: all with a published top-1)")
    parser.add_argument("--format", nargs="+", default=["png", "svg"], choices=("png", "svg", "pdf"))
    parser.add_argument("--float-bits", type=int, default=16, help="bits charged to float operands in ACE")
    parser.add_argument("--json", action="store_true", help="print the points and written files as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from larq_poke.plots import pareto_front, pareto_plot, pareto_points

    measurements = None
    if args.measurements:
        with open(args.measurements) as f:
            measurements = json.load(f)
    points = pareto_points(args.models, measurements, float_bits=args.float_bits,
                           progress=lambda message: progress("plot", message))
    os.makedirs(args.output_dir, exist_ok=True)
    axes = ["ace", "bops"] + (["latency"] if measurements else [])
    written = {}
    for axis in axes:
        written[axis] = pareto_plot(points, axis, os.path.join(args.output_dir, f"pareto_{axis}"), args.format)
        progress("plot", f"wrote {', '.join(written[axis])}")
    if args.json:
        emit_json(args, {
            "points": [dataclasses.asdict(p) for p in points],
            "pareto_front": {axis: [p.name for p in pareto_front(points, axis)] for axis in axes},
            "files": written,
        })
    else:
        for axis in axes:
            front = ", ".join(p.name for p in pareto_front(points, axis))
            print(f"{axis}: Pareto front {front}; " + ", ".join(written[axis]))
    return 0
