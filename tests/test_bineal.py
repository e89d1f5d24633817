"""BiNeal: the training-form terms against NumPy, the fold against the training form (with
trained-like parameters: negative and zero gains, every α granularity, both skip kernels), the
snapped thresholds against brute force, the LCE deployment (census, bit-packed outputs, parity)
and the bad inputs."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_poke.converters import convert, fold_bineal
from larq_poke.converters.rewrites.bineal import UntrainedModelError, _snapped_shift, sign_threshold
from larq_poke.cost import profile, stored_sizes
from larq_poke.layers.bineal import BiNealSign, BiNealWeight, bineal_block_names
from larq_poke.zoo import BiNeal, build

SIZE = 32


def trained_like(model, seed=0, zero_gamma=True, statistics_from=None):
    """Non-trivial parameters, as training leaves them: BN statistics away from 0 / 1, gains of
    both signs (so channels flip), random activation terms; a few BN scales exactly 0.

    ``statistics_from`` (images): each BN's moving statistics are then its input's statistics
    on those images, shifted by up to 0.3 standard deviations and scaled by 0.7–1.5 (as
    training leaves them, near the data's), instead of random values unrelated to the data,
    which leave most channels of the deep blocks constant."""
    rng = np.random.RandomState(seed)
    for w in model.weights:
        name, shape = w.name, tuple(w.shape)
        if "moving_mean" in name:
            w.assign(rng.randn(*shape) * 2)
        elif "moving_variance" in name:
            w.assign(rng.uniform(0.5, 20, shape))
        elif "gamma" in name:
            value = rng.randn(*shape)
            if zero_gamma and shape[0] > 4:
                value[:2] = 0.0
            w.assign(value)
        elif "beta" in name:
            w.assign(rng.randn(*shape))
        elif "/alpha" in name or "/lambda" in name:
            w.assign(rng.randn(*shape))
        elif name.endswith("/k:0"):
            w.assign(rng.choice([-0.7, 1.3]))
        elif "slope" in name:
            w.assign(rng.uniform(0.01, 2, shape))
        elif any(f"/{term}:" in name for term in ("b0", "b1", "tau")):
            w.assign(rng.randn(*shape) * 0.5)
        elif "kernel" in name:
            w.assign(rng.randn(*shape) * 0.1)
    if statistics_from is not None:
        norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
        for layer in norms:
            layer.momentum = 0.0  # one training-mode pass: moving statistics = the batch's, in order
        model(statistics_from, training=True)
        for layer in norms:
            layer.momentum = 0.9
            std = np.sqrt(layer.moving_variance.numpy())
            layer.moving_mean.assign(layer.moving_mean.numpy() + rng.uniform(-0.3, 0.3, std.shape) * std)
            layer.moving_variance.assign(layer.moving_variance.numpy() * rng.uniform(0.7, 1.5, std.shape))
    return model


def _images(n=6, seed=1):
    return np.random.RandomState(seed).randn(n, SIZE, SIZE, 3).astype(np.float32)


# --- the terms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", ["channel", "pair", "element"])
def test_weight_terms_match_numpy(alpha):
    rng = np.random.RandomState(0)
    q = BiNealWeight(alpha)
    w = rng.randn(3, 3, 4, 5).astype(np.float32)
    w[0, 0, 0, 0] = 0.0  # sign(0) = +1
    q.build(w.shape)
    a = rng.randn(*q.alpha.shape).astype(np.float32)
    lam = rng.randn(5).astype(np.float32)
    q.alpha.assign(a), q.scale.assign(lam), q.k.assign(-0.5)
    expected = np.where(a * w >= 0, 1.0, -1.0) * (-0.5 * lam)
    np.testing.assert_allclose(q(tf.constant(w)).numpy(), expected, rtol=1e-6)
    # α gets the straight-through gradient d sign(u)/du = 1 for |u| <= 1.
    wt = tf.constant(w)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(q(wt))
    grad = tape.gradient(loss, q.alpha).numpy()
    u = np.broadcast_to(a, w.shape) * w
    per_element = (np.abs(u) <= 1) * w * (-0.5 * lam)
    axes = {"channel": (0, 1, 2), "pair": (0, 1), "element": ()}[alpha]
    np.testing.assert_allclose(grad, per_element.sum(axis=axes), rtol=1e-5, atol=1e-6)


def test_weight_gradients_match_numpy():
    """w, λ and k against NumPy: w the straight-through gradient k·λ·α where |α w| ≤ 1 (0
    outside), λ and k the exact ones."""
    rng = np.random.RandomState(1)
    q = BiNealWeight("pair")
    w = (rng.randn(3, 3, 4, 5) * 0.8).astype(np.float32)
    q.build(w.shape)
    a, lam, k = rng.uniform(-1.5, 1.5, (4, 5)), rng.randn(5), -0.7
    q.alpha.assign(a), q.scale.assign(lam), q.k.assign(k)
    upstream = rng.randn(*w.shape).astype(np.float32)
    wt = tf.constant(w)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(wt)
        loss = tf.reduce_sum(q(wt) * upstream)
    u = a * w
    assert 0.05 < np.mean(np.abs(u) > 1) < 0.5  # both sides of the window are exercised
    signs = np.where(u >= 0, 1.0, -1.0)
    np.testing.assert_allclose(tape.gradient(loss, wt), upstream * k * lam * a * (np.abs(u) <= 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, q.scale), (upstream * k * signs).sum(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss, q.k), (upstream * lam * signs).sum(), rtol=1e-5)


def test_no_weight_leaves_the_straight_through_window_in_training():
    """docs/bineal.md: with the latent weights and α clipped to [−1, 1], a block trained at a high
    learning rate keeps every |α w| ≤ 1 (without the clips α drifts above 1 and strands
    weights); α does move, and is held at the clip."""
    from larq_poke.layers.bineal import bineal_block
    from larq_poke.train.distill import build_optimizer
    from larq_poke.train.tasks.fit import bineal_optimizer

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 32))
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(
        bineal_block(BiNealSign(name="in")(inputs), 32, name="b")))
    rng = np.random.RandomState(0)
    x, target = rng.randn(64, 8, 8, 32).astype(np.float32), rng.randn(64, 32).astype(np.float32)
    model.compile(bineal_optimizer(model, 300, 1e-2), "mse")
    build_optimizer(model)  # one trace of the step
    model.fit(x, target, batch_size=16, epochs=75, verbose=0)
    alphas = []
    for conv in ("conv1", "conv2", "skip"):
        layer = model.get_layer(f"b.{conv}")
        alpha, w = layer.kernel_quantizer.alpha.numpy(), layer.kernel.numpy()
        assert np.abs(w).max() <= 1 and np.abs(alpha * w).max() <= 1, conv
        alphas.append(alpha)
    alphas = np.concatenate(alphas)
    assert np.abs(alphas).max() == 1.0 and alphas.min() < 1.0


def test_sign_and_branch_quantizer_gradients_match_numpy():
    """BiNealSign: straight-through where |b1 + PReLU_β(x + b0) − τ| ≤ 1, times the PReLU's slope
    (1 or β). BranchQuantizer: x passes inside [−b, b]; the bound gets ±1 outside and the
    rounding residual (round(x/s) − x/s)/L inside (LSQ's step gradient, s = b/L)."""
    from larq_poke.layers.bineal import BranchQuantizer

    rng = np.random.RandomState(2)
    act = BiNealSign()
    act.build((None, 6))
    b0, slope, b1, tau = rng.randn(6) * 0.5, rng.uniform(0.1, 2, 6), rng.randn(6) * 0.5, rng.randn(6) * 0.5
    for var, value in ((act.b0, b0), (act.slope, slope), (act.b1, b1), (act.tau, tau)):
        var.assign(value)
    x = tf.constant(rng.randn(200, 6).astype(np.float32) * 2)
    upstream = rng.randn(200, 6).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(act(x) * upstream)
    z = x.numpy() + b0
    argument = b1 + np.where(z >= 0, z, slope * z) - tau
    assert 0.2 < np.mean(np.abs(argument) <= 1) < 0.8
    expected = upstream * (np.abs(argument) <= 1) * np.where(z > 0, 1.0, slope)
    np.testing.assert_allclose(tape.gradient(loss, x), expected, rtol=1e-5, atol=1e-6)

    q = BranchQuantizer(4)
    q.build((None, 6))
    q.bound.assign(2.0)
    values = tf.constant(rng.randn(300, 6).astype(np.float32) * 1.5)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(values)
        loss = tf.reduce_sum(q(values))
    v, step = values.numpy(), 2.0 / 7
    inside = np.abs(v) <= 2.0
    assert 0.5 < np.mean(inside) < 0.95
    np.testing.assert_array_equal(tape.gradient(loss, values).numpy(), inside.astype(np.float32))
    residual = np.floor(v / step + 0.5) - v / step
    expected_bound = np.where(inside, residual / 7, np.sign(v)).sum()
    np.testing.assert_allclose(tape.gradient(loss, q.bound).numpy(), expected_bound, rtol=1e-4, atol=1e-3)


def test_sign_threshold_is_the_activation():
    rng = np.random.RandomState(3)
    act = BiNealSign()
    act.build((None, 7))
    for var, value in ((act.b0, rng.randn(7)), (act.slope, rng.uniform(0.01, 3, 7)),
                       (act.b1, rng.randn(7)), (act.tau, rng.randn(7))):
        var.assign(value)
    x = np.linspace(-6, 6, 4001, dtype=np.float32)[:, None] * np.ones((1, 7), np.float32)
    b0, s, b1, tau = (v.numpy() for v in (act.b0, act.slope, act.b1, act.tau))
    z = x + b0
    direct = np.where(b1 + np.where(z >= 0, z, s * z) - tau >= 0, 1.0, -1.0)  # the definition
    np.testing.assert_array_equal(act(x).numpy(), direct)
    t = sign_threshold(act)
    away = np.abs(x - t) > 1e-5  # the float boundary itself is rounding
    np.testing.assert_array_equal(np.where(x >= t, 1.0, -1.0)[away], direct[away])


def test_slope_constraint_keeps_the_map_increasing():
    act = BiNealSign()
    act.build((None, 3))
    act.slope.assign([-1.0, 0.0, 0.5])
    act.slope.assign(act.slope.constraint(act.slope))
    assert np.all(act.slope.numpy() > 0)
    act.slope.assign([0.5, -0.1, 0.5])
    with pytest.raises(ValueError, match="monotonic"):
        sign_threshold(act)


@pytest.mark.parametrize("fan_in", [9, 18, 27, 64])
def test_snapped_threshold_matches_brute_force(fan_in):
    rng = np.random.RandomState(fan_in)
    n = 200
    a = rng.randn(n) * rng.choice([1e-3, 1, 50], n)
    a[:10] = 0.0
    c, t = rng.randn(n) * 5, rng.randn(n) * 5
    # exact ties on the grid (integers: no rounding on either side)
    a[10:20], c[10:20] = rng.choice([-3.0, -1.0, 2.0, 5.0], 10), rng.randint(-9, 9, 10)
    t[10:20] = c[10:20] + a[10:20] * (fan_in - 2 * rng.randint(0, fan_in + 1, 10))
    flip, shift = _snapped_shift(a, c, t, fan_in)
    values = np.arange(-fan_in, fan_in + 1, 2, dtype=np.float64)[:, None]  # what the conv can output
    expected = a * values + c >= t
    deployed = flip * values + shift
    assert np.all(deployed != 0)
    np.testing.assert_array_equal(deployed > 0, expected)


def test_weight_gains_get_almost_no_gradient_under_the_batch_norm():
    """docs/bineal.md: a BN in training divides out the positive per-channel scales λ and k of the
    binary conv before it, so they get a gradient orders of magnitude below the latent kernel's
    (only the BN's ε keeps it from 0)."""
    from larq_poke.layers.bineal import bineal_block

    inputs = tf.keras.Input((8, 8, 32))
    y = bineal_block(BiNealSign(name="in_sign")(inputs), 32, name="block")
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(y))
    rng = np.random.RandomState(0)
    data, target = rng.randn(8, 8, 8, 32).astype(np.float32), rng.randn(8, 32).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(data, training=True) - target) ** 2)
    grads = dict(zip([w.name for w in model.trainable_weights], tape.gradient(loss, model.trainable_weights)))
    for conv in ("conv1", "conv2", "skip"):
        largest = {term: max(float(np.max(np.abs(g))) for name, g in grads.items()
                             if name.startswith(f"block.{conv}/") and name.endswith(f"{term}:0"))
                   for term in ("kernel", "lambda", "k")}
        assert largest["kernel"] > 0
        assert largest["lambda"] < 1e-3 * largest["kernel"] and largest["k"] < 1e-3 * largest["kernel"], (conv, largest)


