"""Benchmark `.tflite` models on this machine with the LCE Python interpreter.

```python
from larq_poke.bench.host import benchmark_host
comparison = benchmark_host(["quicknet.tflite", "pokebnn.tflite"], threads=1, runs=20)
```

The models are interleaved one inference at a time (A B A B …) after a few warm-up inferences each,
so that drift in CPU frequency or load hits every model alike. Inputs are random values of each
model's input dtype and shape, drawn once per model.

**Kernel choice.** ``kernel="auto"`` picks the fastest binary-convolution kernel for the CPU:
the indirect BGEMM kernel on x86-64 (the default ruy kernel falls back to a scalar loop there and is
about 4-5x slower), the default optimised BGEMM kernel on AArch64. If the default kernel cannot
run a model (grouped binary convolutions), ``"auto"`` runs that model with the indirect BGEMM
kernel and a note says so. Each result records the kernel and thread count that produced it.

x86 timings are no guide to ARM latency: LCE has no optimised x86 kernels. Compare ratios between
models, and measure deployment latency on the device (:mod:`larq_poke.bench.adb`).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from larq_poke.bench.model_file import LCE_OPS, custom_ops, read_tflite
from larq_poke.bench.results import KERNELS, BenchmarkComparison, BenchmarkResult, latency_stats

__all__ = ["benchmark_host", "preferred_kernel", "cpu_description", "random_inputs"]

_ARM64 = ("aarch64", "arm64", "armv8l")


def preferred_kernel(machine: Optional[str] = None) -> str:
    """The fastest LCE binary-conv kernel for a CPU architecture (``platform.machine()`` name).

    ``"indirect_bgemm"`` on x86 (and other non-AArch64 CPUs, where both kernels use portable C++
    and the indirect one measured several times faster); ``"default"`` on AArch64, whose optimised
    NEON BGEMM kernel is LCE's main target.
    """
    machine = (machine or platform.machine()).lower()
    return "default" if machine in _ARM64 else "indirect_bgemm"


def cpu_description() -> str:
    """``"<arch>, <CPU model name>"`` as far as the platform tells."""
    machine = platform.machine() or "unknown"
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    name = value.strip()
                    break
    except OSError:
        name = platform.processor()
    return f"{machine}, {name}" if name else machine


def random_inputs(shapes, dtypes, seed: int = 0) -> List[np.ndarray]:
    """One random array per model input, of the input's shape and dtype (batch dimension 1)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, dtype in zip(shapes, dtypes):
        dtype = np.dtype(dtype)
        shape = tuple(int(d) if d and d > 0 else 1 for d in shape)
        if dtype == np.bool_:
            arrays.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            low, high = max(info.min, -128), min(info.max, 127 if info.min < 0 else 255)
            arrays.append(rng.integers(low, high + 1, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def _interpreter_flags(kernel: str, xnnpack: bool) -> dict:
    return {
        "use_indirect_bgemm": kernel == "indirect_bgemm",
        "use_reference_bconv": kernel == "reference",
        "use_xnnpack": bool(xnnpack),
    }


class _HostModel:
    """One loaded model: interpreter, inputs and the kernel that actually runs it."""

    def __init__(
        self,
        path: Path,
        kernel: str,
        threads: int,
        seed: int,
        notes: List[str],
        fallback: bool,
        xnnpack: bool = False,
    ):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        self.path = path
        flatbuffer = read_tflite(path)
        self.ops = custom_ops(flatbuffer)
        if not any(op in LCE_OPS for op in self.ops):
            notes.append(f"{path.name} has no LCE ops (a plain TFLite model: nothing binary ran)")
        self.kernel = kernel
        try:
            self.interpreter = Interpreter(
                flatbuffer, num_threads=threads, **_interpreter_flags(kernel, xnnpack)
            )
        except RuntimeError as err:
            if kernel != "default" or not fallback:
                raise RuntimeError(
                    f"{path}: the LCE interpreter could not prepare the model with the {kernel} "
                    f"kernel: {err}"
                ) from err
            # The default kernel rejects grouped binary convolutions; indirect BGEMM runs them.
            self.kernel = "indirect_bgemm"
            try:
                self.interpreter = Interpreter(
                    flatbuffer, num_threads=threads, **_interpreter_flags(self.kernel, xnnpack)
                )
            except RuntimeError as err2:
                raise RuntimeError(
                    f"{path}: the LCE interpreter could not prepare the model: {err2}"
                ) from err2
            notes.append(
                f"{path.name}: the default kernel could not run it (grouped binary convolutions?);"
                " measured with indirect_bgemm"
            )
        self.inputs = random_inputs(
            self.interpreter.input_shapes, self.interpreter.input_types, seed=seed
        )
        self.samples_ms: List[float] = []

    def invoke(self) -> float:
        """Run one inference; return its wall time in milliseconds."""
        start = time.perf_counter()
        self.interpreter.interpreter.predict(self.inputs)
        return (time.perf_counter() - start) * 1000.0


def benchmark_host(
    models: Sequence[Union[str, Path]],
    *,
    threads: int = 1,
    runs: int = 20,
    warmup: int = 2,
    kernel: str = "auto",
    seed: int = 0,
    xnnpack: bool = False,
) -> BenchmarkComparison:
    """Measure the latency of ``models`` on this CPU with the LCE interpreter, interleaved.

    # Arguments
        models: paths of `.tflite` files; the first is the reference for the ratios.
        threads: interpreter threads (1 gives the most stable figures).
        runs: timed inferences per model.
        warmup: untimed inferences per model before timing.
        kernel: ``"auto"`` (see :func:`preferred_kernel`), ``"default"``, ``"indirect_bgemm"`` or
            ``"reference"``.
        seed: seed of the random inputs.
        xnnpack: run the float ops through TFLite's XNNPACK delegate (the LCE interpreter's
            default is off); each result records the choice.

    # Returns
        A :class:`~larq_poke.bench.results.BenchmarkComparison` with one result per model.
    """
    if not models:
        raise ValueError("no models to benchmark")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    auto = kernel == "auto"
    if auto:
        kernel = preferred_kernel()
    elif kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose auto or one of {', '.join(KERNELS)}")

    notes: List[str] = []
    loaded = [
        _HostModel(Path(m), kernel, threads, seed, notes, fallback=auto, xnnpack=xnnpack)
        for m in models
    ]
    for _ in range(warmup):
        for model in loaded:
            model.invoke()
    for _ in range(runs):
        for model in loaded:
            model.samples_ms.append(model.invoke())

    device = cpu_description()
    if platform.machine().lower() not in _ARM64:
        notes.append(
            "host CPU is not AArch64: LCE has no optimised kernels here, so these times are no "
            "guide to ARM latency; compare the ratios"
        )
    results = []
    for model, name in zip(loaded, models):
        results.append(
            BenchmarkResult(
                model=str(name),
                target="host",
                kernel=model.kernel,
                threads=threads,
                runs=runs,
                warmup_runs=warmup,
                device=device,
                samples_ms=list(model.samples_ms),
                xnnpack=bool(xnnpack),
                details={"runtime": "larq_compute_engine.testing.Interpreter",
                         "custom_ops": model.ops, "interleaved": len(loaded) > 1},
                **latency_stats(model.samples_ms),
            )
        )
    return BenchmarkComparison(results=results, target="host", notes=notes)
