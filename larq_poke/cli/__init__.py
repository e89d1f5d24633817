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
import contextlib
import importlib
import sys
from typing import List, Optional

from larq_poke.cli.output import EXIT_FAILED, EXIT_USAGE, quiet_tensorflow

# Modules providing `add_subcommand(subparsers)`; each sets `func(args) -> int` as a default.
_SUBCOMMAND_MODULES = [
    "larq_poke.cli.summary",
    "larq_poke.cli.weights",
    "larq_poke.cli.bench",
    "larq_poke.cli.convert",
    "larq_poke.cli.deploy",
    "larq_poke.cli.eval",
    "larq_poke.cli.train",
    "larq_poke.cli.plot",
]


def _version() -> str:
    from importlib import metadata

    versions = []
    for package in ("tensorflow", "larq", "larq-compute-engine"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    from larq_poke import __version__

    return f"larq-poke {__version__} ({', '.join(versions)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larq-poke",
        description="Binary neural networks for Keras/Larq: zoo models, costs, LCE deployment.",
        epilog="Exit codes: 0 success, 1 a check failed (e.g. convert --strict), 2 bad usage. "
        "Every command takes --json (only JSON on stdout); progress goes to stderr.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's C++ logging and library warnings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(name).add_subcommand(subparsers)
    return parser


def _exit_code(err: BaseException) -> int:
    from larq_poke.converters.conversion_report import StrictConversionError

    if isinstance(err, StrictConversionError):
        return EXIT_FAILED
    if isinstance(err, (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Before any subcommand module imports TensorFlow: its C++ log level is read at import.
    quiet_tensorflow(verbose=any(a in ("-v", "--verbose") for a in argv))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help / --version: 0; usage errors: 2 (argparse's own)
        return int(exit_.code or 0)
    args.stdout = sys.stdout
    # With --json only JSON goes to stdout: whatever else the command (or Keras' progress bars)
    # prints goes to stderr, and the command writes its JSON with `emit_json`.
    redirect = contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) else contextlib.nullcontext()
    try:
        with redirect:
            return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError, RuntimeError,
            OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"larq-poke {args.command}: error: {message}", file=sys.stderr)
        return _exit_code(err)