# --- the fold -----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, skip_kernel", [("channel", 1), ("pair", 3), ("element", 1)])
def test_fold_matches_the_training_form(alpha, skip_kernel):
    model = trained_like(BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10, alpha=alpha,
                                skip_kernel=skip_kernel), statistics_from=_images(16, seed=2))
    folded = fold_bineal(model)
    x = _images()
    logits = model(x, training=False).numpy()
    np.testing.assert_allclose(folded(x).numpy(), logits, atol=1e-4)
    # Not a trivial agreement: the last block's channels vary from image to image, and so do
    # the predicted classes.
    last = model.get_layer("stage4.block2.act2").output
    deep = tf.keras.Model(model.input, last)(x).numpy().reshape(len(x), -1)
    assert np.mean(deep.min(axis=0) != deep.max(axis=0)) > 0.2  # 6-12 % with random statistics, 30-36 % here
    assert len(set(np.argmax(logits, axis=1))) > 1
    # Block by block: the folded block's sum has the sign of the training block's output.
    names = bineal_block_names(model)
    train_bits = tf.keras.Model(model.input, [model.get_layer(f"{n}.act2").output for n in names])(x)
    sums = tf.keras.Model(folded.input, [folded.get_layer(f"{n}.add").output for n in names])(x)
    for name, bits, total in zip(names, train_bits, sums):
        np.testing.assert_array_equal(np.where(total.numpy() >= 0, 1.0, -1.0), bits.numpy(), err_msg=name)
    # Each deployed first conv holds sign(α ⊙ w), negated in the channels whose gain
    # BN scale · k · λ is negative, and some are.
    flipped = 0
    for name in names:
        conv, bn = model.get_layer(f"{name}.conv1"), model.get_layer(f"{name}.bn1")
        q = conv.kernel_quantizer
        latent = conv.kernel.latent_variable.numpy() if hasattr(conv.kernel, "latent_variable") else conv.kernel.numpy()
        signs = np.where(q.alpha.numpy() * latent >= 0, 1.0, -1.0)
        gain = (bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)) * q.k.numpy() * q.scale.numpy()
        np.testing.assert_array_equal(folded.get_layer(f"{name}.conv1").get_weights()[0],
                                      signs * np.where(gain < 0, -1.0, 1.0), err_msg=name)
        flipped += int(np.sum(gain < 0))
    assert flipped > 0
    assert not any(isinstance(layer, BiNealSign) for layer in folded.layers)


