"""The recipes' losses and schedules against independent computations and the spec's numbers,
and the distiller inside ``Model.fit``."""

import math

import numpy as np
import pytest
import tensorflow as tf

from larq_poke.train import (
    BNextSchedule,
    Distiller,
    PokeBNNSchedule,
    coupled_l2,
    diversified_kd_loss,
    pokebnn_base_lr,
    soft_target_cross_entropy,
)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _soft_ce(teacher, student):
    """Per sample, in float64."""
    log_p = student - student.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    return -(_softmax(teacher) * log_p).sum(-1)


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(0)
    return [rng.normal(0, 2, (6, 5)) for _ in range(3)]  # teacher 1, teacher 2, student


def test_soft_target_cross_entropy(logits):
    t, _, s = logits
    got = soft_target_cross_entropy(tf.constant(t, tf.float32), tf.constant(s, tf.float32))
    assert float(got) == pytest.approx(_soft_ce(t, s).mean(), rel=1e-5)


def test_diversified_kd_weights_the_teacher_the_student_disagrees_with(logits):
    t1, t2, s = logits
    per = np.stack([_soft_ce(t1, s), _soft_ce(t2, s)], -1)  # (N, 2)
    alpha = _softmax(per)
    expected = (per.mean(0) * alpha.mean(0)).sum() / 2
    got = diversified_kd_loss([tf.constant(t1, tf.float32), tf.constant(t2, tf.float32)], tf.constant(s, tf.float32))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # No gradient flows through the weights: d loss / d student equals the alpha-weighted sum.
    student = tf.Variable(s, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = diversified_kd_loss([tf.constant(t1, tf.float32), tf.constant(t2, tf.float32)], student)
    grad = tape.gradient(loss, student).numpy()
    weights = alpha.mean(0) / 2
    expected_grad = sum(w * (_softmax(s) - _softmax(t)) / len(s) for w, t in zip(weights, (t1, t2)))
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)


def test_coupled_l2_counts_kernels_only():
    kernel = tf.Variable(np.arange(6.0).reshape(2, 3), dtype=tf.float32)
    bias = tf.Variable([10.0, 20.0])
    assert float(coupled_l2([kernel, bias], 5e-5)) == pytest.approx(0.5 * 5e-5 * 55.0)


def test_bnext_schedule_matches_timm_numbers_of_the_official_run():
    schedule = BNextSchedule(steps_per_epoch=10, epochs=512)
    lr = lambda epoch: float(schedule(epoch * 10 + 3))  # noqa: E731  (any step inside the epoch)
    assert lr(0) == pytest.approx(1e-5)
    assert lr(1) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 5)
    assert lr(5) == pytest.approx(1e-3)  # warm-up over; cosine position 0
    assert lr(511) == pytest.approx(4.39e-7, rel=0.01)  # the spec: position 506/512, lr ~ 4.4e-7
    mid = 1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi * 256 / 512))
    assert lr(261) == pytest.approx(mid, rel=1e-5)


def test_bnext_schedule_scales_to_a_short_run():
    schedule = BNextSchedule(steps_per_epoch=4, epochs=64)  # warm-up 5/512 of 64 = 0.625 epoch
    assert float(schedule(0)) == pytest.approx(1e-5)
    assert float(schedule(4)) == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi * 0.375 / 64)), rel=1e-5)


def test_pokebnn_schedule_reaches_zero_at_750_of_800():
    base = pokebnn_base_lr(8192)
    assert base == pytest.approx(6.4e-4)
    schedule = PokeBNNSchedule(base, total_steps=800)
    assert float(schedule(0)) == pytest.approx(base)
    assert float(schedule(375)) == pytest.approx(base / 2)
    assert float(schedule(750)) == 0.0 and float(schedule(799)) == 0.0


def _conv_label_loss(x, kernel, y):
    """Cross-entropy with labels ``y`` of a 1x1 conv with ``kernel`` on ``x`` (N, 1, 1, C), in float64."""
    logits = np.einsum("nijc,ijcd->nd", x.astype(np.float64), kernel.astype(np.float64))
    logits -= logits.max(-1, keepdims=True)
    return -(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))[np.arange(len(y)), y].mean()


