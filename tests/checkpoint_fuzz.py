"""Mutation fuzzing of the checkpoint readers (used by tests/test_checkpoints_fuzz.py and
benchmarks/fuzz_checkpoints.py).

Seeds are real files: ``torch.save`` checkpoints (zip and legacy formats), Flax msgpack files as
``flax.serialization`` lays them out, and ``.npz`` archives. Each case is a seed with one
mutation: byte flips, truncation, insertion, a splice from another seed, a size-like field
overwritten with a huge value, or, inside a still-valid zip, a mutated ``data.pkl`` / ``.npy``
record (including an injected ``os.system`` global).

Cases run in a worker process that imports only ``larq_poke.checkpoints`` and has its address
space limited, so a reader that trusts a size field fails with ``MemoryError`` instead of taking
the machine down. A case passes when the reader returns or raises ``CheckpointError``, within the
time limit, with no new module imported and no process, exec or network audit event. Anything
else is a defect.
"""

from __future__ import annotations

import io
import json
import os
import random
import select
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import msgpack
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]

MUTATIONS = ("flip", "truncate", "insert", "splice", "huge", "record", "inject_global")
_HUGE = [b"\xff\xff\xff\x7f", b"\xff\xff\xff\xff", b"\x00\x00\x00\x40\x00\x00\x00\x00", b"\xff" * 8]


# ------------------------------------------------------------------------------------------------
# Seeds.


def _flax_array(array):
    array = np.ascontiguousarray(array)
    payload = msgpack.packb((list(array.shape), array.dtype.name, array.tobytes()), use_bin_type=True)
    return msgpack.ExtType(1, payload)


def _flax_scalar(value):
    return msgpack.ExtType(3, msgpack.packb((value.dtype.name, value.tobytes()), use_bin_type=True))


def write_seeds(folder: Path) -> Dict[str, bytes]:
    """Write the seed checkpoints with torch, msgpack and NumPy; returns ``{name: bytes}``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=gen)
    state = {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
        "bn.running_mean": torch.randn(4, generator=gen).half(),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "view.a": base[:3],
        "view.t": base.t(),
        "mask": torch.tensor([True, False, True]),
        "bf16": torch.randn(5, generator=gen).to(torch.bfloat16),
    }
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    torch.save(state, folder / "zip.pth")
    torch.save({"epoch": 3, "state_dict": module.state_dict(), "arr": np.arange(4.0)}, folder / "train.pth.tar")
    torch.save(state, folder / "legacy.pth", _use_new_zipfile_serialization=False)

    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32)
    flax_state = {
        "step": 100,
        "params": {"conv": {"kernel": _flax_array(kernel), "bias": _flax_array(np.zeros(4, np.float32))}},
        "mutable_vars": {
            "batch_stats": {"bn": {"mean": _flax_array(np.ones(4, np.float16))}},
            "big": {
                "__msgpack_chunked_array__": True,
                "shape": [2, 4],
                "chunks": {"0": _flax_array(np.arange(4.0)), "1": _flax_array(np.arange(4.0))},
            },
        },
        "scale": _flax_scalar(np.float32(0.5)),
        "cplx": msgpack.ExtType(2, msgpack.packb((1.0, 2.0))),
    }
    (folder / "checkpoint_100").write_bytes(msgpack.packb(flax_state, use_bin_type=True))
    np.savez(folder / "plain.npz", a=np.arange(12, dtype=np.int32).reshape(3, 4), b=kernel)
    np.savez_compressed(folder / "packed.npz", w=np.asfortranarray(kernel[0]), s=np.float64(2.0))
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------------------
# Mutations.


def _rezip(data: bytes, rng: random.Random) -> bytes:
    """Mutate one record (data.pkl or a .npy) inside an otherwise valid zip archive."""
    source = zipfile.ZipFile(io.BytesIO(data))
    names = source.namelist()
    preferred = [n for n in names if n.endswith(("data.pkl", ".npy"))] or names
    target = rng.choice(preferred)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            payload = source.read(name)
            if name == target:
                payload = _bytes_mutation(payload, rng)
            archive.writestr(name, payload)
    return out.getvalue()


def _inject_global(data: bytes, rng: random.Random) -> bytes:
    """Put a GLOBAL opcode naming os.system (and a call) into a pickle, zipped or not."""
    evil = b"cos\nsystem\n(S'echo pwned'\ntR"
    if data.startswith(b"PK"):
        source = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name in source.namelist():
                payload = source.read(name)
                if name.endswith("data.pkl"):
                    at = rng.randrange(2, max(3, len(payload) - 1))
                    payload = payload[:at] + evil + payload[at:]
                archive.writestr(name, payload)
        return out.getvalue()
    at = rng.randrange(2, max(3, len(data) - 1))
    return data[:at] + evil + data[at:]


def _bytes_mutation(data: bytes, rng: random.Random, others=()) -> bytes:
    """A random byte-level mutation (no zip-aware ones)."""
    kinds = ["flip", "truncate", "insert", "huge"] + (["splice"] if others else [])
    return mutate(data, rng.choice(kinds), rng, others)


def mutate(data: bytes, kind: str, rng: random.Random, others=()) -> bytes:
    """One mutation of ``kind`` (one of :data:`MUTATIONS`) applied to ``data``."""
    if kind == "record" and data.startswith(b"PK"):
        return _rezip(data, rng)
    if kind == "inject_global" and (data.startswith(b"PK") or data[:1] == b"\x80"):
        return _inject_global(data, rng)
    if kind in ("record", "inject_global"):
        kind = "huge"
    buf = bytearray(data)
    if not buf:
        return bytes(rng.randbytes(rng.randrange(1, 16)))
    if kind == "splice" and others:
        other = rng.choice(others)
        start = rng.randrange(len(other))
        chunk = other[start : start + rng.randrange(1, 512)]
        at = rng.randrange(len(buf) + 1)
        buf[at : at + rng.randrange(0, 64)] = chunk
        return bytes(buf)
    if kind == "flip":
        for _ in range(rng.randrange(1, 9)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == "truncate":
        return bytes(buf[: rng.randrange(len(buf))])
    if kind == "insert":
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.randbytes(rng.randrange(1, 65))
        return bytes(buf)
    value = rng.choice(_HUGE)  # huge
    at = rng.randrange(max(1, len(buf) - len(value)))
    buf[at : at + len(value)] = value
    return bytes(buf)


# ------------------------------------------------------------------------------------------------
# The worker: reads one path per line from stdin, answers one JSON line per case.

_WORKER = r"""
import json, resource, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from larq_poke.checkpoints import CheckpointError, read_checkpoint
# Standard-library modules that zipfile and NumPy's .npy header parser load lazily on some inputs
# (codecs for zip file names and pickle strings, NumPy's legacy header filter): loaded up front so that the
# "no module imported during a case" check stays strict for everything else.
import encodings.cp437, encodings.latin_1, encodings.raw_unicode_escape, encodings.unicode_escape  # noqa: E401,F401
import tokenize, unicodedata  # noqa: E401,F401
flagged = []
_WATCH = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
          "exec", "socket.connect", "ctypes.dlopen", "os.remove", "os.rename")
