"""The ``larq-poke`` command line: a thin shell over the library.

```
larq-poke summary pokebnn-1.0x [--input-size 224] [--json]
larq-poke weights list
```

Each subcommand lives in the module that owns its concept and registers itself through an
``add_subcommand(subparsers)`` function listed in ``_SUBCOMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

# Modules providing `add_subcommand(subparsers)`; each sets `func(args) -> int` as a default.
_SUBCOMMAND_MODULES = [
    "larq_poke.commands.summary",
    "larq_poke.commands.weights",
    "larq_poke.commands.bench",
    "larq_poke.commands.convert",
    "larq_poke.commands.deploy",
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