def test_fold_refuses_untrained_and_partly_trained_models():
    model = BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10)
    with pytest.raises(UntrainedModelError, match="was ever trained"):
        fold_bineal(model)
    x = _images(2)
    np.testing.assert_allclose(fold_bineal(model, allow_untrained=True)(x), model(x, training=False), atol=1e-4)
    bn = model.get_layer("stage2.block1.bn1")
    bn.moving_variance.assign(np.full(bn.moving_variance.shape, 2.0, np.float32))
    with pytest.raises(UntrainedModelError, match="partly trained"):
        fold_bineal(model, allow_untrained=True)


def test_fold_refuses_non_monotonic_terms_and_nan():
    model = trained_like(BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10))
    act = model.get_layer("stage3.block2.act1")
    act.slope.assign(-np.ones(act.slope.shape, np.float32))
    with pytest.raises(ValueError, match="stage3.block2.act1.*monotonic"):
        fold_bineal(model)
    act.slope.assign(np.ones(act.slope.shape, np.float32))
    bn = model.get_layer("stage1.block1.bn2")
    variance = bn.moving_variance.numpy()
    bn.moving_variance.assign(np.where(np.arange(32) == 5, -1.0, variance).astype(np.float32))
    with pytest.raises(ValueError, match=r"stage1.block1.bn2: moving variance \+ epsilon is not positive in channels \[5\]"):
        fold_bineal(model)
    # a variance of 0 is legitimate (a channel that never varied): epsilon keeps its scale finite
    bn.moving_variance.assign(np.where(np.arange(32) == 5, 0.0, variance).astype(np.float32))
    x = _images(2, seed=5)
    np.testing.assert_allclose(fold_bineal(model)(x), model(x, training=False), atol=1e-4)
    bn.moving_variance.assign(variance)
    bn.beta.assign(np.full(32, np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        fold_bineal(model)


def _hand_built_block(conv1_kwargs=(), skip_reads_act1=False, extra_reader=None, center=True):
    """A model with one block named as bineal_block names its layers, built by hand: ``conv1``
    with other settings, the skip conv reading the wrong tensor, a layer outside the block
    reading ``extra_reader``'s output, or BNs without a shift (``center=False``)."""
    def conv(x, kernel, name, **kwargs):
        settings = {"padding": "same", "pad_values": 1.0, "use_bias": False, "input_quantizer": "ste_sign",
                    "kernel_quantizer": BiNealWeight("channel"), **kwargs}
        return lq.layers.QuantConv2D(32, kernel, name=name, **settings)(x)

    def bn(name):
        return tf.keras.layers.BatchNormalization(center=center, name=name)

    inputs = tf.keras.Input((8, 8, 32))
    x = BiNealSign(name="in_sign")(inputs)
    h1 = BiNealSign(name="b.act1")(bn("b.bn1")(conv(x, 3, "b.conv1", **dict(conv1_kwargs))))
    h = bn("b.bn2")(conv(h1, 3, "b.conv2"))
    s = bn("b.skip_bn")(conv(h1 if skip_reads_act1 else x, 1, "b.skip"))
    y = BiNealSign(name="b.act2")(bn("b.bn3")(tf.keras.layers.Add(name="b.add")([h, s])))
    outputs = [tf.keras.layers.GlobalAveragePooling2D(name="pool")(y)]
    model = tf.keras.Model(inputs, outputs)
    if extra_reader is not None:
        inner = model.get_layer(extra_reader).output
        model = tf.keras.Model(inputs, outputs + [tf.keras.layers.GlobalAveragePooling2D(name="extra")(inner)])
    return model


@pytest.mark.parametrize("options, message", [
    ({"conv1_kwargs": {"use_bias": True}}, "b.conv1 has a bias"),
    ({"conv1_kwargs": {"pad_values": 0.0}}, "b.conv1 has pad_values=0.0"),
    ({"conv1_kwargs": {"input_quantizer": None}}, "b.conv1 has input quantizer NoneType"),
    ({"conv1_kwargs": {"kernel_quantizer": "ste_sign"}}, "b.conv1 has kernel quantizer SteSign"),
    ({"skip_reads_act1": True}, "b.skip must read the block input, as b.conv1 does"),
    ({"extra_reader": "b.bn1"}, "b.bn1's output is read by \\['b.act1', 'extra'\\]"),
])
def test_fold_refuses_blocks_it_cannot_fold_exactly(options, message):
    """A block the fold would change silently (before this check, a conv's bias or zero padding
    was dropped, and a reader outside the block got the block's input)."""
    model = trained_like(_hand_built_block(**options), statistics_from=np.random.RandomState(3).randn(4, 8, 8, 32))
    with pytest.raises(ValueError, match=message):
        fold_bineal(model)


def test_fold_of_dilated_convs_and_batch_norms_without_a_shift():
    """Against the training form: a block whose first conv is dilated (the deployed conv kept
    no dilation before), and batch norms built with center=False before every sign (a
    standalone sign's threshold went into the moving mean, flipping most of its bits)."""
    images = np.random.RandomState(4).randn(6, 8, 8, 32).astype(np.float32)
    for options in ({"conv1_kwargs": {"dilation_rate": 2}}, {"center": False}):
        model = trained_like(_hand_built_block(**options), statistics_from=images)
        folded = fold_bineal(model)
        np.testing.assert_allclose(folded(images).numpy(), model(images, training=False).numpy(), atol=1e-5)
        bits = tf.keras.Model(model.input, model.get_layer("b.act1").output)(images).numpy()
        assert 0.05 < np.mean(bits > 0) < 0.95  # the first conv's signs are not constant
    # a standalone sign after a BN without a shift (R2D2's and the task heads' pattern)
    inputs = tf.keras.Input((8, 8, 32))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer=BiNealWeight("channel"), name="c")(BiNealSign(name="in")(inputs))
    x = BiNealSign(name="c.act")(tf.keras.layers.BatchNormalization(center=False, name="c.bn")(x))
    model = trained_like(tf.keras.Model(inputs, x), statistics_from=images)
    act = model.get_layer("c.act")
    act.tau.assign(np.linspace(-1, 1, 32).astype(np.float32))
    expected = model(images, training=False).numpy()
    assert 0.05 < np.mean(expected > 0) < 0.95
    np.testing.assert_array_equal(fold_bineal(model)(images).numpy(), expected)


# --- deployment ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted():
    model = trained_like(BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10), seed=5, zero_gamma=False)
    return model, convert(model, strict=True, sample_inputs=_images(4, seed=7))


