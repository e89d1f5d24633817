"""``tf.data`` pipelines of labelled images from TensorFlow Datasets or an image folder.

``source`` is a TFDS name (``"imagenet2012"`` from the user's manual-download directory,
``"mnist"``, ``"cifar10"``, any TFDS image-classification data set) or a folder laid out as
``DIR/<split>/<class>/<image>`` (read with TFDS's ``ImageFolder``). Images are decoded and
preprocessed in parallel, batched and prefetched; ``deterministic=True`` fixes the file and
element order and the augmentation seeds, so two runs see the same batches.

```python
from larq_poke.data import load_dataset
train = load_dataset("imagenet2012", "train", manual_dir="~/imagenet", preprocessing="bnext",
                     training=True, batch_size=64)
test = load_dataset("digits/", "test", preprocessing="plain", image_size=32, batch_size=100)
```
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

from larq_poke.data.preprocessing import Preprocessing, get

__all__ = [
    "DatasetError", "DatasetInfo", "dataset_info", "load_dataset", "write_image_folder", "IMAGENET_MANUAL_FILES",
]

#: The files TFDS's imagenet2012 builder reads from the manual-download directory.
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


class DatasetError(ValueError):
    """A data set cannot be read: missing files, no labels, unknown split or name."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a training or evaluation run needs to know about a data set."""

    name: str
    num_classes: int
    splits: dict  # split name -> number of examples
    channels: int


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def _is_folder(source) -> bool:
    """A path (``Path``, an existing folder, or written as one); TFDS names with a config or
    version (``imagenet2012_subset/1pct``) are not."""
    text = str(source)
    return (
        isinstance(source, os.PathLike)
        or os.path.isdir(os.path.expanduser(text))
        or text.startswith((".", "/", "~"))
    )


def _builder(source, data_dir, manual_dir):
    tfds = _tfds()
    if _is_folder(source):
        root = Path(source).expanduser()
        if not root.is_dir():
            raise DatasetError(f"image folder {root} does not exist.")
        splits = [p.name for p in sorted(root.iterdir()) if p.is_dir()]
        if not splits:
            raise DatasetError(
                f"image folder {root} has no split folders; expected {root}/train/<class>/<image> "
                f"and {root}/test/<class>/<image>."
            )
        return tfds.folder_dataset.ImageFolder(os.fspath(root)), None
    name = str(source)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises DatasetNotFoundError (and others) with a long text
        raise DatasetError(f"{name!r} is neither an image folder nor a TFDS data set ({err}).") from None
    download_config = None
    if manual_dir is not None or name.split("/")[0].split(":")[0] == "imagenet2012":
        manual = Path(manual_dir or _default_manual_dir(data_dir)).expanduser()
        if name.split("/")[0].split(":")[0] == "imagenet2012":
            missing = [f for f in IMAGENET_MANUAL_FILES if not (manual / f).is_file()]
            prepared = builder.info.splits.total_num_examples if _is_prepared(builder) else 0
            if missing and not prepared:
                raise DatasetError(
                    f"imagenet2012 needs the manual download: {', '.join(missing)} not found in "
                    f"{manual} (pass --data-dir / manual_dir with the folder holding "
                    f"{' and '.join(IMAGENET_MANUAL_FILES)} from image-net.org)."
                )
        download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
    return builder, download_config


def _default_manual_dir(data_dir) -> Path:
    """Where TFDS looks for manual downloads when no folder is given: ``<data dir>/downloads/manual``."""
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or _tfds().core.constants.DATA_DIR
    return Path(root).expanduser() / "downloads" / "manual"


def _is_prepared(builder) -> bool:
    try:
        return bool(builder.info.splits) and Path(builder.data_dir).is_dir()
    except Exception:
        return False


def _prepare(builder, download_config):
    if hasattr(builder, "download_and_prepare") and not _is_prepared(builder):
        builder.download_and_prepare(download_config=download_config)


def _supervised(builder, source):
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2:
        raise DatasetError(f"{source}: the data set has no (image, label) supervised keys; it cannot train a classifier.")
    image_key, label_key = keys
    label = builder.info.features[label_key]
    if not hasattr(label, "num_classes"):
        raise DatasetError(f"{source}: labels {label_key!r} are not class labels.")
    return image_key, label_key, int(label.num_classes)


