"""The checkpoint readers on corrupt input: every case loads or raises ``CheckpointError``.

A mutation fuzz over real files (``torch.save`` zip and legacy checkpoints, Flax msgpack, .npz;
see tests/checkpoint_fuzz.py) in a memory-limited worker process, plus hand-made files whose size
fields claim far more data than they hold. ``benchmarks/fuzz_checkpoints.py`` runs the same fuzz
with 10,000+ cases.
"""

import io
import struct
import zipfile

import msgpack
import numpy as np
import pytest
from checkpoint_fuzz import MUTATIONS, run_fuzz, write_seeds

from larq_poke.checkpoints import CheckpointError, UnsafeCheckpointError, read_checkpoint, read_npz

pytest.importorskip("torch", reason="torch (CPU) is a test dependency: pip install torch==2.13.0")


def test_fuzz_every_case_loads_or_raises_checkpoint_error(tmp_path):
    seeds = write_seeds(tmp_path / "seeds")
    result = run_fuzz(seeds, 700, tmp_path / "cases", seed=2026, time_limit=5.0)
    assert result.cases == 700
    assert set(result.by_kind) == set(MUTATIONS)
    assert result.rejected > 300  # the mutations do break the files
    assert not result.defects, result.defects[:5]


def _zip_with(tmp_path, name, records):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for record, payload in records.items():
            archive.writestr(record, payload)
    return path


def test_pickle_length_field_past_the_end_is_not_allocated(tmp_path):
    # BINBYTES8 claiming 2**60 bytes: the C unpickler would allocate that before reading.
    payload = b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"abc."
    path = _zip_with(tmp_path, "huge.pth", {"huge/data.pkl": payload})
    with pytest.raises(CheckpointError, match="huge.pth.*(truncated|corrupted)"):
        read_checkpoint(path)


def test_pickle_memo_index_far_beyond_the_pickle(tmp_path):
    payload = b"\x80\x02]r" + struct.pack("<I", 1_500_000_000) + b"."
    path = _zip_with(tmp_path, "memo.pth", {"memo/data.pkl": payload})
    with pytest.raises(CheckpointError, match="memo index"):
        read_checkpoint(path)


def test_storage_numel_larger_than_its_record(tmp_path):
    # A persistent id naming a FloatStorage of 2**40 elements whose record holds 8 bytes.
    body = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(("
        b"X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
        + b"\x8a\x06" + (2**40).to_bytes(6, "little")
        + b"tQK\x00K\x02\x85K\x01\x85\x89NtR."
    )
    path = _zip_with(tmp_path, "numel.pth", {"numel/data.pkl": body, "numel/data/0": b"\x00" * 8})
    with pytest.raises(CheckpointError, match="numel.pth.*(8 bytes|at most)"):
        read_checkpoint(path)


def test_os_system_global_is_refused(tmp_path):
    payload = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    path = _zip_with(tmp_path, "evil.pth", {"evil/data.pkl": payload})
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        read_checkpoint(path)


def test_npy_header_shape_beyond_the_data(tmp_path):
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20, 2**10)}
    )
    path = _zip_with(tmp_path, "huge.npz", {"w.npy": stream.getvalue() + b"\x00" * 16})
    with pytest.raises(CheckpointError, match="huge.npz.*header says"):
        read_npz(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="non-numeric dtype"):
        read_npz(path)


def test_flax_array_shape_beyond_its_bytes(tmp_path):
    ext = msgpack.ExtType(1, msgpack.packb(([2**31, 2**31], "float32", b"\x00" * 8), use_bin_type=True))
    path = tmp_path / "checkpoint_1"
    path.write_bytes(msgpack.packb({"params": {"w": ext}}, use_bin_type=True))
    with pytest.raises(CheckpointError, match="checkpoint_1.*wrong byte count"):
        read_checkpoint(path)


def test_legacy_storage_header_past_the_end(tmp_path):
    import torch

    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(4)}, path, _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    # The storage's element count is the 8 bytes before its 16 data bytes at the end of the file.
    data[-24:-16] = struct.pack("<q", 2**40)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="legacy.pth.*elements"):
        read_checkpoint(path)
