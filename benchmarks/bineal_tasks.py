"""BiNeal's dense-prediction models against 8-bit counterparts trained the same way: per task the
held-out metric of the deployed binary model and of the int8 counterpart, and their host latency
ratio from one interleaved run.

```
python benchmarks/bineal_tasks.py            # full (tens of minutes on 2 cores)
python benchmarks/bineal_tasks.py --quick    # smoke run, numbers meaningless
python benchmarks/bineal_tasks.py --tasks sr,seg
```

Tasks (one module each): super-resolution (``task_super_resolution``: ×2 PSNR gain over bicubic
on held-out skimage photographs), matching (``task_matching``: accuracy at 3 px on held-out
photographs under generated homographies), segmentation (``task_segmentation``: mIoU on the
generated shapes), detection (``task_detection``: mAP@0.5 on the generated shapes). The data
are small stand-ins: **the results are not comparable to the paper's** (its datasets are not
available here, and it publishes no per-task accuracy).

Latency: each task's binary file (BiNeal blocks as ``LceBconv2d``, 8-bit first and last layers
as int8 ops) and the counterpart's full-int8 file, built at a deployment size, interleaved one
inference at a time (:func:`larq_poke.bench.host.benchmark_host`, LCE interpreter, the kernel
``preferred_kernel`` picks — indirect BGEMM on x86 — and 1 thread). ``*_latency_ratio`` =
int8 latency / binary latency (> 1: the binary model is faster). x86 timings are no guide to
ARM: LCE has no optimised x86 kernels (the paper measured 1.3–2.4× on a Snapdragon 845).

Last line: ``bineal_tasks: sr_psnr_gain_db=… match_acc=… seg_miou=… det_map50=…
sr_latency_ratio=… seg_latency_ratio=…`` (plus the other tasks' ratios).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import larq_poke  # noqa: E402,F401  (Keras 2 before TensorFlow)

TASKS = {"sr": "task_super_resolution", "match": "task_matching", "seg": "task_segmentation", "det": "task_detection"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test; numbers meaningless)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    parser.add_argument("--runs", type=int, default=10, help="timed inferences per model")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")

    from larq_poke.bench.host import benchmark_host

    results = {}
    for task in tasks:
        result = importlib.import_module(TASKS[task]).run(quick=args.quick)
        results[task] = result
        extra = f", ours* {result['binary_head']:.3f}" if "binary_head" in result else ""
        if "ssim" in result:
            extra += " (SSIM " + ", ".join(f"{k} {v:.4f}" for k, v in result["ssim"].items()) + ")"
        print(f"{task}: {result['metric']} binary {result['binary']:.3f}{extra}, int8 counterpart "
              f"{result['int8']:.3f}, baseline {result['baseline']:.3f} ({result['notes']})", flush=True)

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for task in tasks:
            for kind in ("binary", "int8"):
                path = os.path.join(folder, f"{task}_{kind}.tflite")
                with open(path, "wb") as f:
                    f.write(results[task][f"latency_{kind}_tflite"])
                paths.append(path)
        comparison = benchmark_host(paths, threads=1, runs=args.runs)
        latency = {os.path.basename(r.model).rsplit(".", 1)[0]: r.median_ms for r in comparison.results}
        for task in tasks:
            binary, int8 = latency[f"{task}_binary"], latency[f"{task}_int8"]
            print(f"{task}: host latency binary {binary:.1f} ms, int8 counterpart {int8:.1f} ms "
                  f"({comparison.results[0].kernel} kernel, 1 thread, median of {args.runs})", flush=True)
            figures[f"{task}_latency_ratio"] = int8 / binary
    if "sr" in results:
        figures["sr_psnr_gain_db"] = results["sr"]["binary"] - results["sr"]["baseline"]
    if "match" in results:
        figures["match_acc"] = results["match"]["binary"]
    if "seg" in results:
        figures["seg_miou"] = results["seg"]["binary"]
    if "det" in results:
        figures["det_map50"] = results["det"]["binary"]
    order = ["sr_psnr_gain_db", "match_acc", "seg_miou", "det_map50", "sr_latency_ratio", "seg_latency_ratio",
             "match_latency_ratio", "det_latency_ratio"]
    print("bineal_tasks: " + " ".join(f"{key}={figures[key]:.3f}" for key in order if key in figures))
    return figures


if __name__ == "__main__":
    main()
