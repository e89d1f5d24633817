"""``larq-poke convert``: a Keras / Larq model to an LCE ``.tflite``, with the conversion report.

```
larq-poke convert pokebnn-1.0x -o pokebnn.tflite --report pokebnn.json
larq-poke convert my_model.h5 -o my_model.tflite --strict
larq-poke convert trained_weights.h5 --arch pokebnn-0.5x -o pokebnn.tflite --int8
larq-poke convert runs/bineal/model.keras --int8 --sample-images digits/ -o bineal.tflite
larq-poke convert quicknet -o quicknet.tflite        # larq-zoo's QuickNet (random weights)
```

MODEL_OR_WEIGHTS is a zoo name (``larq_poke.zoo.list_models()``, or the larq-zoo reference
``quicknet`` / ``quicknet-small`` / ``quicknet-large``), a saved Keras model (``.h5`` / ``.keras``
file or SavedModel folder), or a weights file together with ``--arch NAME``. Progress goes to
stderr, the report to stdout (``--json`` for the JSON form).
"""

from __future__ import annotations

import os
import time

from larq_poke.cli.output import emit_json, progress

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
                        help="fail (exit 1, no .tflite written) unless every binary layer "
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
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="classifier outputs of a zoo model built by name or with --arch (e.g. for a "
                             "weights file trained on N classes; default: the constructor's; a saved "
                             "model keeps its own)")
    parser.add_argument("--sample-images", metavar="DATASET", default=None,
                        help="TFDS name or image folder whose first images calibrate the int8 "
                             "ranges and check parity (default: seeded random inputs)")
    parser.add_argument("--sample-split", default="train", help="split of --sample-images (default: train)")
    parser.add_argument("--samples", type=int, default=32, help="how many sample images (default: 32)")
    parser.add_argument("--preprocessing", default=None,
                        help="preprocessing of the sample images (default: the training run's, "
                             "from preprocessing.json beside the model, else plain)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory for --sample-images")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def load_model(args):
    """The Keras model named by the command line arguments."""
    from larq_poke.zoo.resolve import load_model as load

    return load(args.model, arch=args.arch, weights=args.weights, input_size=args.input_size,
                num_classes=args.num_classes)


def sample_images(args, model):
    """The first ``--samples`` images of ``--sample-images``, preprocessed as the model was
    trained (``--preprocessing``, else the run's ``preprocessing.json``, else ``plain``) at the
    model's input size; ``None`` without ``--sample-images``."""
    if not args.sample_images:
        return None
    from larq_poke.data import load_dataset
    from larq_poke.train.teachers import saved_preprocessing

    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    size = model.inputs[0].shape[1]
    if size is None or model.inputs[0].shape[2] != size:
        raise ValueError("--sample-images needs a model with a fixed square input size; give --input-size")
    prep = args.preprocessing or (saved_preprocessing(args.model) if os.path.exists(args.model) else None) or "plain"
    data = load_dataset(args.sample_images, args.sample_split, preprocessing=prep, image_size=int(size),
                        batch_size=args.samples, data_dir=args.data_dir)
    batch = next(iter(data), None)
    if batch is None:
        raise ValueError(f"--sample-images {args.sample_images}: split {args.sample_split!r} has no images")
    images = batch[0].numpy()
    name = prep if isinstance(prep, str) else prep.name
    progress("convert", f"{len(images)} sample images from {args.sample_images} ({args.sample_split}), "
                        f"preprocessing {name!r}")
    return images


def _with_training_preprocessing(source: str, flatbuffer: bytes) -> bytes:
    """The flatbuffer with the preprocessing a ``larq-poke train`` output was trained with in its
    metadata (``preprocessing.json`` beside the model file), as the trainer's own conversion
    writes it, so that ``larq-poke eval model.tflite`` uses it too."""
    import json

    from larq_poke.converters.metadata import PREPROCESSING_KEY, add_metadata
    from larq_poke.train.teachers import saved_preprocessing

    prep = saved_preprocessing(source) if os.path.exists(source) else None
    if prep is None:
        return flatbuffer
    progress("convert", f"preprocessing {prep.name!r} from the training run stored in the file's metadata")
    return add_metadata(flatbuffer, PREPROCESSING_KEY, json.dumps(prep.to_dict()).encode())


def run(args) -> int:
    from larq_poke.cli.models import converter_log
    from larq_poke.converters.conversion_report import StrictConversionError
    from larq_poke.converters.lce import convert

    start = time.perf_counter()
    progress("convert", f"loading {args.model} ...")
    model = load_model(args)
    progress("convert", f"loaded {model.name!r} ({model.count_params():,} parameters) in "
              f"{time.perf_counter() - start:.1f} s")

    failure = None
    try:
        with converter_log("larq-poke convert"):
            result = convert(model, int8=args.int8, target=args.target, strict=args.strict,
                             verify=args.verify, sample_inputs=sample_images(args, model))
    except StrictConversionError as err:
        failure, result = err, err.result

    report = result.report
    if args.report:
        with open(args.report, "w") as f:
            f.write(report.to_json())
        progress("convert", f"wrote the report to {args.report}")
    if failure is not None:
        if args.json:
            emit_json(args, {**report.to_dict(), "output": None, "strict_failure": str(failure)})
        else:
            print(report.to_text())
        raise failure

    output = args.output or f"{model.name}.tflite"
    flatbuffer = _with_training_preprocessing(args.model, result.flatbuffer)
    with open(output, "wb") as f:
        f.write(flatbuffer)
    progress("convert", f"wrote {output} ({len(flatbuffer):,} bytes) in "
              f"{time.perf_counter() - start:.1f} s")
    if args.json:
        emit_json(args, {**report.to_dict(), "output": output})
    else:
        print(report.to_text())
    return 0
