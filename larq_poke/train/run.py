"""One training run of a recipe, as ``larq-poke train`` runs it: data, model, teachers, optimizer,
``Model.fit`` with checkpoints every N steps, exact resume, and the final weights and metrics.

```python
from larq_poke.train.run import TrainConfig, train
metrics = train(TrainConfig(recipe="pokebnn", model="pokebnn-0.5x", dataset="digits/",
                            teachers=["teacher/model.keras"], epochs=4, batch_size=64,
                            image_size=32, output="runs/pokebnn"))
```

``output`` holds ``checkpoints/`` (a ``tf.train.CheckpointManager`` of the student, the
optimizer and the step, written every ``checkpoint_every`` steps and at the end), ``logs/``
(TensorBoard), ``run.json`` (the configuration), ``weights.h5``, ``model.keras`` and
``metrics.json``. ``resume=True`` restores the last checkpoint and continues at the same step with
the same optimizer state, schedule position and data order (the data stream of a deterministic
run is a pure function of the seed and the step), so a run killed at any point and resumed ends
with the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional

__all__ = ["TrainConfig", "TrainError", "train", "RECIPES"]

RECIPES = ("plain", "pokebnn", "bnext", "bineal")
#: ``--precision``: the Keras dtype policy of the student and teachers while training.
PRECISIONS = {"float32": "float32", "bf16": "mixed_bfloat16"}


class TrainError(ValueError):
    """A run cannot start: bad arguments, or an output folder that holds another run."""


@dataclasses.dataclass
class TrainConfig:
    recipe: str
    model: str
    dataset: str
    output: str
    teachers: List[str] = dataclasses.field(default_factory=list)
    data_dir: Optional[str] = None
    image_size: Optional[int] = None
    epochs: int = 1
    steps_per_epoch: Optional[int] = None
    batch_size: int = 64
    lr: Optional[float] = None
    checkpoint_every: int = 100
    resume: bool = False
    seed: int = 0
    deterministic: bool = False
    distribute: str = "auto"
    crop_area: Optional[float] = None
    flip: Optional[bool] = None
    randaugment: Optional[str] = None  # None: the recipe's; "none": off; else a timm spec
    precision: str = "float32"  # or "bf16": Keras' mixed_bfloat16 policy while training
    tensorboard_graph: bool = False  # also write the training step's graph to logs/ (slow for big models)

    def identity(self) -> dict:
        """What must match for ``resume``: the same run, not just the same folder."""
        keys = ("recipe", "model", "dataset", "teachers", "image_size", "epochs", "steps_per_epoch",
                "batch_size", "lr", "seed", "deterministic", "crop_area", "flip",
                "randaugment", "precision")
        return {k: getattr(self, k) for k in keys}

    def preprocessing(self):
        """The recipe's preprocessing with this run's augmentation overrides."""
        from larq_poke.data import preprocessing

        prep = preprocessing.get(self.recipe)
        if self.crop_area is not None:
            if not 0 < self.crop_area <= 1:
                raise TrainError(f"--crop-area must be in (0, 1], got {self.crop_area}.")
            prep = dataclasses.replace(prep, area_range=(float(self.crop_area), 1.0))
        if self.flip is not None:
            prep = dataclasses.replace(prep, flip=bool(self.flip))
        if self.randaugment is not None:
            spec = None if self.randaugment.lower() == "none" else self.randaugment
            prep = dataclasses.replace(prep, randaugment=spec)
        return prep


def _check_numbers(config: TrainConfig) -> None:
    """TrainError naming the option whose value cannot be meant (before anything is written)."""
    from larq_poke.train.schedules import check_learning_rate

    try:
        check_learning_rate(config.lr)
    except ValueError:
        raise TrainError(f"--lr must be a positive number (default: the recipe's), got {config.lr!r}.") from None
    for option, value, optional in (("--epochs", config.epochs, False), ("--batch-size", config.batch_size, False),
                                    ("--steps-per-epoch", config.steps_per_epoch, True),
                                    ("--image-size", config.image_size, True)):
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainError(f"{option} must be a positive integer, got {value!r}.")
    every = config.checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise TrainError(f"--checkpoint-every must be an integer >= 0 (0: only at the end), got {every!r}.")


def _check_output(config: TrainConfig) -> Path:
    out = Path(config.output)
    record = out / "run.json"
    if record.is_file():
        previous = json.loads(record.read_text())
        if not config.resume:
            raise TrainError(
                f"{out} already holds a run ({previous.get('recipe')} {previous.get('model')}); "
                "pass --resume to continue it or choose another --output. Nothing was overwritten."
            )
        diff = {k: (previous.get(k), v) for k, v in config.identity().items() if previous.get(k) != v}
        if diff:
            raise TrainError(f"--resume from {out}: the checkpoint is of another run (differs in {diff}).")
    elif config.resume:
        raise TrainError(f"--resume: {out} holds no run to continue.")
    elif out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty and holds no run; choose another --output. Nothing was overwritten.")
    return out


def _local_devices():
    """The GPUs, else the (logical) CPUs, of this machine."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _task():
    """(type, index) of this process in ``TF_CONFIG``, or (None, 0)."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return task.get("type"), int(task.get("index", 0))


def _is_chief(config: TrainConfig) -> bool:
    """The chief writes the run's files: the "chief" task, else worker 0 (TF's convention)."""
    if config.distribute != "multi-worker":
        return True
    kind, index = _task()
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def _strategy(name: str):
    """``auto``: MirroredStrategy over this machine's devices when it has several, else none;
    ``mirrored``: always; ``multi-worker``: from ``TF_CONFIG``; ``tpu``: TPUStrategy."""
    import tensorflow as tf

    if name not in ("auto", "none", "mirrored", "multi-worker", "tpu"):
        raise TrainError(f"unknown --distribute {name!r}; use auto, none, mirrored, multi-worker or tpu.")
    if name == "none":
        return tf.distribute.get_strategy()
    # Collective ops must be configured before TensorFlow's runtime starts: no op before this.
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise TrainError("--distribute multi-worker needs TF_CONFIG (the cluster and this worker's task).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    devices = _local_devices()
    if name == "mirrored" or len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def _optimizer(config: TrainConfig, student, total_steps: int, steps_per_epoch: int):
    """The recipe's optimizer and the Distiller options it goes with."""
    import tensorflow as tf

    from larq_poke.train.schedules import BNextSchedule, PokeBNNSchedule, pokebnn_base_lr

    if config.recipe == "pokebnn":
        base = pokebnn_base_lr(config.batch_size) if config.lr is None else config.lr
        return tf.keras.optimizers.Adam(PokeBNNSchedule(base, total_steps), beta_1=0.9, beta_2=0.99, epsilon=1e-8), dict(l2=5e-5)
    if config.recipe == "bnext":
        schedule = BNextSchedule(steps_per_epoch, config.epochs, peak_lr=1e-3 if config.lr is None else config.lr)
        optimizer = tf.keras.optimizers.AdamW(schedule, weight_decay=1e-3)
        # BNext's two groups: 4-D weights (convs) decay 1e-8 (~none), the rest 1e-3.
        optimizer.exclude_from_weight_decay(var_list=[v for v in student.trainable_variables if len(v.shape) == 4])
        return optimizer, dict(clip_norm=5.0)
    if config.recipe == "bineal":
        from larq_poke.train.tasks.fit import bineal_optimizer

        return bineal_optimizer(student, total_steps, config.lr), {}
    schedule = tf.keras.optimizers.schedules.CosineDecay(1e-3 if config.lr is None else config.lr, total_steps)
    return tf.keras.optimizers.Adam(schedule), {}