def _dense(classes, seed, name):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((8,))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(classes)(inputs), name=name)


def test_distiller_loss_and_frozen_teacher():
    x = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
    y = np.zeros(16, np.int64)
    teacher, student = _dense(4, 1, "teacher"), _dense(4, 2, "student")
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    expected = _soft_ce(teacher.predict(x, verbose=0).astype(np.float64), student.predict(x, verbose=0).astype(np.float64)).mean()
    kernel = student.layers[-1].kernel.numpy()
    expected += 0.5 * 5e-5 * float((kernel.astype(np.float64) ** 2).sum())

    distiller = Distiller(student, teachers=[teacher], l2=5e-5)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)  # loss before the update

    # The student learns the teacher: the loss falls towards the teacher's own entropy (the
    # minimum of a soft-target cross-entropy); the KL part shrinks at least fivefold.
    p = _softmax(teacher.predict(x, verbose=0).astype(np.float64))
    entropy = float(-(p * np.log(p)).sum(-1).mean())
    history = distiller.fit(x, y, batch_size=16, epochs=60, verbose=0)
    assert history.history["loss"][-1] - entropy < 0.2 * (expected - entropy)
    for a, b in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_two_teachers_and_labels_only():
    x = np.random.default_rng(2).normal(size=(32, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    distiller = Distiller(_dense(2, 3, "s"), teachers=[_dense(2, 4, "t1"), _dense(2, 5, "t2")], clip_norm=5.0)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
    assert np.isfinite(distiller.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]).all()

    plain = Distiller(_dense(2, 6, "plain"))
    plain.compile(optimizer=tf.keras.optimizers.Adam(5e-2))
    plain.fit(x, y, batch_size=8, epochs=40, verbose=0)
    assert plain.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] >= 0.9


def test_the_training_step_is_traced_once():
    """The optimizer's slots exist before the first trace (``build_optimizer``): Keras 2 made
    them inside it, and TensorFlow then traced the step a second time within the first call."""
    from larq_poke.train.tasks import fit_task

    x = np.random.default_rng(3).normal(size=(16, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    distiller = Distiller(_dense(2, 7, "once"))
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
    distiller.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert distiller.train_function.experimental_get_tracing_count() == 1

    model = _dense(2, 8, "task")
    fit_task(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=2,
             loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.train_function.experimental_get_tracing_count() == 1
    # a plain Keras fit of the same model, for contrast: the step is traced twice
    plain = _dense(2, 9, "plain")
    plain.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert plain.train_function.experimental_get_tracing_count() == 2


def test_teacher_with_other_classes_is_rejected():
    with pytest.raises(ValueError, match="predicts 3 classes but the student 'student' predicts 4"):
        Distiller(_dense(4, 0, "student"), teachers=[_dense(3, 0, "teacher")])


# One Distiller run: two logical CPUs under MirroredStrategy with REPLICAS=2, a worker of a
# MultiWorkerMirroredStrategy with TF_CONFIG, else one device. Prints the student's weights.
_WORKER = """
import json, os, sys
import larq_poke
import numpy as np
import tensorflow as tf
from larq_poke.train import Distiller

if os.environ.get("REPLICAS") == "2":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
elif os.environ.get("TF_CONFIG"):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = tf.distribute.get_strategy()

def dense(classes, seed):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((8,))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(classes)(inputs))

x = np.random.default_rng(3).normal(size=(64, 8)).astype(np.float32)
y = np.zeros(64, np.int64)
with strategy.scope():
    distiller = Distiller(dense(3, 1), teachers=[dense(3, 2)], l2=1e-3)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.3))
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).with_options(options)
distiller.fit(data, epochs=3, verbose=0)
print(json.dumps([w.tolist() for w in distiller.student.get_weights()]))
"""


def _run_worker(env):
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WORKER], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _single_env():
    import os

    return {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "REPLICAS")}


def test_two_replicas_train_like_one_device():
    """MirroredStrategy over two logical CPUs: each replica's batch-mean loss is scaled by 1/2, so
    the summed gradients equal the single-device gradient (a model without batch norm)."""
    one = _run_worker(_single_env())
    two = _run_worker({**_single_env(), "REPLICAS": "2"})
    for a, b in zip(one, two):
        np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)


