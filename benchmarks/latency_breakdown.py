"""Where the host latency of deployable PokeBNN-1.0x goes: binary convs against float glue.

    python benchmarks/latency_breakdown.py [--runs 50] [--size 224]

Converts four files and times them in one interleaved run (LCE interpreter, indirect BGEMM,
1 thread), with larq-zoo QuickNet as the reference of ``benchmarks/latency.py``:

* ``pokebnn``: the deployable model as ``convert`` emits it;
* ``residuals``: every PokeConv stops after its residual ADDs (no PRELU, no SE, no gate);
* ``binary``: every PokeConv is only its ``LceQuantize`` + ``LceBconv2d`` with the folded
  output transform (no shortcut, no PRELU, no SE).

The two cut-down files compute a different function; they exist to split the time. For each
file the script prints the median latency, the ratio to QuickNet and O = ratio / BOPs ratio
(BOPs are the same 48 binary convs in all three), and how many binary convs write bit-packed
output (none in any variant: the float output of every conv is written, as the real model needs
it for the residual). ``binary``'s O is the floor that LCE's binary kernels give on this CPU; the
gaps to ``residuals`` and ``pokebnn`` are the memory-bound float glue, already at the minimum op
count (see ``larq_poke.converters.rewrites.pokebnn``).

Why PokeBNN pays more glue per binary MAC than QuickNet: glue work scales with the binary convs'
output elements, binary work with their MACs. The script prints both models' output elements per
binary MAC from ``larq_poke.cost`` (PokeBNN's 1x1 convs do C_in MACs per output value, a 3x3
conv 9 C_in). Last line:
``breakdown: binary_overhead=... residuals_overhead=... pokebnn_overhead=... glue_ms=...
outputs_per_mac_ratio=...``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import common


def _cut_call(stop: str):
    """A DeployablePokeConv.call that stops after the binary conv or after the residual ADDs."""
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, training=None):
        x, r1 = (inputs if self._block is not None else (inputs, None))
        y = self.conv(x) * self._conv_scale + self._conv_shift
        if stop == "binary":
            return y
        z = y + self._local(x)
        if r1 is not None:
            z = z + self._block(r1)
        return z

    return call


def binary_outputs_per_mac(report) -> float:
    """Output values written by the binary convs per binary MAC (a ``larq_poke.cost`` report)."""
    import numpy as np

    binary = [row for row in report.layers if row.bops]
    values = sum(int(np.prod(row.output_shape[1:])) for row in binary)
    return values / sum(row.bops for row in binary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    from larq_poke.bench import benchmark
    from larq_poke.converters import convert
    from larq_poke.converters.rewrites.pokebnn import DeployablePokeConv
    from larq_poke.cost import profile

    folder = tempfile.mkdtemp(prefix="larq_poke_breakdown_")
    quicknet = common.quicknet(args.size)
    pokebnn = common.pokebnn(1.0, args.size)
    costs = {"quicknet": profile(quicknet), "pokebnn": profile(pokebnn)}
    bops_ratio = costs["pokebnn"].totals["bops"] / costs["quicknet"].totals["bops"]
    intensity = {key: binary_outputs_per_mac(report) for key, report in costs.items()}
    for key, value in intensity.items():
        print(f"{key}: {value * 1e6:.0f} binary-conv output values per million binary MACs")
    paths = {"quicknet": convert(quicknet, verify=False).save(os.path.join(folder, "quicknet.tflite"))}
    full_call = DeployablePokeConv.call
    try:
        for key in ("pokebnn", "residuals", "binary"):
            DeployablePokeConv.call = full_call if key == "pokebnn" else _cut_call(key)
            result = convert(pokebnn, verify=False)
            paths[key] = result.save(os.path.join(folder, f"{key}.tflite"))
            report = result.report
            print(f"{key}: {sum(report.op_counts.values())} ops, "
                  f"{report.op_counts.get('LceBconv2d', 0)} LceBconv2d, "
                  f"{report.bitpacked_outputs} with bit-packed output")
    finally:
        DeployablePokeConv.call = full_call

    order = ["quicknet", "binary", "residuals", "pokebnn"]
    comparison = benchmark([paths[k] for k in order], target="host", threads=1, runs=args.runs,
                           kernel="indirect_bgemm")
    print(comparison.to_text())
    medians = dict(zip(order, (m.median_ms for m in comparison.results)))
    overheads = {}
    for key, ratio in zip(order[1:], comparison.ratios()[1:]):
        overheads[key] = ratio / bops_ratio
        print(f"{key}: {medians[key]:.1f} ms, latency ratio {ratio:.2f}, BOPs ratio "
              f"{bops_ratio:.2f}, O = {overheads[key]:.2f}")
    glue = medians["pokebnn"] - medians["binary"]
    print(f"float glue: {glue:.1f} ms of {medians['pokebnn']:.1f} ms "
          f"(residual path {medians['residuals'] - medians['binary']:.1f} ms, PRELU + SE + gate "
          f"{medians['pokebnn'] - medians['residuals']:.1f} ms)")
    print(f"breakdown: binary_overhead={overheads['binary']:.2f} "
          f"residuals_overhead={overheads['residuals']:.2f} "
          f"pokebnn_overhead={overheads['pokebnn']:.2f} glue_ms={glue:.1f} "
          f"outputs_per_mac_ratio={intensity['pokebnn'] / intensity['quicknet']:.2f}")


if __name__ == "__main__":
    main()
