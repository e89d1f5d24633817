"""``larq-poke summary MODEL``: the Keras summary and cost table of a zoo model or a saved model.

```
larq-poke summary pokebnn-1.0x
larq-poke summary bnext-t --input-size 160 --json
larq-poke summary my_model.h5
larq-poke summary bineal-1.0x --cycles        # plus the systolic-array cycle estimate
```
"""

from __future__ import annotations

import os


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="print a model's Keras summary and ACE / BOPs / OPs cost table",
        description="Build a zoo model (or load a saved Keras model) and print its summary "
        "followed by the larq-poke cost table.",
    )
    parser.add_argument("model", help="zoo name (e.g. pokebnn-1.0x, bnext-t) or a saved .h5 / SavedModel path")
    parser.add_argument("--input-size", type=int, default=None, help="square input size (default: the model's own, 224 for zoo models)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--float-bits", type=int, default=16, help="bits charged to float operands in ACE (default 16, bf16)")
    parser.add_argument("--json", action="store_true", help="print the cost report as JSON only")
    parser.add_argument("--all-layers", action="store_true", help="list layers without MACs too")
    parser.add_argument("--cycles", action="store_true",
                        help="add the execution-cycle estimate on the default 64x64 systolic array "
                             "(larq_poke.cycles)")
    parser.add_argument("--as-bits", type=int, default=None, metavar="N",
                        help="with --cycles: cost float operands as N-bit (8: the model's 8-bit version)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from larq_poke.cli.output import emit_json, progress
    from larq_poke.zoo.resolve import load_model
    from larq_poke.cost import profile

    progress("summary", f"building {args.model} ...")
    model = load_model(args.model, input_size=args.input_size, num_classes=args.num_classes)
    input_shape = None
    if args.input_size is not None and os.path.exists(args.model):
        input_shape = (args.input_size, args.input_size, model.inputs[0].shape[-1])
    report = profile(model, input_shape=input_shape, float_bits=args.float_bits)
    cycles = None
    if args.cycles:
        from larq_poke.cycles import estimate_cycles

        cycles = estimate_cycles(model, input_shape=input_shape, float_bits=args.float_bits, as_bits=args.as_bits)
    elif args.as_bits is not None:
        raise ValueError("--as-bits only applies with --cycles")
    if args.json:
        emit_json(args, {**report.to_dict(), **({"cycles": cycles.to_dict()} if cycles else {})})
        return 0
    import tensorflow as tf

    tf.keras.Model.summary(model, line_length=110)
    print(report.to_text(all_layers=args.all_layers))
    if cycles is not None:
        print(cycles.to_text())
    return 0
