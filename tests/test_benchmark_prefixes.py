"""``benchmarks/common.py``'s file prefixes, which split a host latency into stem, body and single
ops (``benchmarks/bineal.py``): a prefix must compute exactly what the model computes up to its
last op, checked against the Keras model's own intermediate outputs. Also the benchmark's int8-add
what-if for BiNeal, checked against LCE's census and its own Keras form."""

import numpy as np
import pytest

import larq_poke  # noqa: F401  (Keras 2 before TensorFlow)
import larq as lq
import tensorflow as tf


def _run(flatbuffer: bytes, x: np.ndarray) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=1).predict(x)


def test_truncate_outputs_the_intermediate_tensor_of_the_keras_model(benchmark_common):
    inputs = tf.keras.Input((8, 8, 3))
    first = tf.keras.layers.Conv2D(4, 3, activation="relu", name="first")(inputs)
    second = tf.keras.layers.Conv2D(5, 1, name="second")(first)
    outputs = tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(second))
    model = tf.keras.Model(inputs, outputs)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)

    for ops, layer in ((1, "first"), (2, "second")):
        expected = tf.keras.Model(inputs, model.get_layer(layer).output)(x).numpy()
        np.testing.assert_allclose(_run(benchmark_common.truncate(flatbuffer, ops), x), expected, atol=1e-5)
    np.testing.assert_allclose(_run(benchmark_common.truncate(flatbuffer, 4), x), model(x).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="ops=5: the file has 4 ops"):
        benchmark_common.truncate(flatbuffer, 5)
    with pytest.raises(ValueError, match="has no LceBconv2d"):
        benchmark_common.stem_prefix(flatbuffer)


def test_stem_prefix_ends_with_the_bitpacked_input_of_the_first_binary_conv(benchmark_common):
    import larq_compute_engine as lce

    inputs = tf.keras.Input((6, 6, 3))
    stem = tf.keras.layers.Conv2D(40, 3, padding="same", use_bias=False, name="stem")(inputs)
    binary = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                   kernel_constraint="weight_clip", pad_values=1.0,
                                   padding="same", use_bias=False)(stem)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(binary))
    flatbuffer = lce.convert_keras_model(model)
    x = np.random.default_rng(1).normal(size=(1, 6, 6, 3)).astype(np.float32)

    words = _run(benchmark_common.stem_prefix(flatbuffer), x)
    assert words.dtype == np.int32 and words.shape == (1, 6, 6, 2)  # 40 channels -> 2 words
    # LCE packs channel c into bit c % 32 of word c // 32, a set bit meaning -1.
    bits = (words[..., :, None].astype(np.uint32) >> np.arange(32, dtype=np.uint32)) & 1
    negative = bits.reshape(1, 6, 6, 64)[..., :40].astype(bool)
    stem_out = tf.keras.Model(inputs, model.get_layer("stem").output)(x).numpy()
    np.testing.assert_array_equal(negative, stem_out < 0)


def test_bineal_int8_adds_makes_lce_write_int8_branches_and_add_in_int8(benchmark_common):
    from larq_poke.converters.flatbuffer import read_flatbuffer

    calibration = benchmark_common.images(4, 32, seed=3)
    variant, flatbuffer = benchmark_common.bineal_int8_adds(benchmark_common.bineal(1.0, 32), calibration)
    info = read_flatbuffer(flatbuffer)
    # per block: the first main conv bit-packed, the second and the skip conv int8
    assert [b.output for b in info.bconvs] == ["bitpacked", "int8", "int8"] * 8
    adds = [op for op in info.operators if op.op_type == "ADD"]
    assert len(adds) == 8 and {info.op_output_dtype(op) for op in adds} == {"INT8"}
    assert benchmark_common.float_elementwise_ops(flatbuffer) == 0  # no float glue left after the stem
    # and it computes its Keras form (fake quant rounds as the int8 kernels do)
    x = benchmark_common.images(4, 32, seed=4)
    np.testing.assert_allclose(benchmark_common.tflite_predict(flatbuffer, x), variant.predict(x, verbose=0), atol=1e-4)
    # whose first block rounds each branch and the sum to an int8 grid over that tensor's own
    # range on the calibration images (the float branches are the inputs of the fake quants)
    names = [f"stage1.block1.add{suffix}" for suffix in (".main_q", ".skip_q", ".q")]
    tensors = [variant.get_layer(name).input for name in names[:2]] + [variant.get_layer(name).output for name in names]
    main, skip, fake_main, fake_skip, fake_sum = (t.numpy() for t in tf.keras.Model(variant.inputs, tensors)(calibration))
    # the sum's range is the float sum's; what it rounds is the sum of the rounded branches
    for real, rounded, fake in ((main, main, fake_main), (skip, skip, fake_skip),
                                (main + skip, fake_main + fake_skip, fake_sum)):
        step = (max(real.max(), 0) - min(real.min(), 0)) / 255
        assert np.unique(fake).size <= 256
        # half the step of the range widened by 10 % (0.55 step), plus float slack
        assert np.max(np.abs(fake - rounded)) <= 0.56 * step
