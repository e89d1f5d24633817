"""Input pipelines: the recipes' preprocessing geometry, TFDS's imagenet2012 builder on a tiny
manual-download directory in the official tar layout, and image folders."""

import dataclasses
import io
import os
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


def _timm_auto_augment():
    """timm's RandAugment module; a skip without timm, except in CI (the test extra installs it)."""
    from larq_poke.data.randaugment import timm_auto_augment

    try:
        return timm_auto_augment()
    except ImportError as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"timm is not installed: {err}")


def test_bnext_training_applies_timm_randaugment_after_crop_and_flip():
    """The bnext transform is crop + flip (checked above) followed by timm's RandAugment with
    timm's ImageNet hyper-parameters, drawn from the example's seed: the same as calling timm's
    ``rand_augment_transform`` on the cropped image with those draws."""
    import random

    from PIL import Image

    timm = _timm_auto_augment()
    bnext = preprocessing.get("bnext").with_size(64)
    photo = np.random.default_rng(4).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    # timm's transforms_imagenet_train: translate 45 % of the size, mean fill, bicubic.
    hparams = {"translate_const": int(64 * 0.45), "img_mean": (124, 116, 104), "interpolation": Image.BICUBIC}
    transform = timm.rand_augment_transform("rand-m7-mstd0.5-inc1", hparams)
    changed = 0
    for index in range(8):
        seed = tf.constant([3, index], tf.int64)
        out = bnext.train(tf.constant(photo), seed).numpy()
        cropped = dataclasses.replace(bnext, randaugment=None, mean=None).train(tf.constant(photo), seed).numpy()
        cropped = np.round(cropped * 255.0).astype(np.uint8)
        draw = tf.random.stateless_uniform([], tf.cast(tf.random.experimental.stateless_fold_in(seed, 3), tf.int32),
                                           maxval=2**31 - 1, dtype=tf.int32).numpy()
        random.seed(int(draw))
        np.random.seed(int(draw))
        expected = np.asarray(transform(Image.fromarray(cropped)), np.uint8)
        np.testing.assert_allclose(out, normalise(expected), atol=1e-5)
        changed += np.abs(expected.astype(np.float32) - cropped).mean() > 1.0
    assert changed >= 4  # each of the two ops applies with probability 0.5


def test_randaugment_is_seeded_and_leaves_the_global_random_state_alone():
    import random

    _timm_auto_augment()
    from larq_poke.data.randaugment import RandAugment

    augment = RandAugment("rand-m7-mstd0.5-inc1", image_size=48)
    image = tf.constant(np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    random.seed(11)
    before = random.random()
    random.seed(11)
    results = {s: augment(image, tf.constant([0, s])).numpy() for s in range(6)}
    assert random.random() == before
    np.testing.assert_array_equal(results[2], augment(image, tf.constant([0, 2])).numpy())
    assert len({r.tobytes() for r in results.values()}) >= 4  # a seed may draw no change (p = 1/4)
    with pytest.raises(ValueError, match="must start with 'rand'"):
        RandAugment("original-mstd0.5", image_size=48)


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


def test_write_image_folder_round_trips_through_load_dataset(tmp_path):
    from larq_poke.data import write_image_folder

    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (12, 20, 20), dtype=np.uint8)
    labels = np.array([0, 1, 2, 10] * 3)
    write_image_folder(tmp_path, "test", images, labels)
    assert sorted(p.name for p in (tmp_path / "test").iterdir())[:2] == ["00", "01"]  # label order
    plain = dataclasses.replace(preprocessing.get("plain"), mean=None)
    data = list(load_dataset(tmp_path, "test", preprocessing=plain, image_size=20, batch_size=12))
    x, y = data[0][0].numpy(), data[0][1].numpy()
    # Folders sort as labels, so the folder's class indices are 0, 1, 2, 3 for labels 0, 1, 2, 10.
    found = {tuple(np.round(x[i, :, :, 0] * 255).astype(np.uint8).ravel()): int(y[i]) for i in range(12)}
    for image, label in zip(images, labels):
        assert found[tuple(image.ravel())] == {0: 0, 1: 1, 2: 2, 10: 3}[int(label)]
    with pytest.raises(FileExistsError, match="nothing was written"):
        write_image_folder(tmp_path, "test", images, labels)
    with pytest.raises(ValueError, match="must be uint8"):
        write_image_folder(tmp_path, "train", images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="12 non-negative integers"):
        write_image_folder(tmp_path, "train", images, labels[:5])


def test_a_tfds_dataset_without_labels_is_refused(tmp_path):
    """A real (locally generated) TFDS data set with images only: no classifier can train on it."""
    import tensorflow_datasets as tfds

    class ImagesWithoutLabels(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(8, 8, 3))}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            rng = np.random.default_rng(0)
            for i in range(3):
                yield i, {"image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)}

    from larq_poke.data import dataset_info

    with pytest.raises(DatasetError, match="no \\(image, label\\) supervised keys"):
        dataset_info("images_without_labels", data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="no \\(image, label\\) supervised keys"):
        load_dataset("images_without_labels", "train", data_dir=str(tmp_path))