@pytest.fixture(scope="module")
def converted_1x():
    """BiNeal-1.0x, the width the deployment claim names (on 32x32 inputs: the census does not
    depend on the input size)."""
    model = trained_like(BiNeal(1.0, input_shape=(SIZE, SIZE, 3), num_classes=10), seed=6, zero_gamma=False)
    return model, convert(model, strict=True, sample_inputs=_images(4, seed=7))


@pytest.mark.parametrize("which", ["converted", "converted_1x"])
def test_every_body_conv_is_binary_and_the_first_of_each_main_path_bitpacked(which, request):
    model, result = request.getfixturevalue(which)
    report = result.report
    assert report.rewrites[0] == "bineal"
    assert len(report.binary_layers) == 24 and report.fully_binarized
    fates = {fate.layer: fate for fate in report.binary_layers}
    for name in bineal_block_names(model):
        assert fates[f"{name}.conv1"].bconv.output == "bitpacked", name
        assert fates[f"{name}.conv2"].bconv.output == "float32", name
    assert report.bitpacked_outputs == 8
    # The only float work between binary convs: one ADD per block (the last block's feeds the head).
    assert report.op_counts["ADD"] == 8
    assert {op["op"] for op in report.float_ops_between_binary_convs} <= {"ADD"}
    assert report.parity.max_abs_diff < 1e-4 and report.parity.top1_agreement == 1.0
    assert any(note.startswith("BiNeal: per block the only float work left is the branch ADD") for note in report.notes)


