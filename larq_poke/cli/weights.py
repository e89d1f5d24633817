"""``larq-poke weights``: the pretrained-weights registry and its cache.

```
larq-poke weights list [--json]
larq-poke weights import bnext-t ~/Downloads/bnext_tiny_checkpoint.pth.tar
```

``import`` pre-seeds the cache from a file downloaded by hand (e.g. on a machine without access
to the download host): an official checkpoint is checked and converted to Keras weights by
:func:`larq_poke.zoo.import_weights`; a Keras ``.h5`` entry is copied into the cache as is,
sha256-checked when pinned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from larq_poke.cli.output import emit_json

__all__ = ["add_subcommand"]


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list pretrained weights or pre-seed the weights cache",
        description="Pretrained weights of the zoo models: what exists and the local cache.",
    )
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    actions.required = True

    list_parser = actions.add_parser("list", help="all registered weights and whether they are cached")
    list_parser.add_argument("--json", action="store_true", help="print the entries as JSON")
    list_parser.set_defaults(func=run_list)

    import_parser = actions.add_parser(
        "import",
        help="install a manually downloaded weights file into the cache",
        description=(
            "Install FILE as the weights of MODEL (e.g. bnext-t) in the cache, as if it had been "
            "downloaded. Official checkpoints are checked and converted first."
        ),
    )
    import_parser.add_argument("model", metavar="MODEL", help="zoo model name, e.g. bnext-t")
    import_parser.add_argument("file", metavar="FILE", help="the downloaded file")
    import_parser.add_argument("--variant", default="imagenet", help="weights variant (default: imagenet)")
    import_parser.add_argument("--json", action="store_true", help="print what was installed as JSON")
    import_parser.set_defaults(func=run_import)


def _registry():
    from larq_poke.zoo import registry, weights

    registry.list_models()  # imports every family module, which registers its weights
    return weights


def _ready_path(entry) -> Path:
    """The file a model loads for ``entry``: the converted Keras weights of an official checkpoint."""
    from larq_poke.zoo.loading import converted_weights_path

    weights = _registry()
    return weights.cached_path(entry) if entry.format == "keras_h5" else converted_weights_path(entry)


def run_list(args) -> int:
    weights = _registry()
    rows = []
    for entry in weights.list_weights():
        ready = _ready_path(entry)
        row = entry.to_dict()
        row["cached"] = ready.is_file()
        row["cache_path"] = str(ready)
        rows.append(row)
    if getattr(args, "json", False):
        emit_json(args, rows)
        return 0
    if not rows:
        print("No weights registered.")
        return 0
    header = ("model", "variant", "top-1", "format", "sha256", "cached", "url")
    table = [
        (
            r["model"],
            r["variant"],
            "-" if r["top1"] is None else f"{r['top1']:.1f} %",
            r["format"],
            "pinned" if r["sha256"] else "not pinned",
            "yes" if r["cached"] else "no",
            r["url"],
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table)]
    for line in (header, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
    print(f"\ncache: {weights.cache_dir()}  (set LARQ_POKE_CACHE to move it)")
    return 0


def run_import(args, variant: Optional[str] = None) -> int:
    weights = _registry()
    variant = variant or getattr(args, "variant", "imagenet")
    entry = weights.get(args.model.lower(), variant)
    path = os.fspath(args.file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist or is not a file.")
    if entry.format == "keras_h5":
        dest = weights.install_file(entry, path)
    else:
        from larq_poke.zoo.loading import import_weights

        dest = import_weights(entry, path)
    if getattr(args, "json", False):
        emit_json(args, {"model": entry.model, "variant": entry.variant, "source": path, "installed": str(dest)})
    else:
        print(f"{entry.model}/{entry.variant}: installed {path} -> {dest}")
    return 0
