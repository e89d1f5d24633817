"""The systolic-array cycle model (larq_poke.cycles) on hand-computed cases, its monotonicity,
and the float ResNet-18 reference (larq_poke.zoo.references)."""

import larq_poke  # noqa: F401  (Keras 2 before TensorFlow)
import larq as lq
import pytest
import tensorflow as tf

from larq_poke.cycles import SystolicArray, estimate_cycles
from test_bnext_golden import SMALL_STAGES
from larq_poke.zoo.references import ResNet18
from larq_poke.zoo.resolve import load_model

TINY = SystolicArray(rows=16, cols=16, pe_bits=8, buffer_bytes=128, dram_bytes_per_cycle=4)


def _binary_conv(filters=64, name="conv"):
    return lq.layers.QuantConv2D(filters, 3, padding="same", input_quantizer="ste_sign",
                                 kernel_quantizer="ste_sign", use_bias=False, name=name)


def _binary_conv_model():
    x = tf.keras.Input((8, 8, 32))
    return tf.keras.Model(x, _binary_conv()(x))


def test_binary_conv_by_hand():
    # GEMM: M = 8·8 = 64 pixels, K = 3·3·32 = 288, N = 64. Binary: 8 XNOR lanes per PE, so a
    # tile covers 16 rows · 8 = 128 of K: K tiles of 128, 128, 32 (16, 16, 4 rows), N tiles of 16.
    t_k, t_n = 3, 4
    stream = t_k * t_n * 64                       # 768: every tile streams the 64 pixels
    fill = t_n * (16 + 16 + 4) + t_k * (4 * 16)  # 144 + 192: occupied rows + cols of each tile
    compute = stream + fill                       # 1104
    weights = 288 * 64 * 1 // 8                   # 2304 bytes
    inputs = 8 * 8 * 32 * 1 // 8                  # 256 bytes > 128 buffer: re-read per N tile
    outputs_float = 8 * 8 * 64 * 16 // 8          # last layer: written at float_bits = 16
    movement = (weights + 4 * inputs + outputs_float) // 4   # 11520 bytes at 4 B/cycle = 2880
    assert (compute, movement) == (1104, 2880)

    row = estimate_cycles(_binary_conv_model(), TINY).layers[0]
    assert (row.M, row.K, row.N, row.groups, row.w_bits, row.a_bits, row.out_bits) == (64, 288, 64, 1, 1, 1, 16)
    assert (row.compute_cycles, row.movement_cycles, row.cycles, row.bound) == (compute, movement, movement, "memory")

    # Outputs at 1 bit (a sign downstream): 512 bytes, the layer becomes compute-bound.
    moved = weights + 4 * inputs + 8 * 8 * 64 // 8  # 3840 bytes: 960 cycles
    row = estimate_cycles(_binary_conv_model(), TINY, output_bits={"conv": 1}).layers[0]
    assert (row.bytes_moved, row.movement_cycles, row.cycles, row.bound) == (moved, 960, 1104, "compute")

    # With the input in the buffer it is read once; a fixed fill of rows + cols = 32 per tile.
    big = SystolicArray(rows=16, cols=16, pe_bits=8, buffer_bytes=256, dram_bytes_per_cycle=4, fill_drain=32)
    row = estimate_cycles(_binary_conv_model(), big, output_bits={"conv": 1}).layers[0]
    assert row.compute_cycles == 12 * (64 + 32)                        # 1152
    assert row.movement_cycles == (2304 + 256 + 512) // 4              # 768


def _dense_model():
    x = tf.keras.Input((256,))
    return tf.keras.Model(x, tf.keras.layers.Dense(100, name="fc")(x))


