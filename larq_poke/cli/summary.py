"""``larq-poke summary MODEL``: the Keras summary and cost table of a zoo model or a saved model.

```
larq-poke summary pokebnn-1.0x
larq-poke summary bnext-t --input-size 160 --json
larq-poke summary my_model.h5
larq-poke summary bineal-1.0x --cycles        # plus the systolic-array cycle estimate
larq-poke summary bineal-1.0x --cycles --array 32x32 --pe-bits 4 --buffer-kib 256
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
    array = parser.add_argument_group("systolic array (with --cycles; defaults: larq_poke.cycles.SystolicArray)")
    array.add_argument("--array", default=None, metavar="ROWSxCOLS", help="PE array size (default 64x64)")
    array.add_argument("--pe-bits", type=int, default=None, help="multiplier bits per PE, and XNOR lanes (default 8)")
    array.add_argument("--buffer-kib", type=int, default=None,
                       help="on-chip activation buffer in KiB (default 512; 0: none, every input re-read per column tile)")
    array.add_argument("--dram-bytes-per-cycle", type=int, default=None, help="off-chip bandwidth (default 16)")
    parser.set_defaults(func=run)


def _array(args):
    """The SystolicArray the options describe; ValueError naming a bad one."""
    from larq_poke.cycles import SystolicArray

    settings = {}
    for option, value in (("--float-bits", args.float_bits), ("--as-bits", args.as_bits), ("--pe-bits", args.pe_bits),
                          ("--dram-bytes-per-cycle", args.dram_bytes_per_cycle)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value}")
    if args.buffer_kib is not None and args.buffer_kib < 0:
        raise ValueError(f"--buffer-kib must be >= 0 (0: no on-chip buffer), got {args.buffer_kib}")
    if args.array is not None:
        rows, _, cols = args.array.lower().partition("x")
        digits = set("0123456789")
        if not (rows and cols and set(rows) <= digits and set(cols) <= digits and int(rows) > 0 and int(cols) > 0):
            raise ValueError(f"--array must be ROWSxCOLS, e.g. 64x64, got {args.array!r}")
        settings.update(rows=int(rows), cols=int(cols))
    if args.pe_bits is not None:
        settings["pe_bits"] = args.pe_bits
    if args.buffer_kib is not None:
        settings["buffer_bytes"] = args.buffer_kib * 1024
    if args.dram_bytes_per_cycle is not None:
        settings["dram_bytes_per_cycle"] = args.dram_bytes_per_cycle
    return SystolicArray(**settings), settings


def run(args) -> int:
    from larq_poke.cli.output import emit_json, progress
    from larq_poke.zoo.resolve import load_model
    from larq_poke.cost import profile

    array, settings = _array(args)  # options checked before the model is built
    if not args.cycles and (args.as_bits is not None or settings):
        raise ValueError("--as-bits and the systolic-array options only apply with --cycles")
    progress("summary", f"building {args.model} ...")
    model = load_model(args.model, input_size=args.input_size, num_classes=args.num_classes)
    input_shape = None
    if args.input_size is not None and os.path.exists(args.model):
        input_shape = (args.input_size, args.input_size, model.inputs[0].shape[-1])
    report = profile(model, input_shape=input_shape, float_bits=args.float_bits)
    cycles = None
    if args.cycles:
        from larq_poke.cycles import estimate_cycles

        cycles = estimate_cycles(model, array, input_shape=input_shape, float_bits=args.float_bits,
                                 as_bits=args.as_bits)
    if args.json:
        emit_json(args, {**report.to_dict(), **({"cycles": cycles.to_dict()} if cycles else {})})
        return 0
    import tensorflow as tf

    tf.keras.Model.summary(model, line_length=110)
    print(report.to_text(all_layers=args.all_layers))
    if cycles is not None:
        print(cycles.to_text())
    return 0
