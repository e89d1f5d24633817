"""The adb benchmark flow, driven through a stand-in `adb` placed first on PATH.

The stand-in records its arguments (one JSON list per call) and answers like adb: `devices` from
$FAKE_ADB_DEVICES, `push` / `chmod` / `getprop` trivially, and a benchmark run with a recorded
`lce_benchmark_model` sample (lines ending in CRLF, as through adb's pty).
"""

import argparse
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import benchmark_sample_path

from larq_poke.bench import adb as bench_adb
from larq_poke.bench.adb import AdbError, benchmark_adb, parse_devices
from larq_poke.cli import bench as bench_command

SERIAL = "R58M123ABC"

FAKE_ADB = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_ADB_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    rest = args[2:] if args[:1] == ["-s"] else args
    if rest == ["devices"]:
        sys.stdout.write(os.environ.get("FAKE_ADB_DEVICES", "List of devices attached\\n"))
        sys.exit(0)
    if rest[:1] == ["push"]:
        print(rest[1] + ": 1 file pushed, 0 skipped.")
        sys.exit(0)
    if rest[:1] == ["shell"]:
        cmd = rest[1:]
        if cmd[:1] == ["getprop"]:
            print("Pixel 7")
            sys.exit(0)
        if cmd[:1] == ["chmod"]:
            sys.exit(0)
        graph = next(a.split("=", 1)[1] for a in cmd if a.startswith("--graph="))
        if os.environ.get("FAKE_ADB_GROUPED") and "--use_indirect_bgemm=true" not in cmd:
            sys.stdout.write(
                "INFO: STARTING!\\r\\nERROR: larq_compute_engine/tflite/kernels/bconv2d.cc "
                "Grouped binary convolutions are not supported with this kernel.\\r\\n"
                "ERROR: Node number 1 (LceBconv2d) failed to prepare.\\r\\n"
                "ERROR: Benchmarking failed.\\r\\n"
            )
            sys.exit(1)
        outputs = json.loads(os.environ["FAKE_ADB_OUTPUTS"])
        text = open(outputs[os.path.basename(graph)]).read()
        sys.stdout.write(text.replace("\\n", "\\r\\n"))
        sys.exit(int(os.environ.get("FAKE_ADB_RC", "0")))
    print("adb: unknown command", args, file=sys.stderr)
    sys.exit(1)
    """
)


def _sample(name: str) -> Path:
    return benchmark_sample_path(name)


def _tflite(path: Path) -> Path:
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    return path


def _elf(path: Path, machine: int) -> Path:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Stand-in adb on PATH, a fake Android benchmark binary and two fake models."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "adb_calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_DEVICES", f"List of devices attached\n{SERIAL}\tdevice\n\n")
    binary = _elf(tmp_path / "lce_benchmark_model_android_arm64", 183)
    monkeypatch.setenv("LCE_BENCHMARK_MODEL", str(binary))
    models = [_tflite(tmp_path / "a.tflite"), _tflite(tmp_path / "b.tflite")]
    monkeypatch.setenv(
        "FAKE_ADB_OUTPUTS",
        json.dumps({
            "a.tflite": str(_sample("quicknet_rpi4b_getting_started.txt")),
            "b.tflite": str(_sample("pokebnn_larq_1x_android_op_profile.txt")),
        }),
    )

    class Fake:
        pass

    fake = Fake()
    fake.tmp, fake.binary, fake.models, fake.log = tmp_path, binary, models, log
    fake.calls = lambda: (
        [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    )
    return fake


def test_push_and_shell_sequence_and_parse(fake):
    a, b = (str(m) for m in fake.models)
    comparison = benchmark_adb([a, b], threads=1, runs=50, rounds=2, taskset="f0")

    tool = "/data/local/tmp/lce_benchmark_model"
    s = ["-s", SERIAL]

    def run(name):
        return s + ["shell", "taskset", "f0", tool, f"--graph=/data/local/tmp/{name}",
                    "--num_threads=1", "--num_runs=50"]

    assert fake.calls() == [
        ["devices"],
        s + ["shell", "getprop", "ro.product.model"],
        s + ["push", str(fake.binary), tool],
        s + ["shell", "chmod", "755", tool],
        s + ["push", a, "/data/local/tmp/a.tflite"],
        s + ["push", b, "/data/local/tmp/b.tflite"],
        run("a.tflite"), run("b.tflite"), run("a.tflite"), run("b.tflite"),
    ]

    ra, rb = comparison.results
    assert comparison.target == f"adb:{SERIAL}"
    # QuickNet sample: Inference (avg) 33071.8 us; timed min 32687, max 33239, std 129 (us).
    assert ra.median_ms == pytest.approx(33.0718)
    assert ra.min_ms == pytest.approx(32.687)
    assert ra.max_ms == pytest.approx(33.239)
    assert ra.std_ms == pytest.approx(0.129)
    assert ra.runs == 100
    assert ra.details["model_size_mb"] == 3.34914
    # PokeBNN sample: 1.02491e+06 us.
    assert rb.median_ms == pytest.approx(1024.91)
    assert rb.details["memory_overall_mb"] == 279.164
    assert comparison.ratios() == pytest.approx([1.0, 1024.91 / 33.0718])
    for result in comparison.results:
        assert result.kernel == "default"
        assert result.threads == 1
        assert result.device == f"Pixel 7 ({SERIAL})"
    assert "taskset f0" in " ".join(comparison.notes)


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    bench_command.add_subcommand(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args.func(args)


def test_cli_json_with_op_profile_and_serial(fake, capsys):
    a, b = (str(m) for m in fake.models)
    code = _run_cli([a, b, "--target", f"adb:{SERIAL}", "--threads", "2", "--runs", "10",
                     "--warmup", "3", "--kernel", "indirect_bgemm", "--op-profile", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    medians = [m["median_ms"] for m in data["models"]]
    assert medians == pytest.approx([33.0718, 1024.91])
    assert data["models"][1]["ratio_to_first"] == pytest.approx(1024.91 / 33.0718)
    assert data["models"][0]["kernel"] == "indirect_bgemm"
    shares = data["models"][1]["op_profile"]["node_type_shares"]
    assert shares["LceBconv2d"] == pytest.approx(13.837)
    runs = [c for c in fake.calls() if any(x.startswith("--graph=") for x in c)]
    assert len(runs) == 6  # 3 rounds by default for several models: A B A B A B
    assert runs[0] == ["-s", SERIAL, "shell", "/data/local/tmp/lce_benchmark_model",
                       "--graph=/data/local/tmp/a.tflite", "--num_threads=2", "--num_runs=10",
                       "--warmup_runs=3", "--use_indirect_bgemm=true",
                       "--enable_op_profiling=true"]
    assert [c[4] for c in runs] == ["--graph=/data/local/tmp/a.tflite",
                                    "--graph=/data/local/tmp/b.tflite"] * 3


def test_xnnpack_flag_passed_to_the_tool(fake):
    a = str(fake.models[0])
    for xnnpack, flag in ((True, "--use_xnnpack=true"), (False, "--use_xnnpack=false")):
        benchmark_adb([a], xnnpack=xnnpack)
        runs = [c for c in fake.calls() if any(x.startswith("--graph=") for x in c)]
        assert runs[-1][-1] == flag
    benchmark_adb([a])  # default: the tool decides
    runs = [c for c in fake.calls() if any(x.startswith("--graph=") for x in c)]
    assert not any(x.startswith("--use_xnnpack") for x in runs[-1])


def test_cli_text_output(fake, capsys):
    _run_cli([str(fake.models[0]), "--target", "adb", "--runs", "50"])
    out = capsys.readouterr().out
    assert "33.072" in out and "default" in out and f"adb:{SERIAL}" in out


def test_auto_kernel_switches_to_indirect_bgemm_for_grouped_convs(fake, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_GROUPED", "1")
    comparison = benchmark_adb([str(fake.models[0])])
    assert comparison.results[0].kernel == "indirect_bgemm"
    assert "indirect_bgemm" in comparison.notes[0]
    runs = [c for c in fake.calls() if any(x.startswith("--graph=") for x in c)]
    assert "--use_indirect_bgemm=true" not in runs[0]
    assert "--use_indirect_bgemm=true" in runs[1]


def test_adb_missing(fake, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(AdbError, match="adb not found on PATH"):
        benchmark_adb([str(fake.models[0])])
    with pytest.raises(AdbError, match="adb not found at"):
        benchmark_adb([str(fake.models[0])], adb=str(tmp_path / "nope" / "adb"))


@pytest.mark.parametrize(
    "devices, serial, message",
    [
        ("List of devices attached\n\n", None, "no Android device attached"),
        ("* daemon started successfully\nList of devices attached\n\n", None, "no Android device"),
        (f"List of devices attached\n{SERIAL}\tunauthorized\n", None, "unauthorized: unlock"),
        (f"List of devices attached\n{SERIAL}\toffline\n", SERIAL, "is offline"),
        ("List of devices attached\nA1\tdevice\nB2\tdevice\n", None, "several devices"),
        ("List of devices attached\nA1\tdevice\n", "ZZZ", "ZZZ is not attached"),
    ],
)
def test_device_problems(fake, monkeypatch, devices, serial, message):
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    with pytest.raises(AdbError, match=message):
        benchmark_adb([str(fake.models[0])], serial=serial)
    assert not any("push" in call for call in fake.calls())


def test_device_error_exit_status(fake, monkeypatch, tmp_path):
    failing = tmp_path / "failing.txt"
    failing.write_text(
        "INFO: STARTING!\nERROR: Node number 1 (LceBconv2d) failed to prepare.\n"
        "ERROR: Benchmarking failed.\n"
    )
    monkeypatch.setenv("FAKE_ADB_OUTPUTS", json.dumps({"a.tflite": str(failing)}))
    monkeypatch.setenv("FAKE_ADB_RC", "1")
    with pytest.raises(AdbError, match=r"exited with status 1: .*Benchmarking failed"):
        benchmark_adb([str(fake.models[0])])


def test_device_output_without_summary_line(fake, monkeypatch, tmp_path):
    partial = tmp_path / "partial.txt"
    partial.write_text("INFO: STARTING!\nINFO: Graph: [/data/local/tmp/a.tflite]\n")
    monkeypatch.setenv("FAKE_ADB_OUTPUTS", json.dumps({"a.tflite": str(partial)}))
    with pytest.raises(AdbError, match="no 'Inference timings in us:' line"):
        benchmark_adb([str(fake.models[0])])


def test_missing_or_wrong_benchmark_binary(fake, monkeypatch, tmp_path):
    model = str(fake.models[0])
    monkeypatch.delenv("LCE_BENCHMARK_MODEL")
    with pytest.raises(AdbError, match="no lce_benchmark_model binary.*releases"):
        benchmark_adb([model])
    with pytest.raises(AdbError, match="does not exist"):
        benchmark_adb([model], benchmark_binary=tmp_path / "missing")
    x86 = _elf(tmp_path / "lce_benchmark_model_x86", 62)
    with pytest.raises(AdbError, match="built for x86-64"):
        benchmark_adb([model], benchmark_binary=x86)
    assert fake.calls() == []


def test_not_a_tflite_file(fake, tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="TFL3"):
        benchmark_adb([str(bogus)])
    with pytest.raises(FileNotFoundError):
        benchmark_adb([str(tmp_path / "absent.tflite")])


def test_parse_devices():
    text = "List of devices attached\r\nemulator-5554\tdevice\r\nXYZ\tno permissions (user)\r\n"
    assert parse_devices(text) == [("emulator-5554", "device"), ("XYZ", "no")]
    assert bench_adb.DEVICE_DIR == "/data/local/tmp"