def test_costs_count_folded_terms_as_parameters_only():
    model = BiNeal(1.0)
    report = profile(model)
    conv = model.get_layer("stage2.block1.conv2")  # 3x3, 128 -> 128, on 28x28
    rows = {row.name: row for row in report.layers}
    assert rows[conv.name].bops == 28 * 28 * 9 * 128 * 128 and rows[conv.name].lce_binary
    assert rows[conv.name].params == 9 * 128 * 128 + 128 + 128 + 1  # kernel, α, λ, k
    # Packed size: 1 bit per binary weight; the α / λ / k / activation terms are not stored.
    binary_weights = sum(int(np.prod(layer.kernel.shape)) for layer in model.layers
                         if isinstance(layer, lq.layers.QuantConv2D) and isinstance(layer.kernel_quantizer, BiNealWeight))
    stem = model.get_layer("stem.conv").kernel.shape.num_elements() * 8
    head = model.get_layer("classifier")
    head_bits = head.kernel.shape.num_elements() * 8 + head.bias.shape.num_elements() * 32
    bn_bits = sum(2 * layer.moving_mean.shape[0] * 32 for layer in model.layers
                  if isinstance(layer, tf.keras.layers.BatchNormalization))
    quantizer_bounds = 2 * 32  # the 8-bit input quantizers' learned bounds: one each (per tensor)
    assert report.totals["packed_size_bytes"] == -(-(binary_weights + stem + head_bits + bn_bits + quantizer_bounds) // 8)
    assert stored_sizes(model)["packed_size_bytes"] == report.totals["packed_size_bytes"]  # what convert reports


# --- the zoo ------------------------------------------------------------------------------------
def test_zoo_names_and_published_numbers():
    from larq_poke.zoo import list_models

    assert [name for name in list_models() if name.startswith("bineal")] == ["bineal-1.0x", "bineal-1.5x", "bineal-2.0x"]
    # ResNet-18's 512 channels times m
    assert build("bineal-1.5x", include_top=False).output_shape == (None, None, None, 768)
    assert build("bineal-2.0x", include_top=False, input_shape=(64, 64, 3)).output_shape == (None, 2, 2, 1024)
    import larq_poke.zoo.bineal as module

    rows = {line.split("|")[1].strip(): line for line in module.__doc__.splitlines() if line.startswith("| BiNeal-")}
    assert "65.0 %" in rows["BiNeal-1.0x"] and "third-party" in rows["BiNeal-1.0x"]
    assert "69.7 %" in rows["BiNeal-1.5x"] and "same registry" in rows["BiNeal-1.5x"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width_multiplier": 0.75}, "multiple of 32"),
        ({"width_multiplier": 1.25}, "multiple of 32"),
        ({"width_multiplier": 0.1}, "multiple of 32"),
        ({"width_multiplier": -1}, "positive"),
        ({"include_top": False, "num_classes": 10}, "include_top=False"),
        ({"width_multiplier": True}, "positive finite number"),
        ({"width_multiplier": float("inf")}, "positive finite number"),
        ({"weights": "imagenet"}, "No ImageNet-trained BiNeal weights"),
        ({"weights": "imagenet", "num_classes": 10}, "No ImageNet-trained BiNeal weights"),
        ({"alpha": "row"}, "alpha must be one of"),
        ({"skip_kernel": 2}, "skip_kernel"),
        ({"skip_kernel": True}, "skip_kernel"),
        ({"skip_kernel": 3.0}, "skip_kernel"),
        ({"num_classes": 2.5}, "num_classes.* positive integer"),
        ({"num_classes": "10"}, "num_classes.* positive integer"),
        ({"branch_bits": 4.5}, "integer bits"),
        ({"include_top": False, "multiscale": True, "input_tensor": "40x40"}, "divisible by 32"),
        ({"include_top": False, "multiscale": "False"}, "multiscale must be True or False"),
        ({"include_top": "yes"}, "include_top must be True or False"),
    ],
)
def test_bad_arguments(kwargs, message):
    if kwargs.get("input_tensor") == "40x40":  # the size check also covers a given tensor
        kwargs["input_tensor"] = tf.keras.Input((40, 40, 3))
    else:
        kwargs.setdefault("input_shape", (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=message):
        BiNeal(**kwargs)


def test_numpy_widths_and_fixed_zoo_names():
    assert BiNeal(np.float32(0.5), input_shape=(SIZE, SIZE, 3)).get_layer("stage4.block2.conv2").filters == 256
    m = 0.1 * 15  # 1.5000000000000002: 96 channels up to float rounding, not an error
    model = BiNeal(m, input_shape=(SIZE, SIZE, 3), include_top=np.bool_(False))
    assert [model.get_layer(name).filters for name in ("stem.conv", "stage1.block1.conv1", "stage4.block2.conv2")] == [96, 96, 768]
    with pytest.raises(ValueError, match="'bineal-1.0x': .*width_multiplier.* fixes the architecture"):
        build("bineal-1.0x", width_multiplier=2.0)


def assert_int8_stem_keeps_the_signs(common, model, flatbuffer, images):
    """The int8 file's stem output has the training form's sign wherever that is not within
    float error of 0 (the two compute the same integer sum in different orders). ``common``:
    ``benchmarks/common.py``, which reads the stem out of the file."""
    training, int8_stem = common.bineal_stem_signs(model, flatbuffer, images)
    assert int8_stem.dtype == np.int8 and int8_stem.shape == training.shape
    differ = (int8_stem >= 0) != (training >= 0)
    assert np.all(np.abs(training[differ]) < 1e-5), f"{differ.sum()} of {differ.size} stem signs differ"


def test_int8_stem_and_classifier(converted, benchmark_common):
    from larq_poke.converters.conversion_report import QuantizationInfoError
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    model, _ = converted
    fresh = BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10)
    with pytest.raises(QuantizationInfoError, match="stem.conv"):
        convert(fresh, int8=True, verify=False)
    images = _images(8, seed=9)
    calibrate_activation_bounds(model, images)
    try:
        assert model.get_layer("stem.conv").input_quantizer.bounds.shape == (1,)  # int8's per-tensor grid
        result = convert(model, int8=True, sample_inputs=images)
        # The int8 stem keeps the training form's signs: its input on the quantizer's own grid
        # and its integer thresholds keep int8 rounding from moving any value across zero. (With
        # the input range (−b, b) instead of the grid, 49 of these 65,536 signs flipped.)
        assert_int8_stem_keeps_the_signs(benchmark_common, model, result.flatbuffer, images)
    finally:
        for name in ("stem.conv", "classifier"):
            quantizer = model.get_layer(name).input_quantizer
            quantizer.bounds.assign(-np.ones(quantizer.bounds.shape, np.float32))
    report, info = result.report, result.model_info
    assert report.int8_requested and report.precision == "mixed"
    assert report.fully_binarized and report.bitpacked_outputs == 8
    int8_ops = {}
    for op in info.operators:
        if info.op_output_dtype(op) == "INT8" and op.op_type != "QUANTIZE":
            int8_ops[op.op_type] = int8_ops.get(op.op_type, 0) + 1
    # The stem conv and the classifier (a 1x1 conv) are int8; the body's only float op is ADD.
    assert int8_ops.get("CONV_2D") == 2, int8_ops
    assert report.float_compute_ops == {"ADD": 8}, report.float_compute_ops
    assert benchmark_common.float_elementwise_ops(result.flatbuffer) == 8  # one per block, 1×1 maps too


