"""Models for the deployment benchmarks: zoo models with non-trivial random parameters.

No ImageNet-trained PokeBNN is published, and latency, op census and file size do not depend on
trained values, but *trivial* values do change what the converter emits (a zero BN gamma makes a
binary conv's multiplier 0; -1 activation bounds mean "not quantized"). So every parameter gets a
seeded non-trivial random value and PokeBNN's activation bounds are calibrated on random images
the way the official training sets them.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import larq_poke  # noqa: E402,F401  (Keras 2 before TensorFlow)


def randomize(model, seed: int = 0):
    """Give every weight of ``model`` a seeded, non-trivial value (in place); returns it."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name, shape = weight.name, tuple(weight.shape)
        if "bounds" in name or "temperature" in name:
            continue
        if "moving_variance" in name:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif any(key in name for key in ("moving_mean", "beta", "bias")):
            value = rng.normal(0.0, 0.2, shape)
        elif "pos_slope" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif "neg_slope" in name or "alpha" in name:
            value = rng.uniform(0.0, 0.5, shape)
        elif "scale" in name and len(shape) <= 1:
            value = rng.uniform(0.2, 0.8, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape)
        weight.assign(value.astype(np.float32))
    return model


def images(count: int, size: int = 224, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, size, size, 3)).astype(np.float32)


def pokebnn(width: float = 1.0, size: int = 224, seed: int = 0):
    """PokeBNN with random parameters and activation bounds calibrated on random images."""
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo import PokeBNN

    model = randomize(PokeBNN(width, input_shape=(size, size, 3)), seed)
    calibrate_activation_bounds(model, images(4, size))
    return model


def calibrate_batch_norms(model, batch: np.ndarray):
    """Set every BatchNormalization's moving statistics to the moments of its input on
    ``batch`` (in layer order, so each sees the already calibrated layers before it), as a
    trained network's would be. Without it, random BN statistics do not normalise and BNext's
    ELM products multiply magnitudes: logits reach 1e7 and any float reassociation flips them."""
    import tensorflow as tf

    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        probe = tf.keras.Model(model.inputs, layer.input)
        values = np.asarray(probe(batch, training=False), np.float64)
        axes = tuple(range(values.ndim - 1))
        layer.moving_mean.assign(values.mean(axis=axes).astype(np.float32))
        layer.moving_variance.assign(values.var(axis=axes).astype(np.float32))
    return model


def bnext_t(size: int = 224, seed: int = 0):
    """BNext-T with random parameters and batch-norm statistics calibrated on random images."""
    from larq_poke.zoo import BNextT

    model = randomize(BNextT(input_shape=(size, size, 3)), seed)
    return calibrate_batch_norms(model, images(4, size, seed=seed + 7))


def quicknet(size: int = 224, seed: int = 0):
    import larq_zoo

    return randomize(larq_zoo.sota.QuickNet(weights=None, input_shape=(size, size, 3)), seed)


def bineal(width: float = 1.0, size: int = 224, seed: int = 0):
    """BiNeal with random parameters (positive activation slopes, as its training constraint keeps
    them), batch-norm statistics and 8-bit input bounds calibrated on random images."""
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.zoo import BiNeal

    model = randomize(BiNeal(width, input_shape=(size, size, 3)), seed)
    for weight in model.weights:
        if weight.name.split("/")[-1].startswith("slope"):
            weight.assign(np.abs(weight.numpy()) + 0.05)
    calibrate_batch_norms(model, images(4, size, seed=seed + 7))
    calibrate_activation_bounds(model, images(4, size, seed=seed + 8))
    return model


def resnet18_int8(size: int = 224, seed: int = 0):
    """The float ResNet-18 reference with random weights and calibrated batch norms, converted to
    full-int8 TFLite (post-training quantization on random images; float input and output).
    Returns the Keras model and the flatbuffer."""
    from larq_poke.converters.int8 import convert_int8
    from larq_poke.zoo.references import ResNet18

    model = calibrate_batch_norms(randomize(ResNet18(input_shape=(size, size, 3)), seed), images(4, size, seed=seed + 7))
    return model, convert_int8(model, images(8, size, seed=seed + 9))


