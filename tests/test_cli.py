"""The larq-poke command line, run in-process."""

import json


from larq_poke.cli import main


def test_summary_json_golden_configuration(capsys):
    assert main(["summary", "pokebnn-0.5x", "--input-size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the official accounting of this configuration (stored with the golden file)
    assert report["totals"]["ace"] == 123_066_368 + 65_536_000
    assert report["input_shape"] == [64, 64, 3]


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["summary", "pokebnn-9x"]) == 2
    err = capsys.readouterr().err
    assert "Unknown zoo model 'pokebnn-9x'" in err and "pokebnn-1.0x" in err


def test_summary_text_of_saved_model_file(tmp_path, capsys):
    """The text output (Keras summary, then the cost table) of a model file; the JSON output of
    the same configuration is checked by name above."""
    from larq_poke.zoo import PokeBNN

    path = tmp_path / "m.h5"
    PokeBNN(0.5, input_shape=(64, 64, 3)).save(path)
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'Model: "pokebnn-0.5x"' in out
    assert "ACE:                 1.886e+08  (188,602,368;" in out  # 123,066,368 + 65,536,000


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("summary", "weights", "bench", "convert"):
        assert command in out


def test_summary_cycles_of_one_binary_conv_by_hand(tmp_path, capsys):
    import larq as lq
    import tensorflow as tf

    x = tf.keras.Input((8, 8, 32))
    y = lq.layers.QuantConv2D(64, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              use_bias=False)(x)
    tf.keras.Model(x, y).save(tmp_path / "conv.keras")
    assert main(["summary", str(tmp_path / "conv.keras"), "--cycles", "--json"]) == 0
    cycles = json.loads(capsys.readouterr().out)["cycles"]
    # Default array: 64 x 64 PEs of 8 XNOR lanes; K = 288 fits one tile (36 rows), N = 64 one
    # column tile: compute 64 pixels + 36 + 64 = 164. DRAM at 16 B/cycle: weights 288·64/8 = 2304
    # bytes, input 8·8·32/8 = 256 (fits the buffer), output at float16 (the model output)
    # 8·8·64·2 = 8192: 10752 bytes, 672 cycles, so the layer is memory-bound.
    assert cycles["totals"]["compute_cycles"] == 164
    assert cycles["totals"]["cycles"] == 672
    assert main(["summary", str(tmp_path / "conv.keras"), "--as-bits", "8"]) == 2
    assert "only apply with --cycles" in capsys.readouterr().err
    # A 16 x 16 array of 4-bit PEs (4 XNOR lanes): K tiles of 64, T_K = 5, T_N = 4; compute
    # 5·4·64 + 4·ceil(288/4) + 5·64 = 1888. DRAM at 8 B/cycle: the same 10752 bytes (the input
    # fits a 1 KiB buffer), 1344 cycles, so now the layer is compute-bound.
    assert main(["summary", str(tmp_path / "conv.keras"), "--cycles", "--json", "--array", "16x16",
                 "--pe-bits", "4", "--buffer-kib", "1", "--dram-bytes-per-cycle", "8"]) == 0
    cycles = json.loads(capsys.readouterr().out)["cycles"]
    assert (cycles["totals"]["compute_cycles"], cycles["totals"]["cycles"]) == (1888, 1888)
    for bad in ("16", "\u00b2x16", "x16"):  # "²" is a digit to str.isdigit, not to int()
        assert main(["summary", str(tmp_path / "conv.keras"), "--cycles", "--array", bad]) == 2
        assert "--array must be ROWSxCOLS" in capsys.readouterr().err
    for option in ("--as-bits", "--float-bits"):  # refused before the model is loaded
        assert main(["summary", str(tmp_path / "missing.keras"), "--cycles", option, "0"]) == 2
        assert f"{option} must be a positive integer" in capsys.readouterr().err
    assert main(["summary", str(tmp_path / "conv.keras"), "--cycles", "--pe-bits", "0"]) == 2
    assert "--pe-bits must be a positive integer" in capsys.readouterr().err
    assert main(["summary", str(tmp_path / "conv.keras"), "--pe-bits", "4"]) == 2