def dataset_info(source, *, data_dir=None, manual_dir=None) -> DatasetInfo:
    """Classes, split sizes and channels of ``source`` (preparing a TFDS data set if needed)."""
    builder, download_config = _builder(source, data_dir, manual_dir)
    _prepare(builder, download_config)
    image_key, _, num_classes = _supervised(builder, source)
    shape = builder.info.features[image_key].shape
    return DatasetInfo(
        name=str(source),
        num_classes=num_classes,
        splits={name: int(split.num_examples) for name, split in builder.info.splits.items()},
        channels=int(shape[-1]) if shape and shape[-1] else 3,
    )


def load_dataset(
    source: Union[str, os.PathLike],
    split: str,
    *,
    preprocessing: Union[str, Preprocessing] = "plain",
    image_size: Optional[int] = None,
    training: bool = False,
    batch_size: Optional[int] = None,
    data_dir=None,
    manual_dir=None,
    deterministic: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 10_000,
    drop_remainder: Optional[bool] = None,
):
    """A ``tf.data.Dataset`` of ``(image, label)`` (see the module docstring).

    # Arguments
    source: TFDS name or image folder. split: e.g. ``"train"``, ``"test"``, ``"validation"``.
    preprocessing: a recipe name (``"pokebnn"``, ``"bnext"``, ``"plain"``) or a
        :class:`Preprocessing`; ``image_size`` overrides its size.
    training: random crops and flips (and shuffling) instead of the evaluation transform.
    batch_size: batch the examples (``drop_remainder`` defaults to ``training``).
    deterministic: fixed file and element order and augmentation seeds derived from ``seed``
        and the example's position, so that a run can be repeated exactly. Evaluation data
        (``training=False``) comes in a fixed order either way.
    """
    import tensorflow as tf

    prep = get(preprocessing) if isinstance(preprocessing, str) else preprocessing
    if image_size is not None:
        prep = prep.with_size(image_size)
    builder, download_config = _builder(source, data_dir, manual_dir)
    _prepare(builder, download_config)
    image_key, label_key, _ = _supervised(builder, source)
    available = list(builder.info.splits.keys())
    if split.split("[")[0] not in available:
        raise DatasetError(f"{source} has no split {split!r}; it has {', '.join(available)}.")
    tfds = _tfds()
    read_config = (
        tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)
        if deterministic
        else tfds.ReadConfig(shuffle_seed=seed)
    )
    # ImageFolder shuffles its file list without a seed: in deterministic mode only the seeded
    # element shuffle below reorders the examples.
    folder = isinstance(builder, tfds.folder_dataset.ImageFolder)
    dataset = builder.as_dataset(
        split=split,
        shuffle_files=training and not (folder and deterministic),
        read_config=read_config,
    )
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.enumerate()
    channels = builder.info.features[image_key].shape[-1]

    def transform(index, example):
        image = example[image_key]
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        if training:
            image = prep.train(image, tf.stack([tf.cast(seed, tf.int64), index]))
        else:
            image = prep.eval(image)
        return image, example[label_key]

    options = tf.data.Options()
    # Evaluation data always keeps its order (predictions of two models can be compared example
    # by example); training data only when asked to (order-free parallel maps are faster).
    options.deterministic = bool(deterministic) or not training
    dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE).with_options(options)
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def write_image_folder(root, split: str, images, labels, class_names=None) -> Path:
    """Write uint8 ``images`` (N, H, W) or (N, H, W, C) with integer ``labels`` as PNG files in
    the layout :func:`load_dataset` reads, ``root/split/<class>/<index>.png``; returns the split
    folder. ``class_names[label]`` names the class folders (default: the label as text, zero
    padded so that the folders sort in label order; reading back, TFDS numbers the classes in
    that order, so labels 0..K-1 with none missing keep their values). Existing files are never
    overwritten.

    ```python
    write_image_folder("digits", "train", x_train, y_train)
    train = load_dataset("digits", "train", image_size=32, training=True, batch_size=64)
    ```
    """
    import numpy as np
    import tensorflow as tf

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3); got {images.shape}.")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise ValueError(f"labels must be {len(images)} non-negative integers; got shape {labels.shape}, {labels.dtype}.")
    count = int(labels.max()) + 1 if len(labels) else 0
    if class_names is None:
        width = len(str(max(count - 1, 0)))
        class_names = [str(i).zfill(width) for i in range(count)]
    elif len(class_names) < count:
        raise ValueError(f"{len(class_names)} class names for labels up to {count - 1}.")
    folder = Path(root).expanduser() / split
    width = len(str(max(len(images) - 1, 0)))
    paths = [folder / class_names[label] / f"{i:0{width}d}.png" for i, label in enumerate(labels)]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} of the files do); nothing was written.")
    for path, image in zip(paths, images):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(image).numpy())
    return folder
