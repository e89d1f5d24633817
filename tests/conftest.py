"""Shared test fixtures.

Golden files (outputs of the official implementations) are too large for the repository. They are
looked up in ``$LARQ_POKE_GOLDEN_DIR`` or in ``../shared/golden`` next to the checkout. When absent
the golden tests skip with the reason, except under ``CI=true`` where they fail.
"""

import importlib.util
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


@pytest.fixture(scope="session")
def zoo_cost():
    """``zoo_cost(name)``: ``cost.profile`` of zoo classifier ``name`` built at 224x224, computed
    once per session for every module that checks full-size costs (the cost tests, the model
    cards): building the big models is the expensive part."""
    import tensorflow as tf

    from larq_poke.cost import profile
    from larq_poke.zoo import build

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = profile(build(name, input_shape=(224, 224, 3)))
            tf.keras.backend.clear_session()
        return cache[name]

    return get


@pytest.fixture(autouse=True)
def _clear_keras_session():
    import tensorflow as tf

    yield
    tf.keras.backend.clear_session()


def run_two_workers(command, timeout: int = 600):
    """Run ``command`` (an argv list) as the two workers of a MultiWorkerMirroredStrategy cluster on
    free ports of 127.0.0.1 (``TF_CONFIG``); wait for both, fail with a worker's stderr if one
    fails, and return their stdouts."""
    import json
    import os
    import socket
    import subprocess

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for index, process in enumerate(processes):
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"worker {index} failed:\n{err[-3000:]}"
        outputs.append(out)
    return outputs


@pytest.fixture(scope="session")
def benchmark_common():
    """``benchmarks/common.py`` (file prefixes, BiNeal's sign read-outs), loaded once."""
    spec = importlib.util.spec_from_file_location("benchmark_common", REPO_ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# How the two pytest-xdist workers share the files (the test command runs ``-n 2 --dist loadfile
# --no-loadscope-reorder``):
#
# * Files that share the session fixture ``zoo_cost`` (full-size models profiled at 224x224, about
#   half a minute each) form one work unit, so that each model is built and profiled once per run,
#   not once per worker that happens to get one of them.
# * The longest units start first (longest-first scheduling), so that the workers end together
#   instead of one of them running a nine-minute file alone at the end. Units go out in collection
#   order (without ``--no-loadscope-reorder``, pytest-xdist orders them by number of tests).
SHARED_UNITS = {name: "zoo_cost" for name in ("test_cards_plots.py", "test_cost.py", "test_bnext_cost.py")}
LONGEST_FIRST = (
    "test_mnist_end_to_end.py",
    "test_docs_examples.py",
    "test_cards_plots.py",
    "test_cost.py",
    "test_bnext_cost.py",
    "test_bineal_detection.py",
    "test_train_run.py",
    "test_bineal_tasks.py",
    "test_bineal_matching.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the other files keep their order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: plain pytest runs without it
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the files of :data:`SHARED_UNITS` in one work unit each."""
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return SHARED_UNITS.get(path.rsplit("/", 1)[-1], path)

    return SharedFixtureScheduling(config, log)
