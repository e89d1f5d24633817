"""BNext parity with the official PyTorch code (golden file ``bnext_small.npz``).

The reduced model (stage list [16, 32, 64, 64, 128, 128, 128, 128], 64x64 input) covers every unit
type, both strides, channel doubling, a stride-1 ELM unit, the unused parameters and the head.
Logits must match within 1e-4 absolute with the same argmax; every block output (``feature_out/<i>``,
NCHW in the file) within 1e-4.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import golden_path

from larq_poke.zoo.bnext import load_bnext_torch
from larq_poke.zoo.bnext import BNext, feature_outputs

SMALL_STAGES = [16, 32, 64, 64, 128, 128, 128, 128]
_NOT_WEIGHTS = ("input", "output", "output_fp64", "feature_out/", "feature_mean/")


def official_state(golden):
    return {k: v for k, v in golden.items() if not k.startswith(_NOT_WEIGHTS)}


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("bnext_small.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module", params=[1, 0], ids=["larq_sign", "torch_sign"])
def outputs(request, golden):
    """(block outputs..., logits) of the converted model; zero_sign=1 and the torch semantics."""
    model = BNext(SMALL_STAGES, input_shape=(64, 64, 3), zero_sign=request.param)
    report = load_bnext_torch(model, official_state(golden))
    probe = tf.keras.Model(model.input, feature_outputs(model) + [model.output])
    values = probe(golden["input"].transpose(0, 2, 3, 1), training=False)
    return report, [v.numpy() for v in values]


def test_logits_match(outputs, golden):
    _, values = outputs
    logits = values[-1]
    assert np.abs(logits - golden["output"]).max() <= 1e-4
    assert list(logits.argmax(axis=1)) == list(golden["output"].argmax(axis=1)) == [706, 706]


@pytest.mark.parametrize("index", range(len(SMALL_STAGES)))
def test_block_outputs_match(outputs, golden, index):
    _, values = outputs
    expected = golden[f"feature_out/{index}"].transpose(0, 2, 3, 1)
    assert values[index].shape == expected.shape
    np.testing.assert_allclose(values[index], expected, rtol=1e-4, atol=1e-4)


def test_report_accounts_for_every_key(outputs, golden):
    report, _ = outputs
    state = official_state(golden)
    assert report.keys == len(state) == 367
    assert report.assigned_keys + report.skipped_keys == 367
    # Skipped: num_batches_tracked (2 BNs per unit + stem), binary_activation.temperature (one
    # per unit), the stem PReLU, and activation1 of every unit that is not an ELM unit.
    n_units = 7 + sum(2 if b > a else 1 for a, b in zip(SMALL_STAGES, SMALL_STAGES[1:]))
    n_elm = 3
    expected_skipped = (2 * n_units + 1) + n_units + 1 + (n_units - n_elm)
    assert report.skipped_keys == expected_skipped
    assert report.max_temperature < 1e-7
