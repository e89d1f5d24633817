"""Shared test fixtures.

Golden files (outputs of the official implementations) are too large for the repository. They are
looked up in ``$LARQ_POKE_GOLDEN_DIR`` or in ``../shared/golden`` next to the checkout. When absent
the golden tests skip with the reason, except under ``CI=true`` where they fail.
"""

import os
from pathlib import Path

import pytest

import larq_poke  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    env = os.environ.get("LARQ_POKE_GOLDEN_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


def _required_file(path: Path, message: str) -> Path:
    """``path`` if it exists; otherwise skip with ``message`` (fail under CI=true)."""
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def golden_path(name: str) -> Path:
    """Path of golden file ``name``; skip (or fail under CI=true) if it is not there."""
    path = golden_dir() / name
    return _required_file(
        path,
        f"golden file {path} not found; set LARQ_POKE_GOLDEN_DIR to the folder holding "
        f"{name} (produced from the official code)",
    )


def benchmark_sample_path(name: str) -> Path:
    """Path of a recorded ``lce_benchmark_model`` output in ``../shared/specs``."""
    path = REPO_ROOT.parent / "shared" / "specs" / "lce_benchmark_samples" / name
    return _required_file(path, f"recorded sample {path} not found")


@pytest.fixture(autouse=True)
def _clear_keras_session():
    import tensorflow as tf

    yield
    tf.keras.backend.clear_session()
