"""Host benchmark with the LCE Python interpreter on a tiny converted binary model."""

import argparse
import json
import platform
import shutil

import numpy as np
import pytest

from larq_poke.bench import benchmark, parse_target
from larq_poke.bench import host as bench_host
from larq_poke.bench.host import benchmark_host, preferred_kernel, random_inputs
from larq_poke.cli import bench as bench_command

IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory):
    """One binary QuantConv2D model (ste_sign input and kernel, 32 channels), as two files."""
    import larq as lq
    import larq_compute_engine as lce
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 32))
    x = lq.layers.QuantConv2D(
        32, 3, padding="same", pad_values=1.0, use_bias=False,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
    )(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, x)
    flatbuffer = lce.convert_keras_model(model)
    tf.keras.backend.clear_session()
    folder = tmp_path_factory.mktemp("bench_models")
    a = folder / "a.tflite"
    a.write_bytes(flatbuffer)
    b = folder / "b.tflite"
    shutil.copy(a, b)
    return str(a), str(b)


def test_host_benchmark_fields(tflite_models, monkeypatch):
    order = []
    invoke = bench_host._HostModel.invoke

    def recording_invoke(self):
        order.append(self.path.name)
        return invoke(self)

    monkeypatch.setattr(bench_host._HostModel, "invoke", recording_invoke)
    comparison = benchmark_host(list(tflite_models), threads=1, runs=2, warmup=1)

    # One warm-up round, then two timed rounds, interleaved A B A B.
    assert order == ["a.tflite", "b.tflite"] * 3
    assert comparison.target == "host"
    assert [r.model for r in comparison.results] == list(tflite_models)
    for result in comparison.results:
        assert result.target == "host"
        assert result.runs == 2 and len(result.samples_ms) == 2
        assert result.warmup_runs == 1
        assert result.threads == 1
        assert result.kernel == ("indirect_bgemm" if IS_X86_64 else preferred_kernel())
        assert result.xnnpack is False
        assert 0 < result.min_ms <= result.median_ms <= result.max_ms
        assert result.median_ms == pytest.approx(np.median(result.samples_ms))
        assert result.std_ms == pytest.approx(np.std(result.samples_ms))
        assert "LceBconv2d" in result.details["custom_ops"]
        assert result.device.startswith(platform.machine())
    assert comparison.ratios()[0] == 1.0
    text = comparison.to_text()
    assert "median ms" in text and result.kernel in text


@pytest.mark.skipif(not IS_X86_64, reason="kernel choice for x86-64")
def test_x86_64_uses_indirect_bgemm(tflite_models):
    comparison = benchmark(tflite_models[:1], target="host", runs=2, warmup=0)
    assert comparison.results[0].kernel == "indirect_bgemm"
    assert any("no guide to ARM" in note for note in comparison.notes)


def test_explicit_reference_kernel(tflite_models):
    comparison = benchmark_host(tflite_models[:1], runs=2, warmup=0, kernel="reference")
    assert comparison.results[0].kernel == "reference"


def test_xnnpack_option_reaches_the_interpreter(tflite_models, monkeypatch):
    from larq_compute_engine.tflite.python import interpreter as lce_interpreter

    seen = []
    original = lce_interpreter.Interpreter.__init__

    def recording_init(self, *args, **kwargs):
        seen.append(kwargs.get("use_xnnpack"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(lce_interpreter.Interpreter, "__init__", recording_init)
    comparison = benchmark(list(tflite_models), target="host", runs=1, warmup=0, xnnpack=True)
    assert seen == [True, True]
    assert all(result.xnnpack is True for result in comparison.results)
    assert "XNNPACK delegate" in comparison.to_text()
    seen.clear()
    comparison = benchmark(tflite_models[:1], target="host", runs=1, warmup=0)
    assert seen == [False] and comparison.results[0].xnnpack is False
    assert "no XNNPACK" in comparison.to_text()


def test_preferred_kernel():
    assert preferred_kernel("x86_64") == "indirect_bgemm"
    assert preferred_kernel("AMD64") == "indirect_bgemm"
    assert preferred_kernel("aarch64") == "default"
    assert preferred_kernel("arm64") == "default"


def test_random_inputs_follow_dtype_and_shape():
    f32, i8, u8 = random_inputs(
        [(1, 4, 4, 3), (1, 10), (1, 2)], [np.float32, np.int8, np.uint8], seed=1
    )
    assert f32.dtype == np.float32 and f32.shape == (1, 4, 4, 3)
    assert i8.dtype == np.int8 and i8.shape == (1, 10)
    assert u8.dtype == np.uint8


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    bench_command.add_subcommand(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args.func(args)


def test_cli_json(tflite_models, capsys):
    a, b = tflite_models
    assert _run_cli([a, b, "--target", "host", "--threads", "1", "--runs", "2", "--warmup", "1",
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == "host"
    assert [m["model"] for m in data["models"]] == [a, b]
    for entry in data["models"]:
        assert entry["median_ms"] > 0
        assert entry["runs"] == 2 and entry["threads"] == 1
        assert entry["kernel"] == ("indirect_bgemm" if IS_X86_64 else preferred_kernel())
    assert data["models"][0]["ratio_to_first"] == 1.0


def test_cli_rejects_bad_files(tmp_path):
    bogus = tmp_path / "x.tflite"
    bogus.write_bytes(b"\x00" * 32)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        _run_cli([str(bogus)])
    with pytest.raises(ValueError, match="not a file"):
        _run_cli([str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        _run_cli([str(tmp_path / "missing.tflite")])


def test_host_rejects_adb_only_options(tflite_models):
    with pytest.raises(ValueError, match="op profiling"):
        benchmark(tflite_models[:1], target="host", op_profile=True)
    with pytest.raises(ValueError, match="taskset"):
        benchmark(tflite_models[:1], target="host", taskset="f0")


def test_parse_target():
    assert parse_target("host") == ("host", None)
    assert parse_target("adb") == ("adb", None)
    assert parse_target("adb:emulator-5554") == ("adb", "emulator-5554")
    for bad in ("phone", "adb:", "host:1"):
        with pytest.raises(ValueError):
            parse_target(bad)
