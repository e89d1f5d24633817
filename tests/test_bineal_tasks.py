"""BiNeal's dense-prediction models: the generated shapes data checked against its own geometry,
the FCN learning on it (held-out mIoU above a background-only predictor) and deploying with LCE."""

import numpy as np
import pytest
import tensorflow as tf

from larq_poke.converters import convert
from larq_poke.data.shapes import SHAPE_CLASSES, generate_shapes
from larq_poke.train.distill import build_optimizer
from larq_poke.zoo.bineal_tasks import BiNealFCN

SIZE = 64
CLASSES = len(SHAPE_CLASSES)


def _norm(images):
    return images.astype(np.float32) / 127.5 - 1.0


def test_shapes_masks_lie_in_their_boxes_and_are_seeded():
    images, masks, boxes = generate_shapes(40, size=SIZE, seed=3)
    assert images.shape == (40, SIZE, SIZE, 3) and images.dtype == np.uint8 and masks.shape == (40, SIZE, SIZE)
    again = generate_shapes(40, size=SIZE, seed=3)
    np.testing.assert_array_equal(again[0], images)
    assert not np.array_equal(generate_shapes(40, size=SIZE, seed=4)[1], masks)
    seen = set()
    for mask, found in zip(masks, boxes):
        assert 1 <= len(found) <= 3
        covered = np.zeros_like(mask, bool)
        for kind, x0, y0, x1, y1 in found:
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            box = np.zeros_like(mask, bool)
            box[y0:y1, x0:x1] = True
            covered |= box & (mask == kind)
            seen.add(kind)
        assert np.all(covered == (mask > 0))  # every shape pixel lies in a box of its class
    assert seen == {1, 2, 3}
    with pytest.raises(ValueError, match="size >= 16"):
        generate_shapes(2, size=8)


def test_fcn_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        BiNealFCN(1, 0.5, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="divisible by 32"):
        BiNealFCN(4, 0.5, input_shape=(SIZE, 80, 3))
    with pytest.raises(ValueError, match="include_top"):
        BiNealFCN(4, 0.5, input_shape=(SIZE, SIZE, 3), include_top=True)