def _teacher_roles(config: TrainConfig, teachers: list, total_steps: int) -> dict:
    """BNext with three or more teachers: the last is the main teacher, the others assistants
    that take turns in equal consecutive phases (the official BNext-M: B0 then B2 beside B4);
    otherwise all teachers are used at every step."""
    if config.recipe != "bnext" or len(teachers) < 3:
        return {"teachers": teachers}
    assistants = teachers[:-1]
    phases = [int(round(k * total_steps / len(assistants))) for k in range(1, len(assistants))]
    return {"teachers": teachers[-1:], "assistants": assistants, "phase_steps": phases}


def _epoch_batches(config: TrainConfig, prep, image_size: int, epoch: int):
    from larq_poke.data import load_dataset

    return load_dataset(config.dataset, "train", preprocessing=prep, image_size=image_size, training=True,
                        batch_size=config.batch_size, data_dir=config.data_dir,
                        deterministic=config.deterministic, seed=config.seed * 100_003 + epoch)


def _stream(config: TrainConfig, prep, image_size: int, per_epoch: int, from_step: int):
    """Training batches from step ``from_step`` on, as a pure function of (seed, step): epoch e is
    the split shuffled and augmented with seed (seed, e), cut to ``per_epoch`` batches."""
    import tensorflow as tf

    start_epoch, skip = divmod(from_step, per_epoch)
    streams = [_epoch_batches(config, prep, image_size, e).take(per_epoch) for e in range(start_epoch, config.epochs)]
    stream = streams[0].skip(skip)
    for more in streams[1:]:
        stream = stream.concatenate(more)
    options = tf.data.Options()  # workers of a multi-worker run each take every n-th batch element
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return stream.with_options(options)


