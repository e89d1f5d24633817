"""Benchmark results: a :class:`BenchmarkResult` per model, a :class:`BenchmarkComparison` per run.

```python
comparison = larq_poke.bench.benchmark(["a.tflite", "b.tflite"], target="host", runs=20)
comparison.ratios()          # [1.0, 1.37]: each model's median latency / the first model's
print(comparison.to_text())  # the table `larq-poke bench` prints
comparison.to_dict()         # the JSON of `larq-poke bench --json`
```

Every figure carries the kernel and thread count that produced it: LCE's binary kernels differ by
an order of magnitude between CPUs and kernels, so a number without them means little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["KERNELS", "BenchmarkResult", "BenchmarkComparison", "latency_stats"]

# Names of the LCE binary-convolution kernels, as recorded in `BenchmarkResult.kernel`.
KERNELS = ("default", "indirect_bgemm", "reference")


def latency_stats(samples_ms: Sequence[float]) -> Dict[str, float]:
    """Median, mean, min, max and population standard deviation of per-run latencies (ms)."""
    if not samples_ms:
        raise ValueError("no latency samples")
    ordered = sorted(samples_ms)
    n = len(ordered)
    mid = n // 2
    median = ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    mean = sum(ordered) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in ordered) / n)
    return {"median_ms": median, "mean_ms": mean, "min_ms": ordered[0], "max_ms": ordered[-1],
            "std_ms": std}


@dataclass
class BenchmarkResult:
    """Latency of one model on one target.

    # Arguments
        model: path of the `.tflite` file as given.
        target: ``"host"`` or ``"adb"`` / ``"adb:SERIAL"``.
        kernel: LCE binary-conv kernel that ran: ``"default"`` (optimised BGEMM),
            ``"indirect_bgemm"`` or ``"reference"``.
        threads: interpreter / benchmark threads.
        runs: number of timed inferences behind the figures.
        warmup_runs: untimed inferences before them (``None``: the tool's default).
        median_ms, mean_ms, min_ms, max_ms, std_ms: latency statistics in milliseconds.
        device: what ran it (CPU model, or the Android device's model name and serial).
        samples_ms: the per-run latencies on the host; on adb one figure per tool invocation
            (its average, or its median where the tool prints one).
        xnnpack: whether XNNPACK ran the float ops (``None``: the tool's default, which is on).
        details: anything else worth keeping (model size, init time, memory, tool flags, notes).
        op_profile: the "Summary by node type" shares etc. of ``--enable_op_profiling`` (adb).
    """

    model: str
    target: str
    kernel: str
    threads: int
    runs: int
    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    warmup_runs: Optional[int] = None
    device: str = ""
    samples_ms: List[float] = field(default_factory=list)
    xnnpack: Optional[bool] = None
    details: Dict[str, Any] = field(default_factory=dict)
    op_profile: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "model": self.model,
            "median_ms": self.median_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "std_ms": self.std_ms,
            "runs": self.runs,
            "warmup_runs": self.warmup_runs,
            "threads": self.threads,
            "kernel": self.kernel,
            "target": self.target,
            "device": self.device,
            "xnnpack": self.xnnpack,
            "samples_ms": list(self.samples_ms),
            "details": dict(self.details),
        }
        if self.op_profile is not None:
            out["op_profile"] = self.op_profile
        return out


@dataclass
class BenchmarkComparison:
    """Results of several models measured in one interleaved run; the first is the reference."""

    results: List[BenchmarkResult]
    target: str
    notes: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.results:
            raise ValueError("a comparison needs at least one result")

    @property
    def reference(self) -> BenchmarkResult:
        return self.results[0]

    def ratios(self) -> List[float]:
        """Median latency of each model divided by the first model's median latency."""
        base = self.reference.median_ms
        return [r.median_ms / base if base > 0 else math.nan for r in self.results]

    def to_dict(self) -> Dict[str, Any]:
        models = []
        for result, ratio in zip(self.results, self.ratios()):
            entry = result.to_dict()
            entry["ratio_to_first"] = ratio
            models.append(entry)
        return {
            "target": self.target,
            "reference": self.reference.model,
            "models": models,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A readable table: median / min / max / std (ms), ratio, kernel and threads per model."""
        names = [r.model for r in self.results]
        width = max(len("model"), *(len(n) for n in names))
        header = (
            f"{'model':<{width}}  {'median ms':>10}  {'min ms':>9}  {'max ms':>9}  {'std ms':>8}"
            f"  {'ratio':>6}  {'runs':>5}  {'threads':>7}  kernel"
        )
        lines = [header, "-" * len(header)]
        for result, ratio in zip(self.results, self.ratios()):
            lines.append(
                f"{result.model:<{width}}  {result.median_ms:>10.3f}  {result.min_ms:>9.3f}"
                f"  {result.max_ms:>9.3f}  {result.std_ms:>8.3f}  {ratio:>6.3f}"
                f"  {result.runs:>5d}  {result.threads:>7d}  {result.kernel}"
            )
        devices = sorted({r.device for r in self.results if r.device})
        lines.append("")
        lines.append(f"target: {self.target}" + (f" ({'; '.join(devices)})" if devices else ""))
        lines.append("ratio = median latency / median latency of the first model")
        xnnpack = sorted({r.xnnpack for r in self.results if r.xnnpack is not None})
        if xnnpack:
            lines.append("float ops: " + " / ".join(
                "XNNPACK delegate" if on else "TFLite builtin kernels (no XNNPACK)" for on in xnnpack
            ))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)
