"""``larq-poke convert``: a Keras / Larq model to an LCE ``.tflite``, with the conversion report.

```
larq-poke convert pokebnn-1.0x -o pokebnn.tflite --report pokebnn.json
larq-poke convert my_model.h5 -o my_model.tflite --strict
larq-poke convert trained_weights.h5 --arch pokebnn-0.5x -o pokebnn.tflite --int8
larq-poke convert quicknet -o quicknet.tflite        # larq-zoo's QuickNet (random weights)
```

MODEL_OR_WEIGHTS is a zoo name (``larq_poke.zoo.list_models()``, or the larq-zoo reference
``quicknet`` / ``quicknet-small`` / ``quicknet-large``), a saved Keras model (``.h5`` / ``.keras``
file or SavedModel folder), or a weights file together with ``--arch NAME``. Progress goes to
stderr, the report to stdout (``--json`` for the JSON form).
"""

from __future__ import annotations

import logging
import os
import sys
import time

# larq-zoo's reference models, for comparisons (random weights unless --weights is given:
# larq-zoo's default would download the ImageNet weights).
_LARQ_ZOO_MODELS = {
    "quicknet": "QuickNet",
    "quicknet-small": "QuickNetSmall",
    "quicknet-large": "QuickNetLarge",
}


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a model to an LCE .tflite and report what became of its binary layers",
        description=(
            "Convert a Larq model with the Larq Compute Engine converter, then prove the result: "
            "op census, the LceBconv2d each binary layer became (or why not), bit-packed vs "
            "float outputs, float ops between binary convs, file vs packed size, and parity "
            "with Keras in the LCE interpreter."
        ),
    )
    parser.add_argument("model", metavar="MODEL_OR_WEIGHTS",
                        help="zoo name, saved Keras model (.h5/.keras/SavedModel folder), or a "
                             "weights file with --arch")
    parser.add_argument("-o", "--output", metavar="FILE.tflite", default=None,
                        help="where to write the flatbuffer (default: <model name>.tflite)")
    parser.add_argument("--report", metavar="FILE.json", default=None,
                        help="also write the report as JSON")
    parser.add_argument("--int8", action="store_true",
                        help="require int8 for the non-binary layers (needs fake-quant ops)")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 2, no .tflite written) unless every binary layer "
                             "became an LceBconv2d")
    parser.add_argument("--target", choices=("arm", "xcore"), default="arm",
                        help="LCE target (default: arm)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the parity check in the LCE interpreter")
    parser.add_argument("--arch", metavar="NAME", default=None,
                        help="zoo architecture to load a weights file into")
    parser.add_argument("--weights", metavar="PATH|none", default=None,
                        help="weights for a zoo name (default: the constructor's default; "
                             "'none' for random weights)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="build zoo models for N x N inputs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def _progress(message: str) -> None:
    print(f"larq-poke convert: {message}", file=sys.stderr, flush=True)


def _zoo_kwargs(args) -> dict:
    kwargs = {}
    if args.weights is not None:
        kwargs["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.input_size:
        kwargs["input_shape"] = (args.input_size, args.input_size, 3)
    return kwargs


def _build_zoo(name: str, kwargs: dict):
    key = name.lower().replace("_", "-")
    if key in _LARQ_ZOO_MODELS:
        import larq_zoo

        kwargs.setdefault("weights", None)
        return getattr(larq_zoo.sota, _LARQ_ZOO_MODELS[key])(**kwargs)
    try:
        from larq_poke.zoo import build
    except ImportError as err:
        raise ValueError(f"{name!r} is not a file and the zoo cannot be imported ({err})")
    try:
        return build(name, **kwargs)
    except KeyError as err:
        known = ", ".join(sorted(_LARQ_ZOO_MODELS))
        raise ValueError(f"{name!r} is neither a file nor a zoo model: {err.args[0]} "
                         f"(larq-zoo references: {known})") from None


def _is_weights_only(path: str) -> bool:
    """A Keras weights file (no model config), as opposed to a saved model."""
    if os.path.isdir(path):
        return False  # a SavedModel folder
    if path.endswith(".weights.h5"):
        return True
    if path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            return "model_config" not in f.attrs
    return False


def _register_custom_objects() -> None:
    """Import the modules whose layers saved models may use (they register themselves)."""
    import importlib

    for name in ("larq_poke.layers", "larq_poke.zoo"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def load_model(args):
    """The Keras model named by the command line arguments."""
    import larq  # noqa: F401  (registers Larq's layers and quantizers as Keras custom objects)
    import tensorflow as tf

    source = args.model
    if os.path.exists(source):
        if args.arch or _is_weights_only(source):
            if not args.arch:
                raise ValueError(f"{source} holds weights only; name the architecture with --arch")
            kwargs = _zoo_kwargs(args)
            kwargs["weights"] = source
            return _build_zoo(args.arch, kwargs)
        _register_custom_objects()
        return tf.keras.models.load_model(source, compile=False)
    if args.arch:
        raise FileNotFoundError(f"weights file {source!r} does not exist")
    if source.endswith((".h5", ".keras", ".tflite", ".hdf5")) or os.sep in source:
        raise FileNotFoundError(f"model file {source!r} does not exist")
    return _build_zoo(source, _zoo_kwargs(args))


def run(args) -> int:
    from larq_poke.converters.conversion_report import StrictConversionError
    from larq_poke.converters.lce import convert

    start = time.perf_counter()
    _progress(f"loading {args.model} ...")
    model = load_model(args)
    _progress(f"loaded {model.name!r} ({model.count_params():,} parameters) in "
              f"{time.perf_counter() - start:.1f} s")

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("larq-poke convert: %(message)s"))
    logger = logging.getLogger("larq_poke.converters")
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # TensorFlow may have configured the root logger too
    failure = None
    try:
        result = convert(model, int8=args.int8, target=args.target, strict=args.strict,
                         verify=args.verify)
    except StrictConversionError as err:
        failure, result = err, err.result
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]

    report = result.report
    if args.report:
        with open(args.report, "w") as f:
            f.write(report.to_json())
        _progress(f"wrote the report to {args.report}")
    print(report.to_json() if args.json else report.to_text())
    if failure is not None:
        raise failure

    output = args.output or f"{model.name}.tflite"
    result.save(output)
    _progress(f"wrote {output} ({len(result.flatbuffer):,} bytes) in "
              f"{time.perf_counter() - start:.1f} s")
    return 0
