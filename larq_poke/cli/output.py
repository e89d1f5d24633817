"""What the command line writes where: results on stdout, progress on stderr, exit codes.

Every command prints its result on stdout (with ``--json``, only JSON) and its progress on
stderr as ``larq-poke COMMAND: message``; TensorFlow's C++ start-up logging and Python warnings
stay silent unless ``--verbose``.

```python
from larq_poke.cli.output import progress, emit_json
progress("convert", "converting ...")     # stderr: "larq-poke convert: converting ..."
emit_json(args, {"top1": 0.71})           # stdout, even while the command's prints go to stderr
```

Exit codes:

| code | meaning |
|---|---|
| 0 | success |
| 1 | the command ran but a check failed (``convert --strict``, a download or checksum, a NaN loss) |
| 2 | bad usage: unknown model or option, missing file, input the command cannot take |
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "quiet_tensorflow", "progress", "emit_json"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def quiet_tensorflow(verbose: bool) -> None:
    """Silence TensorFlow's C++ logging (oneDNN, CUDA stubs, cuFFT/cuDNN factories), its Python
    logger and library warnings; with ``verbose``, let everything through. Call before
    TensorFlow is imported: its C++ log level is read once, at import."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        logging.getLogger("larq_poke").setLevel(logging.INFO)
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    for module in ("tensorflow", "tf_keras", "keras", "larq", "larq_zoo", "larq_compute_engine",
                   "tensorflow_datasets", "absl", "h5py", "numpy"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")


def progress(command: str, message: str) -> None:
    """``larq-poke COMMAND: message`` on stderr, at once."""
    print(f"larq-poke {command}: {message}", file=sys.stderr, flush=True)


def emit_json(args, data) -> None:
    """Write ``data`` as JSON to the command's real stdout (with ``--json``, everything else a
    command prints is sent to stderr)."""
    stream = getattr(args, "stdout", None) or sys.stdout
    stream.write(json.dumps(data, indent=2, default=str) + "\n")
    stream.flush()
