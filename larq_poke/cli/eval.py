"""``larq-poke eval MODEL_OR_FILE --dataset DATASET``: top-1 / top-5 of a model on a data set.

```
larq-poke eval bnext-t --weights imagenet --dataset imagenet2012 --split validation --data-dir ~/imagenet
larq-poke eval model.tflite --dataset digits/ --split test --preprocessing plain
larq-poke eval my_model.h5 --dataset cifar10
larq-poke eval model.tflite --dataset digits/ --predictions tflite.npy   # top-1 class per image
```

MODEL_OR_FILE is a zoo name (with ``--weights``), a saved Keras model, or a ``.tflite`` (run in
the LCE interpreter). The preprocessing is ``--preprocessing``, else the one the zoo weights were
trained with (``bnext`` for BNext's ImageNet weights), for a ``.tflite`` written by
``larq-poke train`` the one stored in its metadata, for a Keras model file written by
``larq-poke train`` the one in the ``preprocessing.json`` beside it, else ``plain``. The last line is
``eval: top1=… top5=… n=…``. ``--predictions FILE.npy`` also saves every image's top-1 class,
in the data set's order: two files' predictions compared show how many a conversion changes.
"""

from __future__ import annotations

import json


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="top-1 / top-5 accuracy of a Keras model or .tflite on a data set",
        description="Evaluate a zoo model, a saved Keras model or an LCE .tflite on a TFDS data set "
        "or an image folder.",
    )
    parser.add_argument("model", metavar="MODEL_OR_FILE", help="zoo name, saved Keras model or .tflite")
    parser.add_argument("--dataset", required=True, help="TFDS name (imagenet2012, mnist, ...) or image folder")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--weights", default=None, help="weights of a zoo model: 'imagenet' or a file")
    parser.add_argument("--image-size", type=int, default=None, metavar="N")
    parser.add_argument("--preprocessing", default=None, help="pokebnn, bnext or plain")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data folder; for imagenet2012 also where the manual download is looked for")
    parser.add_argument("--manual-dir", default=None, help="folder with the ImageNet tar files")
    parser.add_argument("--predictions", default=None, metavar="FILE.npy",
                        help="save the top-1 class of every image, in the data set's order, as a NumPy file")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    parser.set_defaults(func=run)


def _preprocessing(args) -> str:
    if args.preprocessing:
        return args.preprocessing
    if args.weights == "imagenet":
        from larq_poke.zoo import weights

        try:
            entry = weights.get(args.model.lower(), "imagenet")
        except KeyError:
            return "plain"
        return entry.preprocessing or "plain"
    return "plain"


def _trained_preprocessing(path):
    """The preprocessing ``larq-poke train`` stored in the flatbuffer's metadata, if any."""
    from larq_poke.converters.metadata import PREPROCESSING_KEY, read_metadata
    from larq_poke.data import Preprocessing

    with open(path, "rb") as f:
        data = read_metadata(f.read(), PREPROCESSING_KEY)
    return Preprocessing.from_dict(json.loads(data)) if data else None


def _manual_dir(args):
    """ImageNet's tar files: --manual-dir, else the --data-dir the user pointed at them."""
    if args.manual_dir or not str(args.dataset).startswith("imagenet2012"):
        return args.manual_dir
    return args.data_dir


def run(args) -> int:
    from larq_poke.cli.output import emit_json, progress
    from larq_poke.data import dataset_info, load_dataset
    from larq_poke.train.evaluate import TFLiteClassifier, evaluate

    if args.predictions is not None and not args.predictions.endswith(".npy"):
        raise ValueError(f"--predictions {args.predictions!r}: give a file name ending in .npy")
    prep = _preprocessing(args)
    progress("eval", f"loading {args.model} ...")
    if args.model.endswith(".tflite"):
        model = TFLiteClassifier(args.model)
        size = args.image_size or int(model.input_shape[1])
        if not args.preprocessing:
            prep = _trained_preprocessing(args.model) or prep
    else:
        from larq_poke.zoo.resolve import load_model

        classes = None
        if args.weights != "imagenet" and not args.model.endswith((".h5", ".keras")):
            classes = dataset_info(args.dataset, data_dir=args.data_dir, manual_dir=_manual_dir(args)).num_classes
        model = load_model(args.model, weights=args.weights, input_size=args.image_size, num_classes=classes)
        if not args.preprocessing:
            from larq_poke.train.teachers import saved_preprocessing

            prep = saved_preprocessing(args.model) or prep
        size = args.image_size or model.inputs[0].shape[1]
        if size is None:
            raise ValueError("the model takes any input size; give --image-size.")
    progress("eval", f"evaluating on {args.dataset} ({args.split}) at {int(size)}x{int(size)} ...")
    data = load_dataset(args.dataset, args.split, preprocessing=prep, image_size=int(size),
                        batch_size=args.batch_size, data_dir=args.data_dir, manual_dir=_manual_dir(args))
    metrics = evaluate(model, data, with_predictions=args.predictions is not None)
    if args.predictions is not None:
        import numpy as np

        np.save(args.predictions, metrics.pop("predictions"))
        progress("eval", f"top-1 predictions saved to {args.predictions}")
    if args.json:
        name = prep if isinstance(prep, str) else prep.to_dict()
        emit_json(args, {**metrics, "preprocessing": name, "image_size": int(size)})
        return 0
    print(f"eval: top1={metrics['top1']:.4f} top5={metrics['top5']:.4f} n={metrics['n']}")
    return 0