def test_float_dense_as_8_bit_by_hand():
    # M = 1, K = 256, N = 100; 8x8-bit MACs: one per PE per cycle, tiles of 16 x 16.
    t_k, t_n = 16, 7                           # ceil(256/16), ceil(100/16)
    compute = t_k * t_n * 1 + t_n * 256 + t_k * 100   # 112 + 1792 + 1600 = 3504
    weights = 256 * 100                        # 25600 bytes at 8 bits
    inputs = 256                               # 256 bytes > 128 buffer: read 7 times
    outputs = 100                              # last layer: as_bits = 8
    movement = (weights + 7 * inputs + outputs) // 4  # 27492 / 4 = 6873
    assert (compute, movement) == (3504, 6873)
    report = estimate_cycles(_dense_model(), TINY, as_bits=8)
    row = report.layers[0]
    assert (row.M, row.K, row.N, row.w_bits, row.a_bits, row.out_bits) == (1, 256, 100, 8, 8, 8)
    assert (row.compute_cycles, row.movement_cycles, row.cycles) == (3504, 6873, 6873)
    assert report.totals["cycles"] == 6873 and report.totals["macs"] == 25600

    # As float16: 2 x 2 digit pairs, four passes; every tensor twice the bytes.
    row = estimate_cycles(_dense_model(), TINY).layers[0]
    assert row.compute_cycles == 4 * 3504                                     # 14016
    assert row.movement_cycles == (2 * 25600 + 7 * 512 + 200) // 4           # 13746
    assert row.cycles == 14016


def test_depthwise_packs_groups_block_diagonally():
    x = tf.keras.Input((8, 8, 4))
    y = tf.keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    row = estimate_cycles(tf.keras.Model(x, y), TINY, as_bits=8).layers[0]
    # 4 groups of K = 9, N = 2: min(16 // 9, 16 // 2) = 1 group per tile, 4 tiles of 64 + 9 + 2.
    assert (row.M, row.K, row.N, row.groups) == (64, 9, 8, 4)
    assert row.compute_cycles == 4 * (64 + 9 + 2)
    assert row.movement_cycles == (9 * 8 + 256 + 64 * 8) // 4                 # 840 / 4 = 210


def test_several_groups_share_a_tile_by_hand():
    x = tf.keras.Input((8, 8, 24))
    y = tf.keras.layers.Conv2D(24, 1, groups=6, use_bias=False, name="grouped")(x)
    row = estimate_cycles(tf.keras.Model(x, y), TINY, as_bits=8).layers[0]
    # 6 groups of K = 4, N = 4: min(16 // 4, 16 // 4) = 4 groups per tile, so tiles of 4 and 2
    # groups, each streaming the 64 pixels plus the rows and columns its groups occupy.
    assert (row.M, row.K, row.N, row.groups) == (64, 4, 24, 6)
    assert row.compute_cycles == (64 + 4 * 4 + 4 * 4) + (64 + 2 * 4 + 2 * 4)      # 96 + 80


def test_1d_depthwise_and_separable_convs_by_hand():
    """Keras' 1D depthwise and separable convs are not subclasses of Conv1D: counted, not
    skipped (they used to count 0 MACs and 0 cycles)."""
    x = tf.keras.Input((16, 8))
    y = tf.keras.layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    y = tf.keras.layers.SeparableConv1D(12, 5, use_bias=False, name="sep")(y)
    rows = {row.name: row for row in estimate_cycles(tf.keras.Model(x, y), TINY, as_bits=8).layers}
    dw, sep_dw, sep_pw = rows["dw"], rows["sep[depthwise]"], rows["sep[pointwise]"]
    # dw: M = 16, 8 groups of K = 3, N = 2; min(16 // 3, 16 // 2) = 5 groups per tile: tiles of 5
    # and 3 groups. Moves 3·16 weights, 16·8 inputs, 16·16 outputs (8 bits each).
    assert (dw.M, dw.K, dw.N, dw.groups) == (16, 3, 16, 8)
    assert dw.compute_cycles == (16 + 5 * 3 + 5 * 2) + (16 + 3 * 3 + 3 * 2)      # 41 + 31
    assert dw.bytes_moved == 48 + 128 + 256
    # sep, VALID: M = 16 − 4 = 12; depthwise 16 groups of K = 5, N = 1: 3 per tile (16 // 5), 6 tiles.
    assert (sep_dw.M, sep_dw.K, sep_dw.N, sep_dw.groups) == (12, 5, 16, 16)
    assert sep_dw.compute_cycles == 5 * (12 + 3 * 5 + 3) + (12 + 5 + 1)           # 150 + 18
    # pointwise: K = 16, N = 12, one tile: 12 + 16 + 12.
    assert (sep_pw.M, sep_pw.K, sep_pw.N, sep_pw.compute_cycles) == (12, 16, 12, 40)


