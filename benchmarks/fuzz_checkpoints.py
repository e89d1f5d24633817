"""Fuzz the checkpoint readers with mutated real checkpoints and count the defects.

Seeds are written with torch (zip and legacy ``torch.save``), a Flax-layout msgpack writer and
NumPy (.npz); each case applies one mutation (byte flips, truncation, insertion, splice, huge size
fields, a mutated record inside a valid zip, an injected ``os.system`` global) and is read in a
worker process limited to 2 GiB of address space. A defect is any case that raises something
other than ``CheckpointError``, an error that does not name the file, takes more than 5 s,
imports a module or triggers a process / exec / network audit event.

    python benchmarks/fuzz_checkpoints.py [--cases 10000] [--seed 0]

Last line: ``fuzz: cases=N defects=M`` (target M = 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from checkpoint_fuzz import run_fuzz, write_seeds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="folder to keep the defect files in (default: a temp dir)")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        seeds = write_seeds(folder / "seeds")
        result = run_fuzz(seeds, args.cases, folder / "cases", seed=args.seed)
    seconds = time.perf_counter() - start
    print(f"seeds: {', '.join(f'{k} ({len(v)} B)' for k, v in sorted(seeds.items()))}")
    print(f"mutations: {dict(sorted(result.by_kind.items()))}")
    print(f"loaded {result.loaded}, rejected with CheckpointError {result.rejected}, "
          f"slowest case {result.max_seconds * 1e3:.1f} ms, {seconds:.0f} s in all")
    for outcome, count in collections.Counter(d["outcome"] for d in result.defects).most_common(10):
        print(f"  {count} x {outcome}")
    print(f"fuzz: cases={result.cases} defects={len(result.defects)}")


if __name__ == "__main__":
    main()