def shapes_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 images of :mod:`larq_poke.data.shapes` as model inputs in [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


def tflite_predict(flatbuffer: bytes, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """Outputs of a ``.tflite`` file on ``x`` with the LCE interpreter (indirect BGEMM, 1 thread),
    ``batch`` inputs at a time."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    return np.concatenate([interpreter.predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def truncate(flatbuffer: bytes, ops: int) -> bytes:
    """The first ``ops`` ops of a one-subgraph ``.tflite`` file, with the last one's output as the
    model output: timing prefixes of a file splits its latency with nothing but its own ops."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    if not 1 <= ops <= len(graph.operators):
        raise ValueError(f"ops={ops}: the file has {len(graph.operators)} ops")
    graph.outputs = [graph.operators[ops - 1].outputs[0]]
    graph.operators = graph.operators[:ops]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def stem_prefix(flatbuffer: bytes) -> bytes:
    """Every op of an LCE ``.tflite`` file before its first ``LceBconv2d`` (whose input, the
    bit-packed stem output, becomes the model output): the "stem" in a stem / body-and-head split
    of the latency, its ``LceQuantize`` included."""
    from larq_poke.converters.flatbuffer import read_flatbuffer

    names = [op.op_type for op in read_flatbuffer(flatbuffer).operators]
    if "LceBconv2d" not in names:
        raise ValueError("the file has no LceBconv2d")
    return truncate(flatbuffer, names.index("LceBconv2d"))


def float_elementwise_ops(flatbuffer: bytes) -> int:
    """Float elementwise ops (``ELEMENTWISE_OPS`` with a FLOAT32 output, not counting the
    ``QUANTIZE`` / ``DEQUANTIZE`` conversions, e.g. of the logits) after the stem, i.e. from the
    first ``LceQuantize`` on: the float glue of the binary body and head, at any map size
    (BiNeal's last stage runs on 1×1 maps at 32×32)."""
    from larq_poke.converters.flatbuffer import ELEMENTWISE_OPS, read_flatbuffer

    info = read_flatbuffer(flatbuffer)
    names = [op.op_type for op in info.operators]
    if "LceQuantize" not in names:
        raise ValueError("the file has no LceQuantize")
    return sum(1 for op in info.operators[names.index("LceQuantize"):]
               if op.op_type in ELEMENTWISE_OPS - {"QUANTIZE", "DEQUANTIZE"}
               and info.op_output_dtype(op) == "FLOAT32")


def bineal_stem_signs(model, flatbuffer: bytes, x: np.ndarray):
    """BiNeal's stem before its sign, on ``x``: ``(training, converted)``, the training form's
    stem batch-norm output minus its sign layer's threshold and the converted file's first
    ``CONV_2D`` output (int8 in an ``int8=True`` file). Their signs should agree wherever the
    training form's value is not within float error of 0."""
    import tensorflow as tf

    from larq_poke.converters.flatbuffer import read_flatbuffer
    from larq_poke.converters.rewrites.bineal import sign_threshold

    training = tf.keras.Model(model.inputs, model.get_layer("stem.bn").output)(x).numpy()
    training -= sign_threshold(model.get_layer("stem.act"))
    names = [op.op_type for op in read_flatbuffer(flatbuffer).operators]
    return training, tflite_predict(truncate(flatbuffer, names.index("CONV_2D") + 1), x)


def bineal_last_signs(model, flatbuffer: bytes, x: np.ndarray):
    """The ±1 map BiNeal's global average pool reads (the last block's output), on ``x``:
    ``(training, converted)``, from the Keras model and from the op before the file's pool
    (``AVERAGE_POOL_2D``, ±127, in an ``int8=True`` file; ``MEAN``, ±1, in a float one)."""
    import tensorflow as tf

    from larq_poke.converters.flatbuffer import read_flatbuffer

    pools = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.GlobalAveragePooling2D)]
    if len(pools) != 1:
        raise ValueError(f"expected one global average pool, found {len(pools)}")
    training = tf.keras.Model(model.inputs, pools[0].input)(x).numpy()
    names = [op.op_type for op in read_flatbuffer(flatbuffer).operators]
    pool = next(i for i, name in enumerate(names) if name in ("AVERAGE_POOL_2D", "MEAN"))
    return training, tflite_predict(truncate(flatbuffer, pool), x)


def bineal_int8_adds(model, calibration: np.ndarray):
    """BiNeal's ``int8=True`` deployable form with its blocks' branch outputs and ADDs in int8 too:
    a per-tensor int8 fake quant on both inputs and the output of every block ADD, over ranges
    measured on ``calibration``, so that LCE's binary convs write int8 instead of float and the
    ADDs run in int8. Returns ``(keras_model, flatbuffer)``.

    Not exact: int8 rounding moves branch sums that lie near a block's threshold across it. It
    is the benchmark's what-if for int8 adds (D6 deploys float or int8 adds), not a deployment
    form of the library."""
    import larq_compute_engine as lce
    import tensorflow as tf

    from larq_poke.converters.export import inference_saved_model
    from larq_poke.converters.rewrites.bineal import bineal_deployable
    from larq_poke.converters.rewrites.common import fake_quant, measured_range
    from larq_poke.keras_graph import node_inputs, node_output, rebuild_functional
    from larq_poke.layers.bineal import bineal_block_names

    deployable = bineal_deployable(model, int8=True, calibration_inputs=calibration)
    adds = {f"{name}.add" for name in bineal_block_names(model)}
    ranges = {}
    for name in adds:
        layer = deployable.get_layer(name)
        tensors = list(node_inputs(deployable, layer)) + [node_output(deployable, layer)]
        values = tf.keras.Model(deployable.inputs, tensors)(calibration)
        ranges[name] = [measured_range(v.numpy()) for v in values]

    def quantized(x, bounds, name):
        return tf.keras.layers.Lambda(lambda t: fake_quant(t, *bounds), name=name)(x)

    def substitute(layer, args, inbound, output, new):
        if layer.name not in adds:
            return None
        main, skip, out = ranges[layer.name]
        y = layer([quantized(args[0], main, f"{layer.name}.main_q"), quantized(args[1], skip, f"{layer.name}.skip_q")])
        return quantized(y, out, f"{layer.name}.q")

    variant = rebuild_functional(deployable, substitute)
    with tempfile.TemporaryDirectory(prefix="larq-poke-int8-adds-") as directory:
        inference_saved_model(variant, directory)
        flatbuffer = lce.convert_saved_model(directory, target="arm")
    return variant, flatbuffer
