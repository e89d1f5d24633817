"""Latency benchmarks of converted `.tflite` models, on this machine or on an Android device.

```python
import larq_poke
comparison = larq_poke.bench.benchmark(["quicknet.tflite", "pokebnn.tflite"], target="host")
print(comparison.to_text())
comparison.to_dict()["models"][1]["median_ms"]
```

* ``target="host"``: the LCE Python interpreter (:mod:`larq_poke.bench.host`), fastest binary
  kernel for the CPU, models interleaved per inference.
* ``target="adb"`` / ``"adb:SERIAL"``: `lce_benchmark_model` on a phone
  (:mod:`larq_poke.bench.adb`).
* :mod:`larq_poke.bench.log_parser` reads the output of `lce_benchmark_model` / `benchmark_model`.
* :mod:`larq_poke.bench.results` holds the result dataclasses and the printed table.

Submodules load on first use (the host benchmark imports the LCE interpreter, the adb one does not).
"""

from __future__ import annotations

import importlib
from typing import Optional, Sequence, Tuple

__all__ = ["benchmark", "parse_target", "adb", "host", "log_parser", "results", "model_file"]

_SUBMODULES = ("adb", "host", "log_parser", "results", "model_file")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"larq_poke.bench.{name}")
    raise AttributeError(f"module 'larq_poke.bench' has no attribute {name!r}")


def parse_target(target: str) -> Tuple[str, Optional[str]]:
    """Split a target: ``"host"``, ``"adb"`` or ``"adb:SERIAL"`` → ``(kind, serial or None)``."""
    kind, sep, serial = (target or "").partition(":")
    if kind == "host" and not sep:
        return "host", None
    if kind == "adb":
        if sep and not serial:
            raise ValueError("empty device serial in --target adb:SERIAL")
        return "adb", serial or None
    raise ValueError(f"unknown target {target!r}: use host, adb or adb:SERIAL")


def benchmark(
    models: Sequence[str],
    *,
    target: str = "host",
    threads: int = 1,
    runs: Optional[int] = None,
    warmup: Optional[int] = None,
    kernel: str = "auto",
    xnnpack: Optional[bool] = None,
    **adb_options,
):
    """Benchmark ``models`` interleaved on ``target``; return a ``BenchmarkComparison``.

    ``runs`` defaults to 20 on the host and 50 (the tool's default) on adb; ``warmup`` to 2 on
    the host and the tool's default on adb. ``xnnpack`` runs the float ops through TFLite's
    XNNPACK delegate (``None``: off on the host, as in the LCE interpreter; the tool's default on
    adb). ``adb_options`` (``rounds``, ``taskset``,
    ``op_profile``, ``benchmark_binary``, ``adb``, ``timeout``) go to
    :func:`larq_poke.bench.adb.benchmark_adb`.
    """
    kind, serial = parse_target(target)
    if kind == "host":
        if adb_options.get("op_profile"):
            raise ValueError(
                "op profiling needs lce_benchmark_model (--target adb); the LCE Python "
                "interpreter has no profiler"
            )
        unused = sorted(k for k, v in adb_options.items() if v not in (None, False))
        if unused:
            raise ValueError(f"option(s) {', '.join(unused)} only apply to --target adb")
        from larq_poke.bench.host import benchmark_host

        return benchmark_host(
            models,
            threads=threads,
            runs=20 if runs is None else runs,
            warmup=2 if warmup is None else warmup,
            kernel=kernel,
            xnnpack=bool(xnnpack),
        )
    from larq_poke.bench.adb import benchmark_adb

    return benchmark_adb(
        models,
        serial=serial,
        threads=threads,
        runs=50 if runs is None else runs,
        warmup=warmup,
        kernel=kernel,
        xnnpack=xnnpack,
        **adb_options,
    )