def test_int8_stem_signs_with_zero_and_negative_gains(benchmark_common):
    """The int8 stem's integer thresholds with BN scales of both signs and exactly 0 (an
    all-zero channel of the folded kernel, whose sign is its bias's). A bias rounded to the
    int32 grid, with only a half-step output shift, flips 2 of these 65,536 signs. Inputs far
    beyond the learned bound as well: int8 clips them at −128 steps, and so does the model
    (clipping at −127 steps, as PokeBNN's symmetric quantizer does, flips 36 of the wide
    images' signs)."""
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    model = trained_like(BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10), seed=8, zero_gamma=True)
    gamma = model.get_layer("stem.bn").gamma.numpy()
    assert (gamma == 0).sum() == 2 and (gamma < 0).any()
    images = _images(8, seed=10)
    calibrate_activation_bounds(model, images)
    result = convert(model, int8=True, sample_inputs=images, verify=False)
    assert_int8_stem_keeps_the_signs(benchmark_common, model, result.flatbuffer, images)
    wide = images * 4
    bound = float(model.get_layer("stem.conv").input_quantizer.bounds.numpy()[0])
    assert np.mean(wide < -bound * 128 / 127) > 0.1  # clipped at −128 steps
    assert_int8_stem_keeps_the_signs(benchmark_common, model, result.flatbuffer, wide)


def _stem_model(padding="same", dilation=1, other_reader=False):
    """An 8-bit stem with a bias (conv → BN → 3×3/2 max pool → sign) and one binary conv."""
    from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = lq.layers.QuantConv2D(32, 5, padding=padding, dilation_rate=dilation, use_bias=True,
                              input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
                              kernel_quantizer=SignedWeightQuantizer(bits=8), name="stem.conv")(inputs)
    stem_bn = tf.keras.layers.BatchNormalization(name="stem.bn")(x)
    x = BiNealSign(name="stem.act")(tf.keras.layers.MaxPool2D(3, 2, padding=padding, name="stem.pool")(stem_bn))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer=BiNealWeight("channel"), name="conv")(x)
    x = BiNealSign(name="act")(tf.keras.layers.BatchNormalization(name="bn")(x))
    outputs = [tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)]
    if other_reader:
        outputs.append(tf.keras.layers.GlobalAveragePooling2D(name="stem_features")(stem_bn))
    return tf.keras.Model(inputs, outputs)


@pytest.mark.parametrize("padding, dilation", [("same", 2), ("valid", 1)])
def test_int8_stem_with_a_bias_dilation_or_valid_padding(padding, dilation):
    """The int8 stem against the training form's signs (before, it dropped the conv's bias and
    dilation: 9 % of these signs differed), and refused where its output has other readers."""
    from larq_poke.converters.rewrites.bineal import DeployableBiNealStem, bineal_deployable
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    images = _images(6, seed=11)
    model = _stem_model(padding, dilation)
    model.get_layer("stem.conv").bias.assign(np.random.RandomState(1).randn(32).astype(np.float32))
    model = trained_like(model, statistics_from=images)
    calibrate_activation_bounds(model, images)
    deployable = bineal_deployable(model, int8=True)
    assert isinstance(deployable.get_layer("stem.act"), DeployableBiNealStem)
    stem = tf.keras.Model(deployable.input, deployable.get_layer("stem.act").output)(images).numpy()
    signs = tf.keras.Model(model.input, model.get_layer("stem.act").output)(images).numpy()
    assert stem.shape == signs.shape and 0.05 < np.mean(signs > 0) < 0.95
    np.testing.assert_array_equal(np.where(stem >= 0, 1.0, -1.0), signs)
    np.testing.assert_allclose(deployable(images).numpy(), model(images, training=False).numpy(), atol=1e-6)
    other = trained_like(_stem_model(padding, dilation, other_reader=True), statistics_from=images)
    calibrate_activation_bounds(other, images)
    with pytest.raises(ValueError, match="stem.conv .* cannot become an int8 stem: stem.bn's output is read by "
                                         "\\['stem.pool', 'stem_features'\\]"):
        bineal_deployable(other, int8=True)


def _unit_chain_model(other_reader=False):
    """8-bit stem → binary conv → 8-bit conv u1 → BN → ReLU, read by two 8-bit convs (u2, u3,
    each → BN) whose outputs are joined: int8 units reading an int8 unit directly, as
    CenterNet's heads read its neck."""
    from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer

    def eight_bit(filters, name):
        return lq.layers.QuantConv2D(filters, 3, padding="same", use_bias=False,
                                     input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
                                     kernel_quantizer=SignedWeightQuantizer(bits=8), name=name)

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = eight_bit(32, "stem.conv")(inputs)
    x = BiNealSign(name="stem.act")(tf.keras.layers.BatchNormalization(name="stem.bn")(x))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer=BiNealWeight("channel"), name="conv")(x)
    x = BiNealSign(name="act")(tf.keras.layers.BatchNormalization(name="bn")(x))
    x = tf.keras.layers.ReLU(name="u1.relu")(tf.keras.layers.BatchNormalization(name="u1.bn")(eight_bit(16, "u1.conv")(x)))
    heads = [tf.keras.layers.BatchNormalization(name=f"{u}.bn")(eight_bit(8, f"{u}.conv")(x)) for u in ("u2", "u3")]
    outputs = [tf.keras.layers.Concatenate(name="out")(heads)]
    if other_reader:
        outputs.append(tf.keras.layers.GlobalAveragePooling2D(name="u1_features")(x))
    return tf.keras.Model(inputs, outputs)