def test_a_group_larger_than_the_array_and_its_re_reads_by_hand():
    x = tf.keras.Input((4, 4, 64))
    y = tf.keras.layers.Conv2D(64, 1, groups=2, use_bias=False, name="g")(x)
    row = estimate_cycles(tf.keras.Model(x, y), TINY, as_bits=8).layers[0]
    # 2 groups of K = 32, N = 32, each larger than 16 x 16: each tiled on its own, 2 x 2 tiles
    # of 16 x 16 per group: 4·16 + 2·32 + 2·32 cycles per group.
    assert (row.M, row.K, row.N, row.groups) == (16, 32, 64, 2)
    assert row.compute_cycles == 2 * (4 * 16 + 2 * 32 + 2 * 32)                 # 384
    # input 4·4·64 = 1024 bytes > 128: re-read per column tile of a group, ceil(32 / 16) = 2.
    assert row.bytes_moved == 32 * 64 + 2 * 1024 + 1024


def test_bad_settings_are_refused():
    import numpy as np

    model = _dense_model()
    for kwargs, message in (({"float_bits": 0}, "float_bits must be a positive integer"),
                            ({"as_bits": 0}, "as_bits must be None or a positive integer"),
                            ({"output_bits": {"fc": 0}}, "output_bits values must be positive integers"),
                            ({"output_bits": {"fc": 4.5}}, "output_bits values must be positive integers"),
                            ({"elementwise_bytes": -1}, "elementwise_bytes must be an integer >= 0")):
        with pytest.raises(ValueError, match=message):
            estimate_cycles(model, TINY, **kwargs)
    with pytest.raises(ValueError, match="SystolicArray.rows must be a positive integer, got 0"):
        SystolicArray(rows=0)
    with pytest.raises(ValueError, match="SystolicArray.pe_bits must be a positive integer, got True"):
        SystolicArray(pe_bits=True)
    assert SystolicArray(rows=np.int64(32)).rows == 32 and type(SystolicArray(rows=np.int64(32)).rows) is int
    # no buffer: the dense layer's 256 input bytes are read once per column tile, as with 128 B
    none = SystolicArray(rows=16, cols=16, pe_bits=8, buffer_bytes=0, dram_bytes_per_cycle=4)
    assert estimate_cycles(model, none, as_bits=8).layers[0].movement_cycles == 6873


def test_layers_without_a_mac_formula_are_named():
    x = tf.keras.Input((4, 8))
    y = tf.keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 16), name="einsum")(x)
    with pytest.warns(UserWarning, match="no MAC count for einsum \\(EinsumDense\\)"):
        report = estimate_cycles(tf.keras.Model(x, y), TINY)
    assert report.layers == []


def test_4_bit_pes_by_hand():
    tiny4 = SystolicArray(rows=16, cols=16, pe_bits=4, buffer_bytes=128, dram_bytes_per_cycle=4)
    # 8-bit operands on 4-bit PEs: 2 x 2 digit pairs, four passes of the 8-bit dense tiling.
    assert estimate_cycles(_dense_model(), tiny4, as_bits=8).layers[0].compute_cycles == 4 * 3504
    # Binary: 4 XNOR lanes per PE, a tile covers 16 · 4 = 64 of K = 288: K tiles of 64, 64, 64,
    # 64, 32 (16, 16, 16, 16, 8 rows), N tiles of 16.
    row = estimate_cycles(_binary_conv_model(), tiny4).layers[0]
    assert row.compute_cycles == 5 * 4 * 64 + 4 * (4 * 16 + 8) + 5 * 64         # 1888