def train(config: TrainConfig) -> dict:
    """Run (or resume) ``config``; returns the final metrics (also in ``metrics.json``)."""
    import tensorflow as tf

    from larq_poke.data import dataset_info, load_dataset
    from larq_poke.train.determinism import make_deterministic
    from larq_poke.train.distill import Distiller, check_teachers
    from larq_poke.train.evaluate import evaluate
    from larq_poke.train.teachers import PREPROCESSING_FILE, load_teacher
    from larq_poke.zoo.loading import save_keras_weights
    from larq_poke.zoo.resolve import load_model

    if config.recipe not in RECIPES:
        raise TrainError(f"unknown recipe {config.recipe!r}; use one of {', '.join(RECIPES)}.")
    if config.precision not in PRECISIONS:
        raise TrainError(f"unknown --precision {config.precision!r}; use {' or '.join(PRECISIONS)}.")
    _check_numbers(config)
    chief = _is_chief(config)
    out = _check_output(config) if chief else Path(config.output)
    prep = config.preprocessing()
    strategy = _strategy(config.distribute)  # first: multi-worker collectives need a fresh runtime
    info = dataset_info(config.dataset, data_dir=config.data_dir)
    eval_split = next((s for s in ("test", "validation") if s in info.splits), None)
    if prep.randaugment:  # timm installed and the spec readable, before anything is written
        from larq_poke.data.randaugment import RandAugment

        try:
            RandAugment(prep.randaugment, config.image_size or 224, prep.mean or (0.0, 0.0, 0.0))
        except (ImportError, ValueError) as err:
            raise TrainError(str(err)) from None
    if config.deterministic:
        make_deterministic(config.seed)

    with strategy.scope(), _dtype_policy(PRECISIONS[config.precision]):
        student = load_model(config.model, input_size=config.image_size or 224, num_classes=info.num_classes)
        image_size = config.image_size or int(student.inputs[0].shape[1])
        prep = prep.with_size(image_size)
        teachers = [load_teacher(t, student_preprocessing=prep, image_size=image_size, num_classes=info.num_classes)
                    for t in config.teachers]
        check_teachers(student, teachers)
        per_epoch = int(_epoch_batches(config, prep, image_size, 0).cardinality().numpy())
        if config.steps_per_epoch:
            per_epoch = min(per_epoch, config.steps_per_epoch) if per_epoch > 0 else config.steps_per_epoch
        if per_epoch < 1:
            raise TrainError(f"{config.dataset}: the train split has fewer than one batch of {config.batch_size}.")
        total_steps = per_epoch * config.epochs
        optimizer, options = _optimizer(config, student, total_steps, per_epoch)
        distiller = Distiller(student, **_teacher_roles(config, teachers, total_steps), **options)
        distiller.compile(optimizer=optimizer)
        distiller.optimizer.build(student.trainable_variables)

    # Every worker of a multi-worker run saves (a collective operation); only the chief's files
    # count: the others write to a temporary folder that is removed at the end, and all resume
    # from the chief's checkpoints (the output folder must be on a file system they share).
    checkpoints = out / "checkpoints" if chief else Path(tempfile.mkdtemp(prefix=f"larq-poke-worker{_task()[1]}-"))
    checkpoint = tf.train.Checkpoint(student=student, optimizer=distiller.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoints), max_to_keep=2)
    start_step = 0
    latest = tf.train.latest_checkpoint(str(out / "checkpoints")) if config.resume else None
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        start_step = int(distiller.optimizer.iterations.numpy())
    if chief:
        (out / "run.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(config.identity(), indent=2))

    stopper = _checkpoint_callback(manager, config.checkpoint_every)
    # The training step's graph stays out of TensorBoard unless asked for: serializing a BNN's step
    # takes seconds with protobuf's pure-Python build (the one this stack gets on Python 3.11).
    logs = str(out / "logs" if chief else checkpoints / "logs")
    callbacks = [stopper, tf.keras.callbacks.TensorBoard(logs, write_graph=config.tensorboard_graph)]
    if config.recipe == "pokebnn":
        from larq_poke.train.switches import PokeBNNSwitches

        switches = PokeBNNSwitches(student, total_steps)
        if switches.quantizers:  # a PokeBNN student (other students have no switches)
            switches.calibration_images = next(iter(_epoch_batches(config, prep, image_size, 0)))[0].numpy()
            callbacks.insert(0, switches)
    if config.recipe == "bineal":  # 8-bit stem and head: bounds calibrated once, weights 8-bit throughout
        from larq_poke.train.switches import PokeBNNSwitches

        switches = PokeBNNSwitches(student, total_steps, weight_fraction=0.0)
        if switches.quantizers:
            switches.calibration_images = next(iter(_epoch_batches(config, prep, image_size, 0)))[0].numpy()
            callbacks.insert(0, switches)
    if config.recipe == "bnext":
        from larq_poke.train.switches import BNextTemperature

        temperature = BNextTemperature(student, total_steps)
        if temperature.quantizers:  # a BNext student
            callbacks.insert(0, temperature)
    step = start_step
    while step < total_steps:
        before = step
        # One fit per stretch up to the next epoch boundary: Keras counts epochs, the stream steps.
        epoch = step // per_epoch
        stretch = per_epoch - step % per_epoch
        last = config.epochs if step % per_epoch == 0 else epoch + 1
        distiller.fit(_stream(config, prep, image_size, per_epoch, step), initial_epoch=epoch, epochs=last,
                      steps_per_epoch=stretch if last == epoch + 1 else per_epoch, callbacks=callbacks,
                      verbose="auto")
        step = int(distiller.optimizer.iterations.numpy())
        if stopper.nan_at is not None:
            raise TrainError(
                f"the loss became NaN at step {stopper.nan_at}; training stopped. The last good checkpoint "
                f"is {manager.latest_checkpoint} (lower --lr and --resume)."
            )
        if step == before:  # a callback stopped training without a step
            break
    manager.save(checkpoint_number=int(distiller.optimizer.iterations.numpy()))
    if not chief:
        shutil.rmtree(checkpoints, ignore_errors=True)
        return {"steps": int(distiller.optimizer.iterations.numpy())}
    if config.precision != "float32":  # save, convert and score the float32 model that deploys
        trained = student
        student = load_model(config.model, input_size=image_size, num_classes=info.num_classes)
        student.set_weights(trained.get_weights())
    save_keras_weights(student, out / "weights.h5")  # with the layer settings, checked on load
    student.save(str(out / "model.keras"))
    (out / PREPROCESSING_FILE).write_text(json.dumps(prep.to_dict(), indent=2))

    metrics = {"steps": int(distiller.optimizer.iterations.numpy()), "preprocessing": prep.to_dict()}
    test = None
    if eval_split:
        test = load_dataset(config.dataset, eval_split, preprocessing=prep, image_size=image_size,
                            batch_size=config.batch_size, data_dir=config.data_dir)
    samples = next(iter(test))[0].numpy()[:16] if test is not None else None
    tflite = _convert(student, prep, out, metrics, samples)
    if test is not None:
        metrics["keras"] = evaluate(student, test)
        if tflite is not None:
            metrics["tflite"] = evaluate(str(tflite), test)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _convert(student, prep, out: Path, metrics: dict, samples=None) -> Optional[Path]:
    """``model.tflite`` (the preprocessing in its metadata) and ``report.json`` with the parity
    on ``samples`` (evaluation images; random inputs without them); float models, which LCE has
    nothing to do for, get a note instead."""
    from larq_poke.converters import convert
    from larq_poke.converters.binary_layers import find_binary_layers
    from larq_poke.converters.metadata import PREPROCESSING_KEY, add_metadata

    if not find_binary_layers(student):
        metrics["tflite_note"] = "a float model: no LCE conversion (use tf.lite.TFLiteConverter)"
        return None
    result = convert(student, sample_inputs=samples)
    flatbuffer = add_metadata(result.flatbuffer, PREPROCESSING_KEY, json.dumps(prep.to_dict()).encode())
    path = out / "model.tflite"
    path.write_bytes(flatbuffer)
    (out / "report.json").write_text(result.report.to_json())
    return path


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` while models are built, restored after."""
    import tensorflow as tf

    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def _checkpoint_callback(manager, every: int):
    """Saves the checkpoint every ``every`` steps (by the optimizer's step count), never a NaN
    state: a non-finite loss stops training and is recorded as ``nan_at``."""
    import tensorflow as tf

    class CheckpointEvery(tf.keras.callbacks.Callback):
        nan_at = None

        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.nan_at = step
                self.model.stop_training = True
            elif every and step % every == 0:
                manager.save(checkpoint_number=step)

    return CheckpointEvery()
