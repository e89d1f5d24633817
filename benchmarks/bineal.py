"""BiNeal-1.0x against larq-zoo QuickNet (LCE's reference BNN) and an 8-bit ResNet-18 (full-int8
TFLite), in one interleaved host run: LCE interpreter, indirect BGEMM kernel, 1 thread.

    python benchmarks/bineal.py [--runs 30] [--size 224] [--xnnpack] [--threads 1]
    python benchmarks/bineal.py --target adb[:SERIAL] [--benchmark-binary lce_benchmark_model] [--adb PATH] [--rounds 3]

All models have seeded random parameters with calibrated batch norms (latency and census do not
depend on trained values; trivial values would change what the converter emits). BiNeal is
converted with ``int8=True`` (its 8-bit stem and classifier as int8 ops, as the paper deploys
it) and without (float stem and classifier).

``--xnnpack`` runs every file's float and int8 ops through TFLite's XNNPACK delegate, as
``lce_benchmark_model`` does by default on a device (the binary ops stay LCE's).

``--target adb`` runs the same files, interleaved, on an Android device through adb with LCE's
``lce_benchmark_model`` (:mod:`larq_poke.bench.adb`; ``--rounds`` invocations per file, 3 by
default, the files alternating, each invocation ``--runs`` runs after the tool's warm-up; a
file's figure is the median of its invocations' medians, or of their averages where the tool
prints no median, as the printout's ``median_of`` says; LCE's default kernels, its optimised NEON
BGEMM on AArch64, and the tool's XNNPACK default): the ARM figures the paper's claims are about.
Everything else the script prints is computed on the host as before.

Printed per model: LCE census, bit-packed outputs, size, ACE, BOPs, the systolic-array cycle
estimate (:mod:`larq_poke.cycles`, default 64×64 array; ResNet-18 costed at 8 bits, the BNNs'
non-binary operands at 16 bits and again at 8), latency.
The cycle ratios are printed for BiNeal as benchmarked (float branch outputs, stored before the
add) and with the INT4 branch outputs of D6 (the paper's design; also costed for PokeBNN-1.0x and
BNext-T): once with the BNNs' non-binary operands at 16 bits, once with them at 8 bits, as
ResNet-18's (BiNeal's branch outputs then at 8 bits too). Figures:

* ``overhead`` O = (BiNeal / QuickNet latency) / (BiNeal / QuickNet BOPs): the cost per binary
  MAC relative to LCE's reference design (target O ≤ 1.0), for the deployment form of D3 (BiNeal
  with ``int8=True``; QuickNet as LCE converts it, float stem); the float-stem BiNeal's O is
  printed on the line before;
* ``body_overhead``: the same O with each file's stem taken out. The stem is every op before the
  first binary conv (its ``LceQuantize`` included); the run times it as a file of its own, cut
  from the converted file (``common.stem_prefix``), so body and head = whole file − stem. Prefixes
  ending at each op of the first block split that block op by op, and prefixes ending at the
  7×7 int8 stem conv compare it with the int8 ResNet-18's identical stem conv (not in the last
  line);
* ``int8_resnet18_ratio`` = ResNet-18 int8 latency / BiNeal int8 latency (the paper claims ≥ 1.3×
  on a Snapdragon 845 with its Bolt engine; x86 reference kernels are no guide to ARM);
* ``ops_per_block``: float elementwise ops after the stem (body and head, not counting the
  ``QUANTIZE`` / ``DEQUANTIZE`` conversions) per block in the int8 BiNeal file.

Also printed: how many of the int8 file's stem signs and last-block signs (the ±1 map the pool
reads) differ from the training form's on 4 held-out images; and a what-if, ``bineal_int8_adds``:
the int8 file with the blocks' branch outputs and ADDs in int8 as well (``common.bineal_int8_adds``;
not exact, so not a deployment form), its latency, O and sign agreement.

Last line::

    bineal: bconv=…/… bitpacked=…/… ops_per_block=… overhead=… int8_resnet18_ratio=…

(``body_overhead`` is printed on the line of the latency ratios, as "without the stems").
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter

import common
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--xnnpack", action="store_true",
                        help="run every file's float and int8 ops through XNNPACK (lce_benchmark_model's default)")
    parser.add_argument("--target", default="host",
                        help="host (default) or adb[:SERIAL]: the same interleaved run on an Android device "
                             "with lce_benchmark_model (LCE's default kernels there, XNNPACK as the tool sets it)")
    parser.add_argument("--benchmark-binary", default=None,
                        help="lce_benchmark_model for the device (adb only; default: $LCE_BENCHMARK_MODEL)")
    parser.add_argument("--adb", default=None, help="the adb executable (adb only; default: adb on PATH)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="adb only: invocations per file, the files alternating (default 3; the figure is the "
                             "median of the invocations' medians)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    # every check before minutes of conversions
    from larq_poke.bench import parse_target
    from larq_poke.bench.adb import AdbError, find_adb, find_benchmark_binary

    try:
        on_host = parse_target(args.target)[0] == "host"
    except ValueError as err:
        parser.error(str(err))
    if args.runs < 1 or args.threads < 1 or args.rounds < 1:
        parser.error("--runs, --rounds and --threads must be at least 1")
    if not on_host and args.xnnpack:
        parser.error("--xnnpack is for the host; on a device lce_benchmark_model decides (it uses XNNPACK by default)")
    if on_host and (args.benchmark_binary or args.adb or args.rounds != 3):
        parser.error("--benchmark-binary, --adb and --rounds are for --target adb")
    if not on_host:
        try:
            find_adb(args.adb)
            find_benchmark_binary(args.benchmark_binary)
        except AdbError as err:
            parser.error(str(err))

    from larq_poke.bench import benchmark
    from larq_poke.converters import convert
    from larq_poke.converters.flatbuffer import read_flatbuffer
    from larq_poke.cost import profile
    from larq_poke.cycles import estimate_cycles
    from larq_poke.layers.bineal import bineal_block_names

    folder = tempfile.mkdtemp(prefix="larq_poke_bineal_")
    size = args.size
    bineal = common.bineal(1.0, size)
    quicknet = common.quicknet(size)
    resnet, resnet_flatbuffer = common.resnet18_int8(size)
    blocks = len(bineal_block_names(bineal))

    paths, costs, reports = {}, {}, {}
    for key, model, int8 in (("quicknet", quicknet, False), ("bineal", bineal, False), ("bineal_int8", bineal, True)):
        result = convert(model, int8=int8, sample_inputs=common.images(4, size, seed=11))
        reports[key] = result.report
        paths[key] = result.save(os.path.join(folder, f"{key}.tflite"))
    paths["resnet18_int8"] = os.path.join(folder, "resnet18_int8.tflite")
    with open(paths["resnet18_int8"], "wb") as f:
        f.write(resnet_flatbuffer)
    for key, model, bits in (("quicknet", quicknet, None), ("bineal", bineal, None), ("resnet18_int8", resnet, 8)):
        totals = profile(model, float_bits=bits or 16).totals  # ResNet-18's ACE at 8 x 8 bits, as it runs
        cycles = estimate_cycles(model, as_bits=bits).totals["cycles"]
        cycles8 = cycles if bits == 8 else estimate_cycles(model, as_bits=8).totals["cycles"]
        costs[key] = dict(ace=totals["ace"], bops=totals["bops"], cycles=cycles, cycles8=cycles8)
    costs["bineal_int8"] = costs["bineal"]
    from larq_poke.zoo import BNextT, PokeBNN

    from larq_poke.zoo import BiNeal

    shape = {"input_shape": (size, size, 3)}  # at --size, as the benchmarked models
    cycles_only = (("pokebnn-1.0x", lambda: PokeBNN(1.0, **shape)), ("bnext-t", lambda: BNextT(**shape)),
                   ("bineal-1.0x, INT4 branch outputs (D6)", lambda: BiNeal(1.0, branch_bits=4, **shape)))
    more_cycles, more_cycles8 = {}, {}
    for key, build in cycles_only:
        model = build()
        more_cycles[key] = estimate_cycles(model).totals["cycles"]
        more_cycles8[key] = estimate_cycles(model, as_bits=8).totals["cycles"]
        print(f"{key}: estimated cycles {more_cycles[key]:,} ({more_cycles8[key]:,} with non-binary operands at 8 bits)")
    for key in ("quicknet", "bineal", "bineal_int8"):
        report = reports[key]
        fused = sum(1 for fate in report.binary_layers if fate.fused)
        print(f"{key}: {fused}/{len(report.binary_layers)} LceBconv2d, bit-packed {report.bitpacked_outputs}/"
              f"{len(report.bconvs)}, {report.size_bytes / 1e6:.2f} MB, float compute ops "
              f"{report.float_compute_ops}, parity {report.parity.max_abs_diff:.2e} "
              f"(top-1 agreement {report.parity.top1_agreement:.2f})")
    print(f"resnet18_int8: {os.path.getsize(paths['resnet18_int8']) / 1e6:.2f} MB")
    for key, cost in costs.items():
        print(f"{key}: ACE {cost['ace'] / 1e9:.3f} G, BOPs {cost['bops'] / 1e9:.3f} G, "
              f"estimated cycles {cost['cycles']:,} ({cost['cycles8']:,} with non-binary operands at 8 bits)")

    # Does the int8 file decide BiNeal's signs as the training form does? On held-out images: the
    # stem (exact but for values within float error of the threshold, also for inputs below the
    # learned bound: the model clips them at -128 steps as int8 does) and the ±1 map the pool
    # reads (one flip anywhere before it can move it).
    held_out = common.images(4, size, seed=12)
    with open(paths["bineal_int8"], "rb") as f:
        int8_flatbuffer = f.read()
    training, int8_stem = common.bineal_stem_signs(bineal, int8_flatbuffer, held_out)
    stem_differ = (int8_stem >= 0) != (training >= 0)
    ties = int(np.sum(stem_differ & (np.abs(training) < 1e-5)))
    bound = float(np.max(bineal.get_layer("stem.conv").input_quantizer.bounds.numpy()))
    training, int8_map = common.bineal_last_signs(bineal, int8_flatbuffer, held_out)
    map_differ = np.sign(int8_map) != training
    print(f"bineal_int8 signs against the training form, 4 held-out images: stem {stem_differ.sum():,} of "
          f"{stem_differ.size:,} differ ({ties} within 1e-5 of the threshold; {np.sum(held_out < -bound):,} input "
          f"values below the learned bound -{bound:.3f}, which int8 and the model both clip at -128 steps), last block {map_differ.sum():,} of {map_differ.size:,}")

    # What-if: the blocks' branch outputs and ADDs in int8 as well (LCE's binary convs then write
    # int8, the ADDs run in int8). Not exact; timed below against the float-add int8 file.
    _, int8_adds_flatbuffer = common.bineal_int8_adds(bineal, common.images(4, size, seed=11))
    paths["bineal_int8_adds"] = os.path.join(folder, "bineal_int8_adds.tflite")
    with open(paths["bineal_int8_adds"], "wb") as out:
        out.write(int8_adds_flatbuffer)
    adds_info = read_flatbuffer(int8_adds_flatbuffer)
    adds_outputs = Counter(b.output for b in adds_info.bconvs)
    adds_ops = Counter(info_op.op_type for info_op in adds_info.operators
                       if info_op.op_type == "ADD" and adds_info.op_output_dtype(info_op) == "INT8")
    training_logits = bineal.predict(held_out, verbose=0)
    adds_training, adds_map = common.bineal_last_signs(bineal, int8_adds_flatbuffer, held_out)
    adds_differ = np.sign(adds_map) != adds_training
    adds_top1 = np.mean(common.tflite_predict(int8_adds_flatbuffer, held_out).argmax(-1) == training_logits.argmax(-1))
    int8_top1 = np.mean(common.tflite_predict(int8_flatbuffer, held_out).argmax(-1) == training_logits.argmax(-1))
    print(f"bineal_int8_adds (what-if, not a deployment form): bconv outputs {dict(adds_outputs)}, int8 ADDs "
          f"{sum(adds_ops.values())}; last block {adds_differ.sum():,} of {adds_differ.size:,} signs differ from the "
          f"training form; top-1 agreement with it {adds_top1:.2f} (float-add int8 file: {int8_top1:.2f})")

    for key in ("quicknet", "bineal", "bineal_int8"):
        paths[f"{key}_stem"] = os.path.join(folder, f"{key}_stem.tflite")
        with open(paths[key], "rb") as f, open(paths[f"{key}_stem"], "wb") as out:
            out.write(common.stem_prefix(f.read()))

    # The 7x7 int8 stem conv alone (its input QUANTIZE and CONV_2D) in BiNeal and in the int8
    # ResNet-18, whose stem is the same conv: does BiNeal's int8 stem cost what int8 costs?
    for key in ("bineal_int8", "resnet18_int8"):
        with open(paths[key], "rb") as f:
            flatbuffer = f.read()
        names = [op.op_type for op in read_flatbuffer(flatbuffer).operators]
        paths[f"{key}_stem_conv"] = os.path.join(folder, f"{key}_stem_conv.tflite")
        with open(paths[f"{key}_stem_conv"], "wb") as out:
            out.write(common.truncate(flatbuffer, names.index("CONV_2D") + 1))

    # The first block, op by op: prefixes of the file that end at each op from the first binary
    # conv to the first LceQuantize after it (the one that feeds the next block).
    block_ops = {}
    for key in ("quicknet", "bineal_int8"):
        with open(paths[key], "rb") as f:
            flatbuffer = f.read()
        info = read_flatbuffer(flatbuffer)
        bconvs = {b.op_index: b for b in info.bconvs}
        first = min(bconvs)
        last = next(op.index for op in info.operators[first:] if op.op_type == "LceQuantize")
        labels = []
        for index in range(first - 1, last + 1):
            paths[f"{key}_ops{index + 1}"] = os.path.join(folder, f"{key}_ops{index + 1}.tflite")
            with open(paths[f"{key}_ops{index + 1}"], "wb") as out:
                out.write(common.truncate(flatbuffer, index + 1))
            if index >= first:
                label = info.operators[index].op_type
                if index in bconvs:
                    b = bconvs[index]
                    label += f" {b.kernel_size[0]}x{b.kernel_size[1]} {b.output}"
                labels.append((index + 1, label))
        block_ops[key] = labels

    order = ["quicknet", "bineal", "bineal_int8", "bineal_int8_adds", "resnet18_int8", "quicknet_stem", "bineal_stem",
             "bineal_int8_stem", "bineal_int8_stem_conv", "resnet18_int8_stem_conv"] + [k for k in paths if "_ops" in k]
    on_target = (dict(kernel="indirect_bgemm", xnnpack=args.xnnpack) if on_host else
                 dict(kernel="auto", rounds=args.rounds, benchmark_binary=args.benchmark_binary, adb=args.adb))
    comparison = benchmark([paths[k] for k in order], target=args.target, threads=args.threads, runs=args.runs,
                           **on_target)
    print(comparison.to_text())
    if not on_host:
        kinds = Counter(r.details.get("median_of", "?") for r in comparison.results)
        print("device figures: median over invocations of the " + ", ".join(f"{k} ({n} files)" for k, n in kinds.items()))
    latency = {k: r.median_ms for k, r in zip(order, comparison.results)}
    bops_ratio = costs["bineal"]["bops"] / costs["quicknet"]["bops"]

    def body(key):
        return latency[key] - latency[f"{key}_stem"]

    overhead_float = latency["bineal"] / latency["quicknet"] / bops_ratio
    overhead = latency["bineal_int8"] / latency["quicknet"] / bops_ratio
    # nan when timing noise leaves QuickNet no body time (prefix medians are noisy)
    body_overhead = body("bineal_int8") / body("quicknet") / bops_ratio if body("quicknet") > 0 else float("nan")
    resnet_ratio = latency["resnet18_int8"] / latency["bineal_int8"]
    print(f"stems (ops before the first binary conv): QuickNet {latency['quicknet_stem']:.2f} ms, BiNeal "
          f"int8 {latency['bineal_int8_stem']:.2f} ms, BiNeal float {latency['bineal_stem']:.2f} ms; body "
          f"and head: QuickNet {body('quicknet'):.2f} ms, BiNeal int8 {body('bineal_int8'):.2f} ms, "
          f"BiNeal float {body('bineal'):.2f} ms")
    print(f"7x7 int8 stem conv (file prefix ending at the first CONV_2D): BiNeal {latency['bineal_int8_stem_conv']:.2f}"
          f" ms, ResNet-18 {latency['resnet18_int8_stem_conv']:.2f} ms")
    for key, labels in block_ops.items():
        steps = ", ".join(f"{label} {latency[f'{key}_ops{n}'] - latency[f'{key}_ops{n - 1}']:.2f}"
                          for n, label in labels)
        print(f"{key} first block, ms per op (differences of prefix medians, noisy): {steps}")
    print(f"BiNeal/QuickNet: latency {latency['bineal_int8'] / latency['quicknet']:.2f} (float stem and "
          f"head {latency['bineal'] / latency['quicknet']:.2f}), BOPs {bops_ratio:.2f}, overhead O = "
          f"{overhead:.2f} (float stem and head: {overhead_float:.2f}; without the stems: "
          f"{body_overhead:.2f}); ResNet-18 int8 / BiNeal int8 latency "
          f"{resnet_ratio:.2f}")
    print(f"int8 branch outputs and ADDs (what-if): {latency['bineal_int8_adds']:.2f} ms, "
          f"{latency['bineal_int8_adds'] / latency['bineal_int8']:.2f} x the float-add int8 file, overhead O = "
          f"{latency['bineal_int8_adds'] / latency['quicknet'] / bops_ratio:.2f}")
    int4 = "bineal-1.0x, INT4 branch outputs (D6)"
    for column, others, where in (("cycles", more_cycles, "the BNNs' non-binary operands at 16 bits"),
                                  ("cycles8", more_cycles8, "every non-binary operand at 8 bits")):
        for label, cycles in (("float" if column == "cycles" else "8-bit", costs["bineal"][column]),
                              ("INT4 (D6)", others[int4])):
            print(f"estimated cycles ({where}), BiNeal with {label} branch outputs: ResNet-18 int8 / BiNeal "
                  f"{costs['resnet18_int8'][column] / cycles:.2f}, QuickNet / BiNeal "
                  f"{costs['quicknet'][column] / cycles:.2f}, PokeBNN-1.0x / BiNeal "
                  f"{others['pokebnn-1.0x'] / cycles:.2f}, BNext-T / BiNeal {others['bnext-t'] / cycles:.2f}")
    report = reports["bineal_int8"]
    fused = sum(1 for fate in report.binary_layers if fate.fused)
    with open(paths["bineal_int8"], "rb") as f:  # the stem's float ops are not the blocks'
        ops_per_block = common.float_elementwise_ops(f.read()) / blocks
    print(f"bineal: bconv={fused}/{len(report.binary_layers)} bitpacked={report.bitpacked_outputs}/"
          f"{len(report.bconvs)} ops_per_block={ops_per_block:.2f} overhead={overhead:.2f} "
          f"int8_resnet18_ratio={resnet_ratio:.2f}")


if __name__ == "__main__":
    main()