def test_a_conv_read_by_a_binary_conv_writes_1_bit():
    x = tf.keras.Input((8, 8, 32))
    y = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="float")(x)
    y = _binary_conv(name="binary")(y)
    report = estimate_cycles(tf.keras.Model(x, y), TINY, elementwise_bytes=400)
    first, second, extra = report.layers
    assert (first.w_bits, first.a_bits, first.out_bits) == (16, 16, 1)
    assert (second.out_bits, extra.name, extra.cycles) == (16, "(elementwise)", 100)
    assert report.totals["cycles"] == first.cycles + second.cycles + 100
    text = report.to_text()
    assert "binary conv2d" in text and "Cycles:" in text
    assert report.to_dict()["layers"][1]["name"] == "binary"
    with pytest.raises(ValueError, match="no MAC layer"):
        estimate_cycles(tf.keras.Model(x, y), TINY, output_bits={"nope": 1})


def test_output_bits_follow_the_graph_to_every_reader():
    from larq_poke.layers.bineal import BranchQuantizer

    x = tf.keras.Input((8, 8, 32))
    a = _binary_conv(32, "a")(x)
    b = _binary_conv(32, "b")(tf.keras.layers.BatchNormalization()(a))
    skip = _binary_conv(32, "skip")(x)
    both = _binary_conv(32, "both")(x)
    y = tf.keras.layers.Add()([b, BranchQuantizer(4)(skip), both])
    y = _binary_conv(32, "c")(tf.keras.layers.Add()([y, _binary_conv(32, "d")(both)]))
    report = estimate_cycles(tf.keras.Model(x, y), TINY)
    out_bits = {row.name: row.out_bits for row in report.layers}
    assert out_bits == {
        "a": 1,      # read only by the binary conv b, through a batch norm: the sign is fused
        "b": 16,     # read by an add: stored as float, although binary convs follow in the table
        "skip": 4,   # an INT4 fake quant before the add
        "both": 17,  # read by the binary conv d (a 1-bit copy) and by the add (a float copy)
        "d": 16,
        "c": 16,     # the model output
    }
    # 8·8·32 outputs at 16 bits are 4096 bytes, at 1 bit 256: b moves 3840 bytes more than a,
    # and both (one copy of each) 256 more than b.
    rows = {row.name: row for row in report.layers}
    assert rows["b"].bytes_moved - rows["a"].bytes_moved == 4096 - 256
    assert rows["both"].bytes_moved - rows["b"].bytes_moved == 256
    overridden = estimate_cycles(tf.keras.Model(x, y), TINY, output_bits={"b": 1})
    assert {row.name: row.out_bits for row in overridden.layers}["b"] == 1


def test_a_separable_convs_output_is_read_from_the_graph():
    x = tf.keras.Input((8, 8, 32))
    y = tf.keras.layers.SeparableConv2D(32, 3, padding="same", use_bias=False, name="sep")(x)
    y = _binary_conv(32, "b")(tf.keras.layers.Add()([y, x]))
    out_bits = {row.name: row.out_bits for row in estimate_cycles(tf.keras.Model(x, y), TINY).layers}
    # The pointwise part writes the layer's output, which an add reads: float, although a binary
    # conv is the next row; the depthwise part feeds the pointwise part (float input).
    assert out_bits == {"sep[depthwise]": 16, "sep[pointwise]": 16, "b": 16}


def _small_net(binary: bool):
    def conv(filters, name):
        if binary:
            return _binary_conv(filters, name)
        return tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)

    x = tf.keras.Input((16, 16, 32))
    y = conv(64, "c1")(x)
    y = conv(128, "c2")(y)
    y = tf.keras.layers.GlobalAveragePooling2D()(y)
    return tf.keras.Model(x, tf.keras.layers.Dense(10, name="fc")(y))


def test_doubling_the_array_never_increases_cycles():
    model = _small_net(binary=True)
    for as_bits in (None, 8):
        for grow in ("rows", "cols", "both"):
            previous = None
            for size in (4, 8, 16, 32, 64, 128):
                rows = size if grow in ("rows", "both") else 16
                cols = size if grow in ("cols", "both") else 16
                array = SystolicArray(rows=rows, cols=cols, buffer_bytes=1024, dram_bytes_per_cycle=8)
                report = estimate_cycles(model, array, as_bits=as_bits)
                layers = [r.cycles for r in report.layers]
                if previous is not None:
                    assert all(now <= before for now, before in zip(layers, previous)), (grow, size, layers, previous)
                previous = layers


