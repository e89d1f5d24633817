"""Input pipelines: the recipes' preprocessing geometry, TFDS's imagenet2012 builder on a tiny
manual-download directory in the official tar layout, and image folders."""

import io
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from larq_poke.data import DatasetError, load_dataset, preprocessing

@pytest.fixture(autouse=True)
def no_gcs(monkeypatch):
    """TFDS looks up dataset metadata on Google Cloud Storage before preparing a data set; tests
    never touch the network (TFDS's own tests switch this off the same way)."""
    from tensorflow_datasets.core.utils import gcs_utils

    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", True)


MEAN = np.array(preprocessing.IMAGENET_MEAN, np.float32)
STD = np.array(preprocessing.IMAGENET_STD, np.float32)


def normalise(pixels):
    return (pixels.astype(np.float32) / 255.0 - MEAN) / STD


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8)


def test_pokebnn_eval_is_a_224_of_256_center_crop(photo):
    out = preprocessing.get("pokebnn").eval(tf.constant(photo)).numpy()
    # short side 256 -> a 224 x 224 center crop, resized to 224 (no change)
    np.testing.assert_allclose(out, normalise(photo[16:240, 48:272]), atol=2e-4)


def test_bnext_eval_resizes_the_short_side_to_235_then_crops(photo):
    image = photo[:235, :300]
    out = preprocessing.get("bnext").eval(tf.constant(image)).numpy()
    # short side already 235: center crop 224 at ((235-224)//2, (300-224)//2)
    np.testing.assert_allclose(out, normalise(image[5:229, 38:262]), atol=2e-4)
    big = preprocessing.get("bnext").eval(tf.constant(photo)).numpy()
    assert big.shape == (224, 224, 3)


def test_train_transform_is_seeded():
    prep = preprocessing.Preprocessing("t", image_size=32, randaugment=None)
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    a = prep.train(image, (1, 2)).numpy()
    b = prep.train(image, (1, 2)).numpy()
    c = prep.train(image, (1, 3)).numpy()
    assert a.shape == (32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_randaugment_is_not_silently_skipped():
    with pytest.raises(NotImplementedError, match="rand-m7-mstd0.5-inc1"):
        preprocessing.get("bnext").train(tf.zeros((8, 8, 3), tf.uint8), (0, 0))


def test_preprocessing_round_trips_and_rejects_bad_values():
    prep = preprocessing.get("bnext")
    assert preprocessing.Preprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(ValueError, match="eval_mode"):
        preprocessing.Preprocessing("x", eval_mode="squash")
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocessing.get("resnet")


# --- imagenet2012 through the real TFDS builder --------------------------------------------------


def _jpeg(color, size=(40, 52)):
    pixels = np.empty(size + (3,), np.uint8)
    pixels[...] = color
    return tf.io.encode_jpeg(pixels, quality=100).numpy()


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _imagenet_manual_dir(root):
    """The official layout: a train tar of per-synset tars, a flat validation tar."""
    root.mkdir()
    classes = {"n01440764": [(200, 30, 30)] * 3, "n01443537": [(30, 200, 30)] * 2}
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as train:
        for synset, colors in classes.items():
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as sub:
                for i, color in enumerate(colors):
                    _add(sub, f"{synset}_{i}.JPEG", _jpeg(color))
            _add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as val:
        for i in range(1, 5):
            _add(val, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg((30, 30, 200)))
    return root


def test_imagenet2012_from_a_manual_download_directory(tmp_path):
    import tensorflow_datasets as tfds

    manual = _imagenet_manual_dir(tmp_path / "manual")
    data_dir = tmp_path / "tfds"
    val = load_dataset("imagenet2012", "validation", data_dir=data_dir, manual_dir=manual,
                       preprocessing="bnext", batch_size=4)
    images, labels = next(iter(val))
    assert images.shape == (4, 224, 224, 3)
    np.testing.assert_allclose(images.numpy()[:, 100, 100], normalise(np.array([30, 30, 200]))[None].repeat(4, 0), atol=0.05)
    # The official validation labels of the first four images (bundled with TFDS).
    label_file = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    synsets = label_file.read_text().split()[:4]
    names = tfds.builder("imagenet2012", data_dir=data_dir).info.features["label"]
    # TFDS shuffles examples when it prepares the split: compare as multisets.
    assert sorted(labels.numpy().tolist()) == sorted(names.str2int(s) for s in synsets)

    train = load_dataset("imagenet2012", "train", data_dir=data_dir, manual_dir=manual,
                         preprocessing="pokebnn", batch_size=5)
    images, labels = next(iter(train))
    assert images.shape == (5, 224, 224, 3)
    assert sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1]  # n01440764, n01443537


def test_imagenet2012_names_the_missing_manual_files(tmp_path):
    (tmp_path / "manual").mkdir()
    with pytest.raises(DatasetError, match="ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar not found in .*manual"):
        load_dataset("imagenet2012", "train", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")


# --- image folders ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(2)
    for split, count in (("train", 6), ("test", 3)):
        for label in ("three", "seven"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
                (root / split / label / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def test_image_folder_is_repeatable_in_deterministic_mode(folder):
    def batches():
        ds = load_dataset(folder, "train", training=True, deterministic=True, seed=3, image_size=32, batch_size=4)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    first, second = batches(), batches()
    assert len(first) == 3 and first[0][0].shape == (4, 32, 32, 3)  # grey digits become RGB
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    test = list(load_dataset(folder, "test", image_size=32, batch_size=10))
    assert test[0][1].shape == (6,) and sorted(set(test[0][1].numpy().tolist())) == [0, 1]


def test_bad_sources_are_named(folder, tmp_path):
    with pytest.raises(DatasetError, match="no split 'validation'"):
        load_dataset(folder, "validation")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="neither an image folder nor a TFDS data set"):
        load_dataset("no_such_dataset_xyz", "train")


def test_pretrained_bnext_weights_name_their_evaluation_crop():
    from larq_poke.zoo import weights

    prep = preprocessing.get(weights.get("bnext-t", "imagenet").preprocessing)
    assert (prep.eval_mode, prep.image_size, int(prep.image_size / prep.crop_fraction)) == ("resize_then_crop", 224, 235)
    assert prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)
