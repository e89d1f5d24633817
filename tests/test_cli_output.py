"""The command line as a user meets it: quiet start-up, --version, --json everywhere, progress
on stderr, exit codes (docs/cli.md)."""

import json
import re
import subprocess
import sys
from importlib import metadata


from larq_poke.cli import build_parser, main

# TensorFlow's C++ log lines: "2026-01-01 12:00:00.000000: I tensorflow/core/...] message"
_TF_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ", re.M)


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "larq_poke.cli", *argv], capture_output=True, text=True, timeout=300)


def test_json_output_is_only_json_and_start_up_is_quiet():
    quiet = _cli("summary", "pokebnn-0.5x", "--input-size", "32", "--json")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert json.loads(quiet.stdout)["model"] == "pokebnn-0.5x"
    assert not _TF_LOG.search(quiet.stderr), quiet.stderr[:2000]
    assert "larq-poke summary: building pokebnn-0.5x" in quiet.stderr
    # --verbose lets TensorFlow's own start-up logging through (the CPU feature guard at least)
    verbose = _cli("--verbose", "weights", "list", "--json")
    assert verbose.returncode == 0
    assert isinstance(json.loads(verbose.stdout), list)
    assert _TF_LOG.search(verbose.stderr), verbose.stderr[:2000]


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"larq-poke {metadata.version('larq-poke')} (")
    assert f"tensorflow {metadata.version('tensorflow')}" in out


def _subcommands(parser):
    """(name, parser) of every leaf command, nested actions included."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                nested = list(_subcommands(sub))
                yield from ((f"{name} {n}", p) for n, p in nested) if nested else [(name, sub)]


def test_every_command_has_json():
    commands = dict(_subcommands(build_parser()))
    assert {"summary", "weights list", "weights import", "bench", "convert", "deploy", "eval", "train",
            "plot"} <= set(commands)
    for name, parser in commands.items():
        assert "--json" in parser._option_string_actions, f"larq-poke {name} has no --json"


def test_exit_codes(tmp_path, capsys):
    import tensorflow as tf

    import lce_models

    assert main(["--help"]) == 0
    assert main(["summary", "--no-such-option"]) == 2          # argparse: bad usage
    assert main(["summary", "pokebnn-9x"]) == 2                  # unknown model: bad usage
    assert main(["bench", str(tmp_path / "missing.tflite")]) == 2
    # a failed check: a binary layer that cannot become an LceBconv2d under --strict
    inputs = tf.keras.Input((8, 8, 32))
    x = lce_models.binary_conv(32, "float_input", input_quantizer=None)(inputs)
    path = tmp_path / "bad.h5"
    tf.keras.Model(inputs, x, name="bad").save(path)
    capsys.readouterr()
    assert main(["convert", str(path), "--strict", "--no-verify", "--json", "-o", str(tmp_path / "bad.tflite")]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["output"] is None and "float_input" in report["strict_failure"]
    assert "error:" in captured.err and not (tmp_path / "bad.tflite").exists()