@pytest.mark.parametrize("case", ["shared grid", "other grid", "other reader"])
def test_int8_units_reading_an_int8_unit(case):
    """8-bit convs reading another 8-bit conv's output directly. The converter merges the two
    fake quants in a row and quantized the readers' biases for a grid their input no longer had
    (CenterNet's int8 heads: biases 2–3× too large, mAP 0.16 against Keras' 0.27). With one
    shared grid the writer now writes on it, and the file matches the Keras model within int8
    rounding; a reader with another grid keeps the writer's (a note says so)."""
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds

    images = _images(8, seed=12)
    model = trained_like(_unit_chain_model(other_reader=case == "other reader"), seed=3, statistics_from=images)
    calibrate_activation_bounds(model, images)
    if case == "other grid":
        bounds = model.get_layer("u3.conv").input_quantizer.bounds
        bounds.assign(bounds.numpy() * 1.5)
    result = convert(model, int8=True, sample_inputs=images)
    notes = [note for note in result.report.notes if "int8 grid" in note]
    assert len(notes) == (0 if case == "shared grid" else 2 if case == "other reader" else 1), result.report.notes
    if case == "other grid":  # u1 writes on u3's wider grid
        assert notes[0].startswith("int8: u2.conv reads u1.relu's int8 grid") and "grids of u1.relu's readers differ" in notes[0]
    if case == "other reader":
        assert all("u1.relu is also read by ['u1_features']" in note for note in notes), notes
    keras = model(images)
    keras = (keras[0] if isinstance(keras, list) else keras).numpy()
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    lite = Interpreter(result.flatbuffer, num_threads=1, use_indirect_bgemm=True).predict(images)
    lite = [out for out in (lite if isinstance(lite, list) else [lite]) if out.shape == keras.shape][0]
    info = result.model_info
    step, = [info.tensors[op.inputs[0]].scales[0] for op in info.operators
             if op.op_type == "DEQUANTIZE" and info.tensors[op.outputs[0]].shape[1:] == keras.shape[1:]]
    error = np.abs(lite - keras) / step
    print(case, "|TFLite - Keras| in output steps: mean", error.mean(), "max", error.max())
    # Before: 12 steps, the converter's biases 1.8× too large; then 9.7 steps, the BN-scale-0
    # channel's bias saturating int32. Both files now raise MisquantizedBiasError.
    assert error.mean() < 1.0


def test_int8_sample_images_from_the_command_line(converted, tmp_path):
    """``larq-poke convert --int8 --sample-images FOLDER`` calibrates the int8 ranges on those
    images (no note about standard-normal ones) and checks parity on them; without sample images
    the report says the ranges come from noise, and an untrained model's report says so too."""
    import json

    from larq_poke.cli import main
    from larq_poke.converters.rewrites.bineal import bineal_deployable, fold_bineal
    from larq_poke.converters.rewrites.pokebnn import calibrate_activation_bounds
    from larq_poke.data import write_image_folder

    model, result = converted
    pixels = np.random.RandomState(3).randint(0, 256, size=(8, SIZE, SIZE, 3)).astype(np.uint8)
    write_image_folder(tmp_path / "images", "train", pixels, np.arange(8) % 2)
    calibrate_activation_bounds(model, pixels.astype(np.float32) / 255.0)
    try:
        model.save(tmp_path / "bineal.keras")
        for images, noise in ((None, True), (pixels.astype(np.float32) / 255.0, False)):
            checks = bineal_deployable(model, int8=True, calibration_inputs=images)._deployment_checks
            assert any("standard-normal" in (check(result.report) or "") for check in checks) == noise
    finally:
        for name in ("stem.conv", "classifier"):
            quantizer = model.get_layer(name).input_quantizer
            quantizer.bounds.assign(-np.ones(quantizer.bounds.shape, np.float32))
    assert main(["convert", str(tmp_path / "bineal.keras"), "--int8", "--sample-images", str(tmp_path / "images"),
                 "--samples", "8", "-o", str(tmp_path / "bineal.tflite"), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parity"]["num_samples"] == 8
    assert not [note for note in report["notes"] if "standard-normal" in note], report["notes"]
    assert [note for note in report["notes"] if note.startswith("BiNeal: per block the only float work")]

    # The checks the fold leaves for the report: untrained, and the int8 ranges from noise.
    fresh = BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10)
    notes = [check(result.report) for check in fold_bineal(fresh, allow_untrained=True)._deployment_checks]
    assert [note for note in notes if note and "untrained model" in note]
    assert not [note for note in result.report.notes if "untrained" in note]  # the trained-like model


def test_keras_file_loads_what_was_saved(converted, tmp_path):
    """The command line's loader reads a ``.keras`` file's weights from memory, not by seeking in
    the archive (larq_poke.zoo.resolve): every variable comes back as saved, and the outputs too.
    An archive holding anything else goes to Keras' own loader, with the same result."""
    import shutil
    import zipfile

    from larq_poke.zoo.resolve import load_model

    model, _ = converted
    saved = tmp_path / "bineal.keras"
    model.save(saved)
    with zipfile.ZipFile(saved) as archive:  # what the in-memory path takes; anything more goes to Keras
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    other = tmp_path / "with_asset.keras"
    shutil.copy(saved, other)
    with zipfile.ZipFile(other, "a") as archive:
        archive.writestr("assets/note.txt", "an asset")
    x = _images(2, seed=11)
    for path in (saved, other):
        loaded = load_model(str(path))
        assert type(loaded) is type(model) and len(loaded.weights) == len(model.weights) > 100
        for layer in model.layers:
            for a, b in zip(loaded.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=layer.name)
        np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())


