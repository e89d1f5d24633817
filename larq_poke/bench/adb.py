"""Benchmark `.tflite` models on an Android device with `lce_benchmark_model` over adb.

```python
from larq_poke.bench.adb import benchmark_adb
comparison = benchmark_adb(
    ["quicknet.tflite", "pokebnn.tflite"],
    benchmark_binary="lce_benchmark_model_android_arm64",   # or $LCE_BENCHMARK_MODEL
    threads=1, runs=50, taskset="f0",
)
```

The procedure is LCE's documented one: check the device with ``adb devices``; ``adb push`` the
benchmark binary and the models to ``/data/local/tmp``; ``chmod +x`` the binary; then for each model
``adb shell [taskset MASK] /data/local/tmp/lce_benchmark_model --graph=… --num_threads=N
--num_runs=N [--warmup_runs=N] [--use_indirect_bgemm=true] [--enable_op_profiling=true]`` and parse
its output (:mod:`larq_poke.bench.log_parser`).

Models are interleaved by alternating whole tool invocations: with ``rounds=3`` the order is
A B A B A B, each invocation doing ``runs`` timed inferences. Per model, ``median_ms`` is the median
over invocations of the tool's per-invocation figure (its ``median=`` where the build prints one,
otherwise its ``Inference (avg)``); min / max are the extremes over all timed runs and ``std_ms`` is
their pooled standard deviation.

Failures raise :class:`AdbError` with a message saying what to do: adb missing, no device or an
unauthorized / offline one, several devices without a serial, a missing or wrong-architecture
benchmark binary, a failed push, and a benchmark run that exits non-zero, prints ``ERROR:`` lines or
lacks the ``Inference timings in us:`` line.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from larq_poke.bench.log_parser import BenchmarkLog, BenchmarkLogError, parse_benchmark_log
from larq_poke.bench.model_file import check_tflite
from larq_poke.bench.results import KERNELS, BenchmarkComparison, BenchmarkResult

__all__ = [
    "AdbError",
    "BENCHMARK_BINARY_ENV",
    "DEVICE_DIR",
    "Adb",
    "benchmark_adb",
    "find_adb",
    "find_benchmark_binary",
    "parse_devices",
]

DEVICE_DIR = "/data/local/tmp"
BENCHMARK_BINARY_ENV = "LCE_BENCHMARK_MODEL"
REMOTE_BINARY = f"{DEVICE_DIR}/lce_benchmark_model"
RELEASES_URL = "https://github.com/larq/compute-engine/releases"

_GROUPED_KERNEL_ERROR = "Grouped binary convolutions are not supported with this kernel"
_ELF_MACHINES = {3: "x86", 62: "x86-64", 40: "32-bit ARM", 183: "AArch64"}


class AdbError(RuntimeError):
    """adb, the device or the benchmark run failed; the message says what to do."""


def find_adb(adb: Optional[Union[str, Path]] = None) -> str:
    """Path of the adb executable: ``adb`` if given, else ``$ADB``, else ``adb`` on ``PATH``."""
    candidate = str(adb) if adb else os.environ.get("ADB")
    if candidate:
        resolved = shutil.which(candidate)
        if resolved is None:
            raise AdbError(f"adb not found at {candidate!r} (not an executable file)")
        return resolved
    resolved = shutil.which("adb")
    if resolved is None:
        raise AdbError(
            "adb not found on PATH: install the Android SDK platform-tools "
            "(https://developer.android.com/tools/releases/platform-tools) or pass --adb PATH"
        )
    return resolved


def find_benchmark_binary(path: Optional[Union[str, Path]] = None) -> Path:
    """The `lce_benchmark_model` binary to push: ``path``, else ``$LCE_BENCHMARK_MODEL``.

    Checks that it is an ELF executable not built for x86 (the device needs the
    ``lce_benchmark_model_android_arm64`` release asset).
    """
    source = "given"
    if path is None:
        path = os.environ.get(BENCHMARK_BINARY_ENV) or None
        source = f"${BENCHMARK_BINARY_ENV}"
    if path is None:
        raise AdbError(
            "no lce_benchmark_model binary: pass --benchmark-binary PATH or set "
            f"${BENCHMARK_BINARY_ENV}. Download lce_benchmark_model_android_arm64 from "
            f"{RELEASES_URL} (or build it, see docs/benchmarking.md)"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise AdbError(f"benchmark binary {path} ({source}) does not exist or is not a file")
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        raise AdbError(f"benchmark binary {path} is not an executable (no ELF header)")
    little = header[5:6] == b"\x01"
    machine = int.from_bytes(header[18:20], "little" if little else "big")
    if machine in (3, 62):
        raise AdbError(
            f"benchmark binary {path} is built for {_ELF_MACHINES[machine]}; an Android phone "
            f"needs lce_benchmark_model_android_arm64 from {RELEASES_URL}"
        )
    return path


def parse_devices(text: str) -> List[Tuple[str, str]]:
    """``(serial, state)`` pairs from the output of ``adb devices``."""
    devices = []
    for line in text.replace("\r", "").splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            devices.append((parts[0], parts[1].split()[0] if parts[1].split() else parts[1]))
    return devices


_STATE_ADVICE = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging' prompt, then retry",
    "offline": "reconnect the cable or restart adb (`adb kill-server`)",
    "no": "adb lacks USB permissions for it (udev rules on Linux)",
    "recovery": "it is in recovery mode; boot it normally",
    "bootloader": "it is in the bootloader; boot it normally",
}


@dataclass
class Adb:
    """A thin runner of adb commands for one device (``serial``)."""

    executable: str
    serial: Optional[str] = None
    timeout: float = 600.0

    def command(self, *args: str) -> List[str]:
        prefix = [self.executable] + (["-s", self.serial] if self.serial else [])
        return prefix + list(args)

    def run(self, *args: str, timeout: Optional[float] = None) -> Tuple[int, str]:
        """Run ``adb [-s SERIAL] ARGS``; return (exit status, merged stdout / stderr)."""
        cmd = self.command(*args)
        try:
            proc = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise AdbError(f"`{' '.join(cmd)}` timed out after {err.timeout:.0f} s") from err
        except OSError as err:
            raise AdbError(f"could not run {self.executable}: {err}") from err
        return proc.returncode, proc.stdout.replace("\r", "")

    def select_device(self) -> str:
        """Check that the device (or the only attached one) is ready; set and return its serial."""
        code, output = Adb(self.executable, timeout=60).run("devices")
        if code != 0:
            raise AdbError(f"`adb devices` failed (exit {code}): {_tail(output)}")
        devices = parse_devices(output)
        if self.serial:
            states = dict(devices)
            if self.serial not in states:
                listed = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
                raise AdbError(f"device {self.serial} is not attached (attached: {listed})")
            _require_ready(self.serial, states[self.serial])
            return self.serial
        if not devices:
            raise AdbError(
                "no Android device attached (`adb devices` lists none): connect a phone with USB "
                "debugging enabled"
            )
        ready = [serial for serial, state in devices if state == "device"]
        if not ready:
            serial, state = devices[0]
            _require_ready(serial, state)
        if len(ready) > 1:
            raise AdbError(
                f"several devices attached ({', '.join(ready)}): choose one with "
                "--target adb:SERIAL"
            )
        self.serial = ready[0]
        return self.serial

    def push(self, local: Path, remote: str) -> None:
        code, output = self.run("push", str(local), remote)
        if code != 0:
            raise AdbError(f"adb push {local} {remote} failed (exit {code}): {_tail(output)}")

    def shell(self, *args: str, timeout: Optional[float] = None) -> Tuple[int, str]:
        return self.run("shell", *args, timeout=timeout)

    def device_name(self) -> str:
        code, output = self.shell("getprop", "ro.product.model", timeout=30)
        name = output.strip().splitlines()[-1].strip() if code == 0 and output.strip() else ""
        return f"{name} ({self.serial})" if name else str(self.serial)


def _require_ready(serial: str, state: str) -> None:
    if state == "device":
        return
    advice = _STATE_ADVICE.get(state, "check the connection")
    raise AdbError(f"device {serial} is {state}: {advice}")


def _tail(text: str, lines: int = 8) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def _remote_names(models: Sequence[Path]) -> List[str]:
    """Device file names: the base names, made shell-safe and unique."""
    names: List[str] = []
    for index, model in enumerate(models):
        name = re.sub(r"[^A-Za-z0-9._-]", "_", model.name)
        if name in names:
            name = f"{index}_{name}"
        names.append(name)
    return names


def _kernel_flags(kernel: str) -> List[str]:
    if kernel == "indirect_bgemm":
        return ["--use_indirect_bgemm=true"]
    if kernel == "reference":
        return ["--use_reference_bconv=true"]
    return []


@dataclass
class _Invocation:
    log: BenchmarkLog
    command: List[str]


def _aggregate(
    model: str,
    target: str,
    kernel: str,
    threads: int,
    warmup: Optional[int],
    device: str,
    invocations: List[_Invocation],
) -> BenchmarkResult:
    logs = [inv.log for inv in invocations]
    figures_ms, counts, means_ms, stds_ms, mins, maxs = [], [], [], [], [], []
    uses_median = all(log.timed is not None and log.timed.median is not None for log in logs)
    for log in logs:
        timed = log.timed
        figures_ms.append((timed.median if uses_median else log.inference_avg_us) / 1000.0)
        count = timed.count if timed and timed.count else 1
        counts.append(count)
        means_ms.append(log.inference_avg_us / 1000.0)
        stds_ms.append((timed.std or 0.0) / 1000.0 if timed else 0.0)
        mins.append((timed.min if timed and timed.min is not None else log.inference_avg_us) / 1e3)
        maxs.append((timed.max if timed and timed.max is not None else log.inference_avg_us) / 1e3)
    total = sum(counts)
    mean = sum(c * m for c, m in zip(counts, means_ms)) / total
    pooled_var = sum(c * (s**2 + (m - mean) ** 2) for c, s, m in zip(counts, stds_ms, means_ms))
    last = logs[-1]
    reported_threads = last.num_threads
    details: Dict[str, object] = {
        "runtime": "lce_benchmark_model",
        "invocations": len(logs),
        "median_of": "per-invocation median" if uses_median else "per-invocation average",
        "command": invocations[-1].command,
        "model_size_mb": last.model_size_mb,
        "init_ms": last.init_ms,
        "first_inference_ms": last.first_inference_us / 1000.0,
        "memory_init_mb": last.memory_init_mb,
        "memory_overall_mb": last.memory_overall_mb,
        "peak_memory_mb": last.peak_memory_mb,
        "tool_parameters": dict(last.parameters),
    }
    op_profile = last.op_profile.to_dict() if last.op_profile is not None else None
    return BenchmarkResult(
        model=model,
        target=target,
        kernel=kernel,
        threads=reported_threads if reported_threads is not None else threads,
        runs=total,
        warmup_runs=warmup,
        median_ms=statistics.median(figures_ms),
        mean_ms=mean,
        min_ms=min(mins),
        max_ms=max(maxs),
        std_ms=(pooled_var / total) ** 0.5,
        device=device,
        samples_ms=figures_ms,
        xnnpack=last.use_xnnpack,
        details=details,
        op_profile=op_profile,
    )


def _run_once(
    adb: Adb, command: List[str], timeout: float
) -> Tuple[Optional[BenchmarkLog], str, int]:
    code, output = adb.shell(*command, timeout=timeout)
    try:
        log = parse_benchmark_log(output)
    except BenchmarkLogError:
        log = None
    return log, output, code


def _failure(model: str, command: List[str], code: int, output: str, log) -> AdbError:
    errors = log.errors if log is not None else [
        line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")
    ]
    if code != 0:
        what = f"exited with status {code}"
    elif errors:
        what = "reported errors"
    else:
        what = "printed no 'Inference timings in us:' line"
    detail = "; ".join(errors[-3:]) if errors else _tail(output)
    return AdbError(
        f"benchmark of {model} on the device {what}: {detail}\n(command: adb shell "
        f"{' '.join(command)})"
    )


def benchmark_adb(
    models: Sequence[Union[str, Path]],
    *,
    serial: Optional[str] = None,
    threads: int = 1,
    runs: int = 50,
    warmup: Optional[int] = None,
    rounds: Optional[int] = None,
    kernel: str = "auto",
    taskset: Optional[str] = None,
    op_profile: bool = False,
    benchmark_binary: Optional[Union[str, Path]] = None,
    adb: Optional[Union[str, Path]] = None,
    timeout: float = 900.0,
    xnnpack: Optional[bool] = None,
) -> BenchmarkComparison:
    """Measure ``models`` on an attached Android device with `lce_benchmark_model`.

    # Arguments
        models: local `.tflite` paths; the first is the reference for the ratios.
        serial: device serial (needed when several devices are attached).
        threads: ``--num_threads``.
        runs: ``--num_runs`` per invocation (the tool also runs for at least one second).
        warmup: ``--warmup_runs`` (``None``: the tool's default).
        rounds: invocations per model, alternating models (default 1 for one model, 3 for more).
        kernel: ``"auto"`` / ``"default"`` (optimised BGEMM), ``"indirect_bgemm"``, ``"reference"``.
            ``"auto"`` uses the default kernel and switches a model to indirect BGEMM if the default
            kernel rejects it (grouped binary convolutions).
        taskset: CPU mask for ``taskset`` (hex, e.g. ``"f0"`` for the big cores of many phones).
        op_profile: pass ``--enable_op_profiling=true`` and keep the per-node-type time shares.
        benchmark_binary: local path of the Android `lce_benchmark_model` (else
            ``$LCE_BENCHMARK_MODEL``).
        adb: path of adb (else ``$ADB`` or ``adb`` on PATH).
        timeout: seconds allowed per adb command.
        xnnpack: ``--use_xnnpack=true`` / ``false`` for the float ops (``None``: the tool's
            default); each result records what the tool reports.
    """
    if not models:
        raise ValueError("no models to benchmark")
    if threads < 1 or runs < 1:
        raise ValueError("threads and runs must be >= 1")
    if warmup is not None and warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if rounds is None:
        rounds = 1 if len(models) == 1 else 3
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if kernel != "auto" and kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose auto or one of {', '.join(KERNELS)}")
    if taskset is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", taskset):
        raise ValueError(f"taskset mask must be hexadecimal (e.g. f0), got {taskset!r}")

    paths = [check_tflite(m) for m in models]
    binary = find_benchmark_binary(benchmark_binary)
    runner = Adb(find_adb(adb), serial=serial, timeout=timeout)
    runner.select_device()
    device = runner.device_name()
    target = f"adb:{runner.serial}"

    runner.push(binary, REMOTE_BINARY)
    code, output = runner.shell("chmod", "755", REMOTE_BINARY)
    if code != 0:
        raise AdbError(f"chmod of {REMOTE_BINARY} on the device failed: {_tail(output)}")
    remote = [f"{DEVICE_DIR}/{name}" for name in _remote_names(paths)]
    for path, dest in zip(paths, remote):
        runner.push(path, dest)

    kernels = ["default" if kernel == "auto" else kernel for _ in paths]
    notes: List[str] = []
    invocations: List[List[_Invocation]] = [[] for _ in paths]
    for _ in range(rounds):
        for index, (name, dest) in enumerate(zip(models, remote)):
            while True:
                command = _tool_command(dest, kernels[index], threads, runs, warmup, taskset,
                                        op_profile, xnnpack)
                log, output, code = _run_once(runner, command, timeout)
                ok = code == 0 and log is not None and not log.errors
                if (
                    not ok
                    and kernel == "auto"
                    and kernels[index] == "default"
                    and _GROUPED_KERNEL_ERROR in output
                ):
                    kernels[index] = "indirect_bgemm"
                    notes.append(
                        f"{Path(str(name)).name}: the default kernel rejects its grouped binary "
                        "convolutions; measured with indirect_bgemm"
                    )
                    continue
                if not ok:
                    raise _failure(str(name), command, code, output, log)
                invocations[index].append(_Invocation(log=log, command=command))
                break

    results = [
        _aggregate(str(name), target, kern, threads, warmup, device, invs)
        for name, kern, invs in zip(models, kernels, invocations)
    ]
    if taskset:
        notes.append(f"pinned with taskset {taskset}")
    return BenchmarkComparison(results=results, target=target, notes=notes)


def _tool_command(
    remote_model: str,
    kernel: str,
    threads: int,
    runs: int,
    warmup: Optional[int],
    taskset: Optional[str],
    op_profile: bool,
    xnnpack: Optional[bool] = None,
) -> List[str]:
    command = (["taskset", taskset] if taskset else []) + [
        REMOTE_BINARY,
        f"--graph={remote_model}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
    ]
    if warmup is not None:
        command.append(f"--warmup_runs={warmup}")
    command += _kernel_flags(kernel)
    if xnnpack is not None:
        command.append(f"--use_xnnpack={'true' if xnnpack else 'false'}")
    if op_profile:
        command.append("--enable_op_profiling=true")
    return command
