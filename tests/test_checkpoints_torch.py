"""The torch-free, code-free reader of ``torch.save`` files.

Checkpoints are written with real ``torch.save`` (torch is a test-only dependency) and read back
with :func:`larq_poke.checkpoints.read_torch`; one test reads them in a subprocess where importing torch is
impossible.
"""

import collections
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from larq_poke.checkpoints import CheckpointError, UnsafeCheckpointError, detect_format
from larq_poke.checkpoints import read_torch as load_torch_checkpoint

torch = pytest.importorskip("torch", reason="torch (CPU) is a test dependency: pip install torch==2.13.0")


def _tensors():
    gen = torch.Generator().manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = collections.OrderedDict()
    state["conv.weight"] = torch.randn(8, 4, 3, 3, generator=gen)
    state["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    state["half"] = torch.randn(5, generator=gen).half()
    state["bf16"] = torch.tensor([1.5, -2.25, 3.0e-3], dtype=torch.bfloat16)
    state["double"] = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    state["transposed"] = base.t()  # non-contiguous view
    state["slice_a"] = base[1:3]  # two views of one storage
    state["slice_b"] = base[:, 2]
    state["mask"] = torch.tensor([True, False, True])
    state["empty"] = torch.zeros(0, 3)
    return state


def _expected(tensor):
    if tensor.dtype == torch.bfloat16:
        return tensor.float().numpy()
    return tensor.numpy()


def _assert_same(loaded, state):
    assert list(loaded) == list(state)
    for key, tensor in state.items():
        ref = _expected(tensor)
        assert loaded[key].dtype == ref.dtype, key
        assert loaded[key].shape == ref.shape, key
        np.testing.assert_array_equal(loaded[key], ref, err_msg=key)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch_ckpt")
    state = _tensors()
    param = torch.nn.Parameter(torch.randn(3))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.sum().backward()
    optimizer.step()
    training = {
        "epoch": 511,
        "state_dict": state,
        "best_top1_acc": torch.tensor(72.4),
        "optimizer": optimizer.state_dict(),
        "curve": [np.float32(0.5), np.float64(0.25)],
        "array": np.arange(6, dtype=np.int64).reshape(2, 3),
        "temp": 3.7e-24,
        "name": "bnext",
        "blob": b"\x00\x01bytes",
    }
    paths = {
        "plain": folder / "plain.pth",
        "training": folder / "training.pth.tar",
        "legacy": folder / "legacy.pth",
        "module": folder / "module.pth",
    }
    torch.save(state, paths["plain"])
    torch.save(training, paths["training"])
    torch.save(state, paths["legacy"], _use_new_zipfile_serialization=False)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    torch.save(module.state_dict(), paths["module"])
    return state, training, module.state_dict(), paths


def test_plain_zip_state_dict(checkpoints):
    state, _, _, paths = checkpoints
    assert detect_format(paths["plain"]) == "torch"
    loaded = load_torch_checkpoint(paths["plain"])
    assert isinstance(loaded, collections.OrderedDict)
    _assert_same(loaded, state)
    # Views of one storage stay independent copies.
    assert not np.shares_memory(loaded["slice_a"], loaded["slice_b"])


def test_training_checkpoint_dict(checkpoints):
    state, training, _, paths = checkpoints
    loaded = load_torch_checkpoint(paths["training"])
    _assert_same(loaded["state_dict"], state)
    assert loaded["epoch"] == 511
    assert float(loaded["best_top1_acc"]) == pytest.approx(72.4)
    assert loaded["curve"] == [0.5, 0.25]
    np.testing.assert_array_equal(loaded["array"], training["array"])
    assert loaded["temp"] == 3.7e-24 and loaded["name"] == "bnext" and loaded["blob"] == b"\x00\x01bytes"
    exp_avg = training["optimizer"]["state"][0]["exp_avg"].numpy()
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["exp_avg"], exp_avg)


def test_legacy_format(checkpoints):
    state, _, _, paths = checkpoints
    assert detect_format(paths["legacy"]) == "torch"
    _assert_same(load_torch_checkpoint(paths["legacy"]), state)


def test_module_state_dict_keeps_metadata(checkpoints):
    _, _, module_state, paths = checkpoints
    loaded = load_torch_checkpoint(paths["module"])
    assert list(loaded) == list(module_state)
    assert loaded["1.num_batches_tracked"].dtype == np.int64
    assert loaded._metadata["1"]["version"] == module_state._metadata["1"]["version"]


def test_loads_with_torch_unimportable(checkpoints, tmp_path):
    state, _, _, paths = checkpoints
    expected = tmp_path / "expected.npz"
    np.savez(expected, **{k.replace(".", "__"): _expected(v) for k, v in state.items()})
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        try:
            import torch  # noqa: F401
            raise SystemExit("torch import was not blocked")
        except ImportError:
            pass
        import numpy as np
        from larq_poke.checkpoints import read_torch as load_torch_checkpoint

        expected = np.load({str(expected)!r})
        for path in ({str(paths["plain"])!r}, {str(paths["legacy"])!r}, {str(paths["training"])!r}):
            loaded = load_torch_checkpoint(path)
            loaded = loaded.get("state_dict", loaded)
            for key in expected.files:
                np.testing.assert_array_equal(loaded[key.replace("__", ".")], expected[key])
        assert "torch" not in sys.modules
        print("OK", len(expected.files))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {len(state)}" in result.stdout


