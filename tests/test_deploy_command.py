"""`larq-poke deploy` end to end on a small saved model (the QuickNet reference is skipped here:
converting it takes about a minute; benchmarks/latency.py covers it)."""

import json

import numpy as np
import tensorflow as tf

import lce_models
from larq_poke.cli import main


def test_deploy_writes_model_report_and_summary(tmp_path, capsys):
    inputs = tf.keras.Input((16, 16, 32))
    x = lce_models.binary_conv(32, "b1")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lce_models.binary_conv(32, "b2")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(10)(x)
    path = tmp_path / "tiny.h5"
    tf.keras.Model(inputs, x, name="tiny").save(path)

    out = tmp_path / "out"
    rc = main(["deploy", str(path), "-o", str(out), "--runs", "2", "--reference", "none"])
    assert rc == 0
    flatbuffer = (out / "tiny.tflite").read_bytes()
    report = json.loads((out / "tiny.report.json").read_text())
    assert report["size_bytes"] == len(flatbuffer)
    assert report["op_counts"]["LceBconv2d"] == 2
    assert report["cost"]["bops"] == 2 * 16 * 16 * 32 * 9 * 32  # two 3x3 32->32 binary convs
    assert report["latency"]["models"][0]["median_ms"] > 0
    assert np.isfinite(report["parity"]["max_abs_diff"])
    printed = capsys.readouterr().out
    for section in ("== cost", "== conversion", "== latency", "2/2 became LceBconv2d"):
        assert section in printed


def test_deploy_int8_without_quantization_info_is_an_error(tmp_path, capsys):
    inputs = tf.keras.Input((8, 8, 32))
    x = lce_models.binary_conv(32, "b1")(inputs)
    path = tmp_path / "plain.h5"
    tf.keras.Model(inputs, x, name="plain").save(path)
    rc = main(["deploy", str(path), "-o", str(tmp_path / "o"), "--int8", "--no-bench"])
    assert rc == 2
    assert "without quantization information" in capsys.readouterr().err