def test_int4_branches_train_form_fold_and_convert():
    """D6: both branch outputs on 4-bit levels (−7..7 times a learned step) before the add; the
    fold computes the same levels with float ops, exactly enough that every block bit agrees."""
    model = trained_like(BiNeal(0.5, input_shape=(SIZE, SIZE, 3), num_classes=10, branch_bits=4), seed=2)
    rng = np.random.RandomState(4)
    for layer in model.layers:
        if layer.name.endswith(("_q",)):
            layer.bound.assign(rng.uniform(0.5, 4.0))
    x = _images()
    q = model.get_layer("stage2.block1.main_q")
    values = tf.keras.Model(model.input, q.output)(x).numpy()
    step = q.bound.numpy() / 7
    levels = values / step
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # on the grid
    assert np.abs(levels).max() <= 7 + 1e-4 and len(np.unique(np.round(levels))) > 8
    folded = fold_bineal(model)
    names = bineal_block_names(model)
    bits = tf.keras.Model(model.input, [model.get_layer(f"{n}.act2").output for n in names])(x)
    sums = tf.keras.Model(folded.input, [folded.get_layer(f"{n}.add").output for n in names])(x)
    for name, expected, total in zip(names, bits, sums):
        np.testing.assert_array_equal(np.where(total.numpy() >= 0, 1.0, -1.0), expected.numpy(), err_msg=name)
    np.testing.assert_allclose(folded(x).numpy(), model(x, training=False).numpy(), atol=1e-4)
    # Deployed: per branch clip (MAXIMUM, MINIMUM), round (ADD 0.5, FLOOR) and rescale (MUL),
    # then the branch ADD and the threshold's ADD; every body conv still binary, 8 bit-packed.
    report = convert(model, strict=True, sample_inputs=x).report
    assert report.fully_binarized and report.bitpacked_outputs == 8
    per_block = {op: n / len(names) for op, n in report.float_compute_ops.items() if n >= len(names)}
    assert per_block == {"MAXIMUM": 2, "MINIMUM": 2, "FLOOR": 2, "MUL": 2, "ADD": 4}, report.float_compute_ops
    assert report.parity.max_abs_diff < 1e-4
    with pytest.raises(ValueError, match="bits"):
        BiNeal(0.5, input_shape=(SIZE, SIZE, 3), branch_bits=1)
    q.bound.assign(0.0)  # only by hand: the constraint keeps it >= 1e-3
    with pytest.raises(ValueError, match="stage2.block1.main_q: the INT4 branch bound must be positive"):
        fold_bineal(model)


def test_multiscale_features_for_dense_heads():
    model = BiNeal(0.5, include_top=False, multiscale=True, input_shape=(64, 96, 3))
    shapes = [tuple(o.shape) for o in model.outputs]
    assert shapes == [(None, 16, 24, 32), (None, 8, 12, 64), (None, 4, 6, 128), (None, 2, 3, 256)]
    trained_like(model, seed=3, statistics_from=np.random.RandomState(0).randn(4, 64, 96, 3).astype(np.float32))
    images = np.random.RandomState(1).randn(3, 64, 96, 3).astype(np.float32)
    outputs = model(images, training=False)
    folded = fold_bineal(model)  # outputs read by the next stage and by the caller: explicit signs
    for a, b in zip(folded(images), outputs, strict=True):
        assert set(np.unique(b.numpy())) <= {-1.0, 1.0}  # ±1 maps
        flat = b.numpy().reshape(len(images), -1)
        assert np.mean(flat.min(axis=0) != flat.max(axis=0)) > 0.1  # not a constant map
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="divisible by 32"):
        BiNeal(0.5, include_top=False, multiscale=True, input_shape=(64, 80, 3))
    with pytest.raises(ValueError, match="include_top=False"):
        BiNeal(0.5, multiscale=True, input_shape=(64, 64, 3))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_int8_rewrite_layers_report_the_shape_they_compute(padding):
    """The int8 rewrite's conv layers declare the output shape TensorFlow's conv computes, for
    SAME and VALID padding, strides and dilations (they once assumed SAME: ceil(size / stride))."""
    from larq_poke.converters.rewrites.bineal import DeployableBiNealStem, FloatSigmoidConv, Int8ConvUnit
    from larq_poke.quantizers import SignedActivationQuantizer, SignedWeightQuantizer

    def eight_bit(kernel, strides, dilation=1):
        conv = lq.layers.QuantConv2D(5, kernel, strides=strides, dilation_rate=dilation, padding=padding,
                                     input_quantizer=SignedActivationQuantizer(bits=8, per_channel=False),
                                     kernel_quantizer=SignedWeightQuantizer(bits=8))
        conv.build((None, None, None, 3))
        conv.input_quantizer(tf.zeros((1, 4, 4, 3)))  # makes its bounds
        conv.input_quantizer.bounds.assign(np.full(conv.input_quantizer.bounds.shape, 2.0, np.float32))
        return conv

    bn, act = tf.keras.layers.BatchNormalization(), BiNealSign()
    bn.build((None, None, None, 5))
    act.build((None, None, None, 5))
    pool = tf.keras.layers.MaxPool2D(3, 2, padding="valid" if padding == "same" else "same")  # its own padding
    sigmoid = tf.keras.layers.Conv2D(4, 5, strides=(2, 3), padding=padding, activation="sigmoid")
    sigmoid.build((None, None, None, 3))
    layers = [
        DeployableBiNealStem(eight_bit(7, 2), bn, pool, act),
        DeployableBiNealStem(eight_bit(3, 1, dilation=2), bn, None, act),
        Int8ConvUnit(eight_bit(3, (2, 1)), bn, relu=True, output_range=(-1.0, 1.0)),
        Int8ConvUnit(eight_bit(5, 1, dilation=(1, 2)), None, output_range=(-1.0, 1.0)),
        FloatSigmoidConv(sigmoid),
    ]
    images = np.random.RandomState(0).uniform(-1, 1, (2, 23, 18, 3)).astype(np.float32)
    for layer in layers:
        computed = tuple(layer(images).shape)
        assert tuple(layer.compute_output_shape(images.shape)) == computed, (layer.name, padding)
        assert layer.compute_output_shape((None, None, None, 3)).as_list() == [None, None, None, computed[-1]]