def test_two_worker_processes_train_together():
    """MultiWorkerMirroredStrategy, two processes on 127.0.0.1 (TF_CONFIG): both end with the
    same weights, those of one process training on the whole global batch."""
    import json
    import sys

    from conftest import run_two_workers

    outputs = [json.loads(out.strip().splitlines()[-1]) for out in run_two_workers([sys.executable, "-c", _WORKER])]
    reference = _run_worker(_single_env())
    for a, b, ref in zip(outputs[0], outputs[1], reference):
        np.testing.assert_array_equal(np.array(a), np.array(b))
        np.testing.assert_allclose(np.array(a), np.array(ref), atol=1e-5)


def test_pokebnn_switches_quantize_weights_and_calibrate_bounds_on_schedule():
    from larq_poke.layers import poke_conv, poke_init
    from larq_poke.quantizers import PokeBinaryWeight, SignedActivationQuantizer, SignedWeightQuantizer
    from larq_poke.train.switches import PokeBNNSwitches

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = poke_init(inputs, filters=64, groups=32, name="init")
    x = poke_conv(x, 16, 3, name="c1")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    import larq as lq

    x = lq.layers.QuantDense(3, input_quantizer=SignedActivationQuantizer(8), kernel_quantizer=SignedWeightQuantizer(8))(x)
    student = tf.keras.Model(inputs, x)
    images = np.random.default_rng(0).normal(size=(32, 16, 16, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 3, 32)

    binary = student.get_layer("c1.conv").kernel_quantizer
    stem_bounds = student.get_layer("init.conv").input_quantizer.bounds
    seen = []

    class Probe(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            seen.append((step, bool(switches.switch.numpy()), float(np.min(stem_bounds.numpy())),
                         self.model.train_function.experimental_get_tracing_count()))

    switches = PokeBNNSwitches(student, total_steps=16, calibration_images=images[:8],
                               weight_fraction=0.25, calibration_fraction=0.5)
    # stem conv and grouped conv, the binary conv, SE fc1 and fc2, the head
    assert isinstance(binary, PokeBinaryWeight) and len(switches.quantizers) == 6
    distiller = Distiller(student)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    distiller.fit(images, labels, batch_size=2, epochs=1, callbacks=[switches, Probe()], verbose=0)

    by_step = {step: (active, bound, traces) for step, active, bound, traces in seen}
    # seen at the end of step s: the switch for step s + 1, on once 0.25 * 16 steps are done
    assert [by_step[s][0] for s in (1, 2, 3)] == [False] * 3
    assert all(by_step[s][0] for s in range(4, 17))
    assert by_step[3][1] == -1.0 and by_step[7][1] == -1.0  # bounds: the pass-through sentinel
    assert by_step[8][1] > 0 and by_step[16][1] == by_step[8][1]  # calibrated once, at step 8
    assert len({by_step[s][2] for s in range(1, 17)}) == 1  # not traced again: the switch is a variable
    assert binary._switch.value is None  # a finished run is always quantized


def test_pokebnn_weight_switch_changes_the_traced_step():
    """Before the switch the conv uses its latent weights, after it PokeBNN's binary weights
    sign(w) * (max_c|w| + eps) / 2; each step's loss is checked against NumPy."""
    import larq as lq

    from larq_poke.quantizers import EPS, PokeBinaryWeight
    from larq_poke.train.switches import PokeBNNSwitches

    rng = np.random.default_rng(6)
    inputs = tf.keras.Input((1, 1, 6))
    conv = lq.layers.QuantConv2D(2, 1, kernel_quantizer=PokeBinaryWeight(), use_bias=False, name="bconv")
    student = tf.keras.Model(inputs, tf.keras.layers.Flatten()(conv(inputs)))
    kernel = rng.uniform(-0.7, 0.7, (1, 1, 6, 2)).astype(np.float32)
    conv.kernel.assign(kernel)
    x = rng.normal(size=(8, 1, 1, 6)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    binary = np.where(kernel >= 0, 1.0, -1.0) * (np.abs(kernel).max(axis=(0, 1, 2)) + EPS) / 2

    switches = PokeBNNSwitches(student, total_steps=4, weight_fraction=0.5)
    distiller = Distiller(student)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=8, epochs=4, callbacks=[switches], verbose=0)
    expected = [_conv_label_loss(x, w, y) for w in (kernel, kernel, binary, binary)]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    assert expected[0] != pytest.approx(expected[2])
    np.testing.assert_allclose(student.predict(x, verbose=0), np.einsum("nijc,ijcd->nd", x, binary), rtol=1e-5)
    assert [w.name for w in student.weights] == ["bconv/kernel:0"]  # the switch is no weight


def test_bnext_temperature_soft_weights_on_schedule_then_sign():
    """The training forward uses clip(w / T, -1, 1) with T = 0.9^floor(512 s / S), sign(w) from
    T < 1e-7 on; the loss of each step is checked against a NumPy evaluation of the same conv."""
    from larq_poke.layers import BNextBinaryConv2D
    from larq_poke.train.switches import BNextTemperature

    rng = np.random.default_rng(5)
    inputs = tf.keras.Input((1, 1, 6))
    conv = BNextBinaryConv2D(2, 1, name="bconv")
    student = tf.keras.Model(inputs, tf.keras.layers.Flatten()(conv(inputs)))
    kernel = rng.uniform(-0.7, 0.7, (1, 1, 6, 2)).astype(np.float32)
    conv.kernel.assign(kernel)
    x = np.sign(rng.normal(size=(8, 1, 1, 6))).astype(np.float32)
    y = rng.integers(0, 2, 8)

    def expected_loss(t):
        return _conv_label_loss(x, np.sign(kernel) if t < 1e-7 else np.clip(kernel / t, -1, 1), y)

    for total, temperatures in ((512, [1.0, 0.9, 0.81, 0.729]), (4, [1.0, 0.9**128, 0.0, 0.0])):
        schedule = BNextTemperature(student, total_steps=total)
        assert len(schedule.quantizers) == 1
        distiller = Distiller(student)
        distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
        history = distiller.fit(x, y, batch_size=8, epochs=4, callbacks=[schedule], verbose=0)
        expected = [expected_loss(t) for t in temperatures]
        np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
        assert conv.kernel_quantizer.temperature is None  # back to pure sign for saving / converting
    signed = student.predict(x, verbose=0)
    np.testing.assert_allclose(signed, np.einsum("nijc,ijcd->nd", x, np.sign(kernel)), rtol=1e-6)
    assert [w.name for w in student.weights] == ["bconv/kernel:0"]  # the temperature is no weight


def test_bnext_temperature_reaches_sign_at_153_of_512():
    from larq_poke.train.switches import BNextTemperature

    schedule = BNextTemperature(_dense(2, 0, "s"), total_steps=51_200)
    assert schedule.temperature(152 * 100) == pytest.approx(0.9**152) and 0.9**152 >= 1e-7
    assert schedule.temperature(153 * 100) < 1e-7 <= schedule.temperature(153 * 100 - 1)


def test_assistant_teachers_take_turns_by_optimizer_step():
    x = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    main, a0, a1 = _dense(3, 7, "main"), _dense(3, 8, "a0"), _dense(3, 9, "a1")
    distiller = Distiller(_dense(3, 10, "s"), teachers=[main], assistants=[a0, a1], phase_steps=[5])
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    for step, active in ((0, a0), (4, a0), (5, a1), (9, a1)):
        distiller.optimizer.iterations.assign(step)
        logits = distiller._teacher_logits(tf.constant(x))
        np.testing.assert_allclose(logits[0], active(x), rtol=1e-6)
        np.testing.assert_allclose(logits[1], main(x), rtol=1e-6)
    # In fit: the loss of each step is BNext's two-teacher loss with that step's assistant.
    distiller.optimizer.iterations.assign(3)
    y = np.zeros(4, np.int64)
    history = distiller.fit(x, y, batch_size=4, epochs=4, verbose=0)
    student = distiller.student(x).numpy()
    for epoch, active in enumerate((a0, a0, a1, a1)):
        expected = diversified_kd_loss([active(x), main(x)], student)
        assert history.history["loss"][epoch] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="2 assistants need 1 phase_steps"):
        Distiller(_dense(3, 10, "s2"), teachers=[main], assistants=[a0, a1])


def test_bnext_recipe_assigns_main_and_assistants():
    from larq_poke.train.run import TrainConfig, _teacher_roles

    config = TrainConfig(recipe="bnext", model="m", dataset="d", output="o")
    roles = _teacher_roles(config, ["b0", "b2", "b4"], total_steps=1000)
    assert roles == {"teachers": ["b4"], "assistants": ["b0", "b2"], "phase_steps": [500]}
    roles = _teacher_roles(config, ["b0", "b4", "cnx", "cnx"], total_steps=512)  # BNext-L
    assert roles["phase_steps"] == [171, 341]
    assert _teacher_roles(config, ["b0", "b2"], 10) == {"teachers": ["b0", "b2"]}


def test_teacher_sees_its_own_normalisation(tmp_path, monkeypatch):
    import json

    from larq_poke.data import preprocessing
    from larq_poke.train.teachers import PREPROCESSING_FILE, load_teacher

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4, 4, 3))
    teacher = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(inputs)))
    teacher.save(tmp_path / "model.keras")
    own = preprocessing.Preprocessing("own", mean=(0.5, 0.25, 0.0), std=(0.5, 1.0, 2.0))
    (tmp_path / PREPROCESSING_FILE).write_text(json.dumps(own.to_dict()))
    student_prep = preprocessing.get("pokebnn")  # ImageNet mean / std
    adapted = load_teacher(str(tmp_path / "model.keras"), student_preprocessing=student_prep, image_size=4)

    pixels = np.random.default_rng(0).uniform(size=(5, 4, 4, 3)).astype(np.float32)  # [0, 1]
    as_student = (pixels - np.array(student_prep.mean)) / np.array(student_prep.std)
    as_teacher = (pixels - np.array(own.mean)) / np.array(own.std)
    np.testing.assert_allclose(adapted.predict(as_student.astype(np.float32), verbose=0),
                               teacher.predict(as_teacher.astype(np.float32), verbose=0), rtol=1e-4, atol=1e-5)
    # No record beside the file: the teacher is used as it is.
    teacher.save(tmp_path / "bare.keras")
    (tmp_path / "other").mkdir()
    (tmp_path / "bare.keras").rename(tmp_path / "other" / "bare.keras")
    plain = load_teacher(str(tmp_path / "other" / "bare.keras"), student_preprocessing=student_prep, image_size=4)
    assert len(plain.layers) == len(teacher.layers)
    # "~" is the user's home, as in a shell.
    monkeypatch.setenv("HOME", str(tmp_path))
    from_home = load_teacher("~/other/bare.keras", student_preprocessing=student_prep, image_size=4)
    assert len(from_home.layers) == len(teacher.layers)


def test_make_deterministic_gives_identical_bnext_gradients():
    """Identical calls of one training step on BNext-T give bit-identical gradients. Seeds and
    deterministic kernels alone did not: Grappler's rewritten gradient sums varied, 15 to 52 of
    the 384 gradients differed between calls (larq_poke.train.determinism)."""
    from larq_poke.train import make_deterministic
    from larq_poke.zoo import BNextT

    saved = tf.config.optimizer.get_experimental_options()
    try:
        make_deterministic(seed=0)
        model = BNextT(input_shape=(32, 32, 3), num_classes=10)
        x = tf.constant(np.random.default_rng(0).normal(size=(32, 32, 32, 3)).astype(np.float32))
        y = tf.constant(np.arange(32) % 10)

        @tf.function
        def gradients():
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            return tape.gradient(loss, model.trainable_variables)

        first = [g.numpy() for g in gradients()]
        for _ in range(3):
            again = gradients()
            differ = [v.name for v, a, b in zip(model.trainable_variables, first, again) if not np.array_equal(a, b.numpy())]
            assert not differ, f"{len(differ)} of {len(first)} gradients differ between identical calls: {differ[:3]}"
    finally:
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": saved.get("arithmetic_optimization", True)})