def test_binary_costs_fewer_cycles_than_8_bit():
    array = SystolicArray(rows=16, cols=16, buffer_bytes=4096, dram_bytes_per_cycle=8)
    binary = estimate_cycles(_small_net(binary=True), array, as_bits=8)
    eight_bit = estimate_cycles(_small_net(binary=False), array, as_bits=8)
    for b, e in zip(binary.layers[:2], eight_bit.layers[:2]):
        assert (b.w_bits, b.a_bits, e.w_bits, e.a_bits) == (1, 1, 8, 8)
        assert b.compute_cycles < e.compute_cycles and b.cycles < e.cycles
    assert binary.totals["cycles"] < eight_bit.totals["cycles"]


def test_resnet18_has_torchvisions_parameter_count():
    model = ResNet18()
    trainable = sum(int(tf.size(w)) for w in model.trainable_weights)
    assert trainable == 11_689_512  # torchvision's resnet18 (BN moving statistics are buffers there)
    assert model.count_params() == 11_689_512 + 2 * 4800  # + Keras's BN moving mean / variance
    assert model.output_shape == (None, 1000)
    assert model.get_layer("layer2.0.downsample.0").strides == (2, 2)
    with pytest.raises(ValueError, match="no weights"):
        ResNet18(weights="imagenet")


def test_load_model_builds_resnet18():
    model = load_model("resnet18", input_size=64, num_classes=10)
    assert model.name == "resnet18"
    assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 10)
    assert model.get_layer("layer4.1.conv2").output_shape == (None, 2, 2, 512)
    report = estimate_cycles(model, as_bits=8)
    assert len(report.layers) == 21 and all(r.w_bits == 8 for r in report.layers)


@pytest.mark.parametrize("branch_bits, as_bits, branch_out", [(None, None, 16), (None, 8, 8), (4, None, 4)])
def test_bineal_bits_per_layer(branch_bits, as_bits, branch_out):
    """In a BiNeal block the first conv's output is read only by a sign (1 bit); the second and
    skip convs' outputs by the add (float, 8 bits when every non-binary operand is, the INT4
    branch quantizers' 4 bits). The stem reads 8-bit inputs with 8-bit weights; binary convs
    run 1-bit operands."""
    from larq_poke.zoo import BiNeal

    report = estimate_cycles(BiNeal(0.5, input_shape=(32, 32, 3), num_classes=10, branch_bits=branch_bits),
                             TINY, as_bits=as_bits)
    rows = {row.name: row for row in report.layers}
    assert (rows["stem.conv"].w_bits, rows["stem.conv"].a_bits) == (8, 8)
    for block in ("stage1.block1", "stage3.block2"):
        conv1, conv2, skip = (rows[f"{block}.{part}"] for part in ("conv1", "conv2", "skip"))
        assert (conv1.w_bits, conv1.a_bits, conv1.out_bits) == (1, 1, 1)
        assert (conv2.out_bits, skip.out_bits) == (branch_out, branch_out)


def test_numpy_bits_give_a_json_report():
    import json

    import numpy as np

    report = estimate_cycles(_dense_model(), TINY, as_bits=np.int64(8))
    assert json.loads(report.to_json())["as_bits"] == 8 and report.layers[0].cycles == 6873


@pytest.mark.parametrize("family", ["pokebnn", "bnext"])
def test_pokebnn_and_bnext_binary_convs_run_1_bit_and_write_float(family):
    """The cycle model on the two other families: every binary conv (48 in PokeBNN, 17 in this
    BNext, as the LCE census counts them) runs 1-bit operands and writes its output at the
    float precision: none of them feeds a binary conv directly (LCE writes none bit-packed),
    their outputs meet float residual work first (the counts are the deploy tests')."""
    from larq_poke.zoo import BNext, PokeBNN

    if family == "pokebnn":
        model, expected = PokeBNN(0.5, input_shape=(64, 64, 3)), 48
    else:
        model, expected = BNext(SMALL_STAGES, input_shape=(64, 64, 3)), 17
    rows = estimate_cycles(model, TINY).layers
    binary = [row for row in rows if (row.w_bits, row.a_bits) == (1, 1)]
    assert len(binary) == expected
    assert {row.out_bits for row in binary} == {16}