@pytest.fixture(scope="module")
def trained_fcn():
    tf.keras.utils.set_random_seed(0)
    images, masks, _ = generate_shapes(512, size=SIZE, seed=0)
    model = BiNealFCN(CLASSES, 0.5, input_shape=(SIZE, SIZE, 3))
    assert model.output_shape == (None, SIZE, SIZE, CLASSES)
    model.compile(tf.keras.optimizers.Adam(2e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    build_optimizer(model)  # one trace of the step
    model.fit(_norm(images), masks, batch_size=32, epochs=6, verbose=0)
    return model


def _miou(logits, masks):
    metric = tf.keras.metrics.MeanIoU(CLASSES, sparse_y_pred=False)
    metric.update_state(masks, logits)
    return float(metric.result())


def test_fcn_learns_the_shapes(trained_fcn):
    images, masks, _ = generate_shapes(64, size=SIZE, seed=1)
    miou = _miou(trained_fcn.predict(_norm(images), verbose=0), masks)
    trivial = _miou(np.eye(CLASSES)[np.zeros_like(masks)], masks)  # everything background
    assert trivial == pytest.approx(np.mean(masks == 0) / CLASSES)
    assert miou > trivial + 0.06, (miou, trivial)


def test_fcn_deploys_with_lce(trained_fcn):
    images, _, _ = generate_shapes(4, size=SIZE, seed=2)
    report = convert(trained_fcn, strict=True, sample_inputs=_norm(images)).report
    assert len(report.binary_layers) == 24 and report.fully_binarized and report.bitpacked_outputs == 8
    assert report.op_counts.get("RESIZE_BILINEAR") == 3
    assert report.parity.max_abs_diff < 1e-3 * max(1.0, report.parity.max_abs_reference)


def test_fcn_int8_stem_and_score_convs(trained_fcn):
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    images, _, _ = generate_shapes(8, size=SIZE, seed=5)
    calibrate_activation_bounds(trained_fcn, _norm(images))
    result = convert(trained_fcn, int8=True, sample_inputs=_norm(images))
    info, report = result.model_info, result.report
    int8_convs = sum(1 for op in info.operators if op.op_type == "CONV_2D" and info.op_output_dtype(op) == "INT8")
    assert int8_convs == 4  # the stem and the three score convs
    assert report.fully_binarized and report.bitpacked_outputs == 8
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    held_out, masks, _ = generate_shapes(32, size=SIZE, seed=6)
    interpreter = Interpreter(result.flatbuffer, num_threads=1, use_indirect_bgemm=True)
    int8_logits = np.concatenate([interpreter.predict(_norm(held_out[i:i + 8])) for i in range(0, 32, 8)])
    keras_logits = trained_fcn.predict(_norm(held_out), verbose=0)
    agreement = np.mean(np.argmax(int8_logits, -1) == np.argmax(keras_logits, -1))
    print(f"int8 pixel agreement {agreement:.3f}, mIoU int8 {_miou(int8_logits, masks):.3f} keras {_miou(keras_logits, masks):.3f}")
    assert agreement >= 0.9
    assert _miou(int8_logits, masks) >= _miou(keras_logits, masks) - 0.05


def test_task_models_are_zoo_entries():
    from larq_poke.zoo import build, list_models, list_task_models

    assert list_task_models("segmentation") == ["bineal-fcn-2.0x"]
    assert list_task_models("detection") == ["bineal-centernet-2.0x", "bineal-centernet-head-2.0x"]
    assert list_task_models("super-resolution") == ["bineal-edsr-x2-2.0x", "bineal-edsr-x4-2.0x"]
    assert list_task_models("matching") == ["bineal-r2d2-2.0x"]
    assert not set(list_task_models()) & set(list_models())  # the classifier contract does not apply
    model = build("bineal-fcn-2.0x", num_classes=3, input_shape=(SIZE, SIZE, 3))
    assert model.name == "bineal-fcn-2.0x" and model.output_shape == (None, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="width_multiplier is fixed by this zoo name"):
        build("bineal-fcn-2.0x", num_classes=3, width_multiplier=1.0)
    with pytest.raises(ValueError, match="'bineal-r2d2-2.0x': .*unexpected keyword argument 'colour'"):
        build("bineal-r2d2-2.0x", colour="red")  # refused before anything is built
    for name in ("bineal-fcn-2.0x", "bineal-centernet-2.0x"):  # these pass BiNeal's options on
        with pytest.raises(ValueError, match="unknown argument.*'colour'.*'skip_kernel'"):
            build(name, num_classes=3, input_shape=(SIZE, SIZE, 3), colour="red")
    with pytest.raises(ValueError, match="'bnext-t': .*unexpected keyword argument 'colour'"):
        build("bnext-t", colour="red")
    with pytest.raises(KeyError, match="Known tasks"):
        list_task_models("depth")


def test_fcn_int8_counterpart_is_fully_int8():
    from larq_poke.converters.flatbuffer import read_flatbuffer
    from larq_poke.converters.int8 import convert_int8

    model = BiNealFCN(CLASSES, input_shape=(SIZE, SIZE, 3), precision="int8")
    assert model.name == "resnet18-fcn-int8" and model.output_shape == (None, SIZE, SIZE, CLASSES)
    assert not any("Quant" in type(layer).__name__ for layer in model.layers)
    images = _norm(generate_shapes(8, size=SIZE, seed=7)[0])
    info = read_flatbuffer(convert_int8(model, images))
    convs = [op for op in info.operators if op.op_type == "CONV_2D"]
    assert len(convs) == 20 + 3 and all(info.op_output_dtype(op) == "INT8" for op in convs)
    with pytest.raises(ValueError, match="representative_inputs have shape"):
        convert_int8(model, images[:, :32])
    with pytest.raises(ValueError, match="precision"):
        BiNealFCN(CLASSES, input_shape=(SIZE, SIZE, 3), precision="float16")


def test_fit_task_calibrates_the_8_bit_bounds_on_the_first_batch_by_default():
    """Without calibration_inputs, the recipe still calibrates the 8-bit stem once, on the first
    batch's images: its bound is then their max |x| (the stem reads the images themselves).
    Before, it silently stayed at the uncalibrated -1 and the stem trained unquantized."""
    from larq_poke.train.tasks import fit_task

    tf.keras.utils.set_random_seed(0)
    images, masks, _ = generate_shapes(16, size=32, seed=2)
    x = _norm(images)
    model = BiNealFCN(CLASSES, 0.5, input_shape=(32, 32, 3))
    data = tf.data.Dataset.from_tensor_slices((x, masks)).batch(8)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for bad in (0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="learning rate must be a positive number"):
            fit_task(model, data, loss=loss, epochs=2, lr=bad)
    fit_task(model, data, loss=loss, epochs=2)
    bound = model.get_layer("stem.conv").input_quantizer.bounds.numpy()
    np.testing.assert_allclose(bound, [np.abs(x[:8]).max()], rtol=1e-6)
