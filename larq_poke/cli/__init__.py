"""The ``larq-poke`` command line: a thin shell over the library.

```
larq-poke summary pokebnn-1.0x [--input-size 224] [--json]
larq-poke weights list
larq-poke convert bnext-t -o bnext_t.tflite
```

Each subcommand is one module of this package (``summary``, ``weights``, ``bench``,
``convert``, ``deploy``, ``eval``, ``train``) with an ``add_subcommand(subparsers)`` function, listed in
``_SUBCOMMAND_MODULES``; :func:`larq_poke.zoo.resolve.load_model` turns a MODEL argument into a Keras model
for all of them. The library does the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

# Modules providing `add_subcommand(subparsers)`; each sets `func(args) -> int` as a default.
_SUBCOMMAND_MODULES = [
    "larq_poke.cli.summary",
    "larq_poke.cli.weights",
    "larq_poke.cli.bench",
    "larq_poke.cli.convert",
    "larq_poke.cli.deploy",
    "larq_poke.cli.eval",
    "larq_poke.cli.train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larq-poke",
        description="Binary neural networks for Keras/Larq: zoo models, costs, LCE deployment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(name).add_subcommand(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    # Keep TensorFlow's C++ start-up chatter out of command output (the user's setting wins).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"larq-poke {args.command}: error: {message}", file=sys.stderr)
        return 2