def hook(event, args):
    if event in _WATCH:
        flagged.append(event)
sys.addaudithook(hook)
for line in sys.stdin:
    path = line.strip()
    before = set(sys.modules)
    flagged.clear()
    start = time.perf_counter()
    try:
        read_checkpoint(path)
        outcome = "loaded"
    except CheckpointError as err:
        outcome = "error" if str(err).startswith(path) or path in str(err) else "unnamed: " + str(err)[:200]
    except BaseException as err:
        outcome = f"defect: {type(err).__name__}: {str(err)[:200]}"
    seconds = time.perf_counter() - start
    new_modules = sorted(set(sys.modules) - before)
    print(json.dumps({"outcome": outcome, "seconds": seconds, "modules": new_modules,
                      "events": sorted(set(flagged))}), flush=True)
"""


@dataclass
class FuzzResult:
    cases: int = 0
    loaded: int = 0
    rejected: int = 0
    defects: List[dict] = field(default_factory=list)
    max_seconds: float = 0.0
    by_kind: Dict[str, int] = field(default_factory=dict)


class _Worker:
    def __init__(self, memory_bytes: int):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        # Warm up: imports happen before the first timed case.
        self.ask(os.devnull, 120.0)

    def ask(self, path: str, timeout: float):
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"outcome": "defect: worker died", "seconds": 0.0}

    def close(self):
        self.proc.kill()
        self.proc.wait()


def run_fuzz(
    seeds: Dict[str, bytes],
    cases: int,
    folder: Path,
    *,
    seed: int = 0,
    time_limit: float = 5.0,
    memory_bytes: int = 2 << 30,
) -> FuzzResult:
    """Run ``cases`` mutated copies of ``seeds`` through the readers; see the module docstring."""
    rng = random.Random(seed)
    names = sorted(seeds)
    result = FuzzResult()
    folder.mkdir(parents=True, exist_ok=True)
    worker = _Worker(memory_bytes)
    try:
        for index in range(cases):
            name = names[index % len(names)]
            kind = MUTATIONS[(index // len(names)) % len(MUTATIONS)]
            others = [seeds[n] for n in names if n != name]
            data = mutate(seeds[name], kind, rng, others)
            path = folder / f"case{index % 64}_{name}"
            path.write_bytes(data)
            answer = worker.ask(str(path), time_limit)
            result.cases += 1
            result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
            if answer is None:
                answer = {"outcome": f"defect: no answer within {time_limit} s", "seconds": time_limit}
                worker.close()
                worker = _Worker(memory_bytes)
            result.max_seconds = max(result.max_seconds, answer["seconds"])
            outcome = answer["outcome"]
            if outcome.startswith("defect") and "worker died" in outcome:
                worker.close()
                worker = _Worker(memory_bytes)
            if answer.get("modules"):
                outcome = f"defect: imported {answer['modules'][:5]}"
            if answer.get("events"):
                outcome = f"defect: audit events {answer['events']}"
            if answer["seconds"] > time_limit:
                outcome = f"defect: took {answer['seconds']:.1f} s"
            if outcome == "loaded":
                result.loaded += 1
            elif outcome == "error":
                result.rejected += 1
            else:
                keep = folder / f"defect{len(result.defects)}_{name}"
                keep.write_bytes(data)
                result.defects.append({"seed": name, "kind": kind, "outcome": outcome, "file": str(keep)})
    finally:
        worker.close()
    return result