# ---------------------------------------------------------------------------------------------
# Hostile and broken files.


def _zip_checkpoint(path, payload: bytes, records=None):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
        for name, data in (records or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_os_system_pickle_is_refused_and_not_run(tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": {"w": _Exploit(marker)}}, protocol=2)
    if kind == "zip":
        path = _zip_checkpoint(tmp_path / "evil.pth", payload)
    else:
        path = tmp_path / "evil_legacy.pth"
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + payload)
    with pytest.raises(UnsafeCheckpointError, match=r"(os|posix)\.system"):
        load_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, name",
    [
        (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
        (b"cos\nsystem\n(S'true'\ntR.", "os.system"),
        (b"csubprocess\nPopen\n(S'true'\ntR.", "subprocess.Popen"),
        (b"ctorch.serialization\nload\n(S'x'\ntR.", "torch.serialization.load"),
        (b"c__builtin__\ngetattr\n.", "__builtin__.getattr"),
    ],
)
def test_disallowed_globals_are_named(tmp_path, payload, name):
    path = _zip_checkpoint(tmp_path / "bad.pth", payload)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_torch_checkpoint(path)
    assert name in str(info.value)
    assert "Nothing was executed" in str(info.value)


def test_pickle_cannot_modify_allowlisted_stand_ins(tmp_path):
    # BUILD on the shared stand-in of torch.FloatStorage (would change later loads).
    payload = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeK\x01sb."
    path = _zip_checkpoint(tmp_path / "pollute.pth", payload)
    with pytest.raises(CheckpointError):
        load_torch_checkpoint(path)
    payload = b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypeK\x01s\x86b."
    path = _zip_checkpoint(tmp_path / "pollute2.pth", payload)
    with pytest.raises(CheckpointError):
        load_torch_checkpoint(path)


def test_truncated_zip(checkpoints, tmp_path):
    _, _, _, paths = checkpoints
    data = paths["plain"].read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        broken = tmp_path / f"truncated_{cut}.pth"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|corrupted|not a valid zip"):
            load_torch_checkpoint(broken)


def test_corrupted_storage_bytes(checkpoints, tmp_path):
    _, _, _, paths = checkpoints
    with zipfile.ZipFile(paths["plain"]) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(paths["plain"].read_bytes())
    # Local file header: 30 bytes, then the name and the (alignment) extra field of *this* header.
    name_len, extra_len = np.frombuffer(bytes(data[info.header_offset + 26 : info.header_offset + 30]), "<u2")
    data[info.header_offset + 30 + int(name_len) + int(extra_len) + 5] ^= 0xFF
    broken = tmp_path / "flipped.pth"
    broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_torch_checkpoint(broken)


_STORAGE = object()


class _TensorPickler(pickle.Pickler):
    """Writes tensor records the way torch.save does, with sizes chosen by the test."""

    def persistent_id(self, obj):
        if obj is _STORAGE:
            return ("storage", torch.FloatStorage, "0", "cpu", 4)
        return None


class _FakeTensor:
    def __init__(self, size, stride):
        self.size, self.stride = size, stride

    def __reduce__(self):
        return (
            torch._utils._rebuild_tensor_v2,
            (_STORAGE, 0, self.size, self.stride, False, collections.OrderedDict()),
        )


def _tensor_payload(size, stride) -> bytes:
    buffer = io.BytesIO()
    _TensorPickler(buffer, protocol=2).dump(collections.OrderedDict(w=_FakeTensor(size, stride)))
    return buffer.getvalue()


def test_tensor_record_round_trip(tmp_path):
    data = np.arange(4, dtype=np.float32)
    path = _zip_checkpoint(tmp_path / "ok.pth", _tensor_payload((2, 2), (1, 2)), {"data/0": data.tobytes()})
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], data.reshape(2, 2).T)


def test_storage_too_small_for_tensor(tmp_path):
    # A [3, 3] tensor with stride (3, 1) over a storage of only 4 floats.
    records = {"data/0": np.zeros(4, np.float32).tobytes()}
    path = _zip_checkpoint(tmp_path / "short.pth", _tensor_payload((3, 3), (3, 1)), records)
    with pytest.raises(CheckpointError, match="past the end"):
        load_torch_checkpoint(path)


def test_storage_record_of_wrong_length(tmp_path):
    records = {"data/0": np.zeros(3, np.float32).tobytes()}
    path = _zip_checkpoint(tmp_path / "short.pth", _tensor_payload((2, 2), (2, 1)), records)
    with pytest.raises(CheckpointError, match="expected 16"):
        load_torch_checkpoint(path)


def test_missing_storage_record(tmp_path):
    path = _zip_checkpoint(tmp_path / "missing.pth", _tensor_payload((2, 2), (2, 1)))
    with pytest.raises(CheckpointError, match="missing"):
        load_torch_checkpoint(path)


def test_truncated_legacy(checkpoints, tmp_path):
    _, _, _, paths = checkpoints
    data = paths["legacy"].read_bytes()
    broken = tmp_path / "legacy_cut.pth"
    broken.write_bytes(data[: len(data) - 10])
    with pytest.raises(CheckpointError, match="truncated|incomplete"):
        load_torch_checkpoint(broken)


@pytest.mark.parametrize(
    "content", [b"", b"hello world", b"PK\x03\x04garbage", json.dumps({"a": 1}).encode()]
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pth"):
        detect_format(path)
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_torch_checkpoint(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="data.pkl"):
        load_torch_checkpoint(path)
