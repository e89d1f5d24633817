"""BiNeal super-resolution (BiNealEDSR): arguments, shapes and the residual/shuffle wiring against
independent computations, the pairs and metrics against scikit-image, then a small binary EDSR
trained on photographs beating bicubic upsampling on held-out photographs, in Keras and after
LCE conversion (binary body as LceBconv2d, 8-bit head and tail as int8 convs)."""

import numpy as np
import pytest
import tensorflow as tf

from larq_poke.converters import convert
from larq_poke.data.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photos, random_crops
from larq_poke.data.sr_pairs import make_pairs, photo_tiles
from larq_poke.train.tasks import fit_task
from larq_poke.train.tasks.super_resolution import SR_LR, l1_loss, psnr, ssim
from larq_poke.zoo.bineal_tasks import BiNealEDSR
from larq_poke.layers.pixel_shuffle import PixelShuffle

SCALE = 2
WIDTH, BLOCKS = 1, 2
TRAIN_LR_SIZE = 16  # low-resolution training crops
TILE = 48  # low-resolution side of the held-out tiles


def _psnr_per_photo(hr, pred, groups, border=SCALE):
    """PSNR of each photograph from the MSE over its tiles (border cropped), mean over photos."""
    diff = np.clip(pred, 0, 1)[:, border:-border, border:-border] - hr[:, border:-border, border:-border]
    mse = np.mean(np.square(diff, dtype=np.float64), axis=(1, 2, 3))
    return float(np.mean([10 * np.log10(1 / mse[groups == g].mean()) for g in np.unique(groups)]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        BiNealEDSR(3)
    with pytest.raises(ValueError, match="blocks"):
        BiNealEDSR(2, 1, blocks=0)
    with pytest.raises(ValueError, match="width_multiplier=0.5 gives 16"):
        BiNealEDSR(2, 0.5)
    with pytest.raises(ValueError, match="width_multiplier"):
        BiNealEDSR(2, -1)
    with pytest.raises(ValueError, match="precision"):
        BiNealEDSR(2, 1, precision="float32")
    with pytest.raises(ValueError, match="weights"):
        BiNealEDSR(2, 1, weights="imagenet")
    with pytest.raises(ValueError, match="input_shape"):
        BiNealEDSR(2, 1, input_shape=(16, 16, 1))


@pytest.mark.parametrize("precision", ["binary", "int8"])
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shapes_and_bilinear_residual(scale, precision):
    model = BiNealEDSR(scale, 1, blocks=1, input_shape=(None, None, 3), precision=precision)
    x = np.random.default_rng(scale).uniform(0, 1, (2, 12, 20, 3)).astype(np.float32)
    assert model.output_shape == (None, None, None, 3)
    assert model(x).shape == (2, 12 * scale, 20 * scale, 3)
    fixed = BiNealEDSR(scale, 1, blocks=1, input_shape=(16, 16, 3), precision=precision)
    assert fixed.output_shape == (None, 16 * scale, 16 * scale, 3)
    # With the tail silenced the model is exactly a bilinear upscaler (half-pixel centres).
    for name in ("tail.conv", "tail.skip"):
        layer = model.get_layer(name)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    expected = tf.compat.v1.image.resize_bilinear(x, (12 * scale, 20 * scale), half_pixel_centers=True)
    np.testing.assert_allclose(model(x), expected, atol=1e-6)


def test_config_round_trip():
    model = BiNealEDSR(4, 1, blocks=1, input_shape=(8, 8, 3))
    again = tf.keras.Model.from_config(model.get_config())
    again.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(again(x), model(x))


def test_pixel_shuffle_layout():
    r, c = 2, 3
    x = np.arange(2 * 3 * 4 * c * r * r, dtype=np.float32).reshape(2, 3, 4, c * r * r)
    y = PixelShuffle(r)(x).numpy()
    for i in range(r):
        for j in range(r):  # sub-pixel (i, j) of every cell holds channels (i·r + j)·C ... + C
            np.testing.assert_array_equal(y[:, i::r, j::r, :], x[..., (i * r + j) * c:(i * r + j + 1) * c])


def test_pairs_and_metrics():
    flat = np.full((2, 8, 12, 3), 0.3, np.float32)
    lr, hr = make_pairs(flat, 2)
    assert lr.shape == (2, 4, 6, 3) and hr.shape == flat.shape
    np.testing.assert_allclose(lr, 0.3, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of scale"):
        make_pairs(np.zeros((1, 9, 8, 3), np.float32), 2)
    photo = load_photos(["coins"])[0]
    tiles, index = photo_tiles([photo, photo[:100, :200]], 96)
    assert len(tiles) == (photo.shape[0] // 96) * (photo.shape[1] // 96) + 2 and index[-1] == 1
    np.testing.assert_array_equal(tiles[1], photo[:96, 96:192])

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    reference = np.mean([peak_signal_noise_ratio(x[2:-2, 2:-2], y[2:-2, 2:-2], data_range=1) for x, y in zip(a, b)])
    assert psnr(a, b, border=2) == pytest.approx(reference, abs=1e-3)
    assert psnr(a, b, border=2, groups=np.array([0, 0, 1])) == pytest.approx(
        _psnr_per_photo(a, b, np.array([0, 0, 1]), border=2), abs=1e-3)
    reference = np.mean([structural_similarity(x, y, data_range=1, channel_axis=-1, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False) for x, y in zip(a, b)])
    assert ssim(a, b) == pytest.approx(reference, abs=0.02)


@pytest.fixture(scope="module")
def held_out():
    tiles, groups = photo_tiles(load_photos(HELD_OUT_PHOTOS), SCALE * TILE)
    lr, hr = make_pairs(tiles, SCALE)
    size = (SCALE * TILE, SCALE * TILE)
    bicubic = np.clip(tf.image.resize(lr, size, method="bicubic").numpy(), 0, 1)  # Keys, a = -0.5
    from skimage.transform import resize

    spline = np.stack([resize(t, size, order=3, mode="edge") for t in lr])  # cubic spline, skimage
    return {"lr": lr, "hr": hr, "groups": groups,
            "bicubic": _psnr_per_photo(hr, bicubic, groups), "spline": _psnr_per_photo(hr, spline, groups)}


@pytest.fixture(scope="module")
def trained():
    tf.keras.utils.set_random_seed(0)
    crops = random_crops(load_photos(TRAIN_PHOTOS), 1024, size=SCALE * TRAIN_LR_SIZE, seed=0)
    lr, hr = make_pairs(crops, SCALE)
    model = BiNealEDSR(SCALE, WIDTH, blocks=BLOCKS, input_shape=(None, None, 3))
    data = tf.data.Dataset.from_tensor_slices((lr, hr)).shuffle(len(lr), seed=0).batch(16)
    fit_task(model, data, loss=l1_loss(), epochs=6, lr=SR_LR["binary"], calibration_inputs=lr[:32])
    # the same weights at the fixed tile size, for TFLite
    fixed = BiNealEDSR(SCALE, WIDTH, blocks=BLOCKS, input_shape=(TILE, TILE, 3))
    fixed.set_weights(model.get_weights())
    return fixed


def test_binary_edsr_beats_bicubic(trained, held_out):
    pred = trained.predict(held_out["lr"], batch_size=16, verbose=0)
    score = _psnr_per_photo(held_out["hr"], pred, held_out["groups"])
    print(f"held-out PSNR: binary EDSR {score:.2f} dB, bicubic {held_out['bicubic']:.2f}, "
          f"cubic spline {held_out['spline']:.2f}")
    assert score > held_out["bicubic"] + 0.3
    assert score > held_out["spline"]


def test_binary_edsr_converts_with_lce(trained, held_out):
    report = convert(trained, strict=True, sample_inputs=held_out["lr"][:4]).report
    print("binary census", report.op_counts, "parity", report.parity.max_abs_diff)
    assert len(report.binary_layers) == 3 * BLOCKS and report.fully_binarized
    assert report.op_counts.get("LceBconv2d") == 3 * BLOCKS
    assert report.op_counts.get("DEPTH_TO_SPACE") == 1 and report.op_counts.get("RESIZE_BILINEAR") == 1
    # a bit flipped at a threshold by float rounding moves a pixel by one tail weight: less
    # than one 8-bit grey level
    assert report.parity.max_abs_diff < 1 / 255


def test_int8_head_and_tail(trained, held_out):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    result = convert(trained, int8=True, sample_inputs=held_out["lr"][:16])
    info, report = result.model_info, result.report
    int8_convs = [op for op in info.operators if op.op_type == "CONV_2D" and info.op_output_dtype(op) == "INT8"]
    assert len(int8_convs) == 3  # the head and the two tail convs
    assert report.fully_binarized and report.op_counts.get("LceBconv2d") == 3 * BLOCKS
    interpreter = Interpreter(result.flatbuffer, num_threads=1, use_indirect_bgemm=True)
    lr = held_out["lr"]
    tflite = np.concatenate([interpreter.predict(lr[i:i + 16]) for i in range(0, len(lr), 16)])
    keras = trained.predict(lr, batch_size=16, verbose=0)
    tflite_score = _psnr_per_photo(held_out["hr"], tflite, held_out["groups"])
    keras_score = _psnr_per_photo(held_out["hr"], keras, held_out["groups"])
    print(f"int8 TFLite PSNR {tflite_score:.2f} dB, Keras {keras_score:.2f}, bicubic {held_out['bicubic']:.2f}")
    assert abs(tflite_score - keras_score) < 0.25
    assert tflite_score > held_out["bicubic"] + 0.2
