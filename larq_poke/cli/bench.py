"""``larq-poke bench``: latency of `.tflite` models on this machine or an Android device.

```
larq-poke bench quicknet.tflite pokebnn.tflite --target host --threads 1 --runs 20
larq-poke bench a.tflite b.tflite --target adb:SERIAL --benchmark-binary lce_benchmark_model \\
    --taskset f0 --op-profile --json
```
"""

from __future__ import annotations

from larq_poke.bench.model_file import check_tflite
from larq_poke.bench.results import KERNELS
from larq_poke.cli.output import emit_json


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the latency of .tflite models (host or Android via adb)",
        description=(
            "Measure the latency of LCE .tflite models, interleaved (A B A B ...), and print "
            "median/min/max/std and each model's ratio to the first. host: the LCE Python "
            "interpreter with the fastest binary kernel for this CPU (x86 times are no guide to "
            "ARM; compare ratios). adb: lce_benchmark_model on an Android device."
        ),
    )
    parser.add_argument("models", nargs="+", metavar="MODEL.tflite",
                        help="models to compare; the first is the reference for the ratios")
    parser.add_argument("--target", default="host", metavar="host|adb[:SERIAL]",
                        help="where to run (default: host)")
    parser.add_argument("--threads", type=int, default=1, help="threads (default: 1)")
    parser.add_argument("--runs", type=int, default=None,
                        help="timed runs per model (default: 20 on host, 50 per invocation on adb)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up runs per model (default: 2 on host, the tool's on adb)")
    parser.add_argument("--kernel", choices=("auto",) + KERNELS, default="auto",
                        help="LCE binary-conv kernel (default: auto = fastest for the CPU: "
                             "indirect_bgemm on x86-64, default on AArch64)")
    parser.add_argument("--xnnpack", choices=("on", "off"), default=None,
                        help="float ops through TFLite's XNNPACK delegate (default: off on host, "
                             "the tool's default on adb)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    adb = parser.add_argument_group("adb target")
    adb.add_argument("--benchmark-binary", metavar="PATH", default=None,
                     help="lce_benchmark_model built for the device "
                          "(default: $LCE_BENCHMARK_MODEL)")
    adb.add_argument("--taskset", metavar="MASK", default=None,
                     help="pin to the CPUs of this hex mask on the device, e.g. f0")
    adb.add_argument("--op-profile", action="store_true",
                     help="run with --enable_op_profiling=true and report time per node type")
    adb.add_argument("--rounds", type=int, default=None,
                     help="invocations per model, alternating models (default: 1, or 3 for "
                          "several models)")
    adb.add_argument("--adb", metavar="PATH", default=None,
                     help="adb executable (default: $ADB or adb on PATH)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from larq_poke.bench import benchmark
    from larq_poke.cli.output import progress

    for model in args.models:
        check_tflite(model)
    progress("bench", f"benchmarking {len(args.models)} model(s) on {args.target}, interleaved ...")
    comparison = benchmark(
        args.models,
        target=args.target,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        kernel=args.kernel,
        xnnpack=None if args.xnnpack is None else args.xnnpack == "on",
        rounds=args.rounds,
        taskset=args.taskset,
        op_profile=args.op_profile,
        benchmark_binary=args.benchmark_binary,
        adb=args.adb,
    )
    if args.json:
        emit_json(args, comparison.to_dict())
    else:
        print(comparison.to_text())
        for result in comparison.results:
            if result.op_profile:
                shares = result.op_profile["node_type_shares"]
                top = sorted(shares.items(), key=lambda kv: -kv[1])
                print(f"\ntime per node type, {result.model}:")
                for node_type, share in top:
                    print(f"  {node_type:<28} {share:6.2f} %")
    return 0
