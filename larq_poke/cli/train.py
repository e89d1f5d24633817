"""``larq-poke train RECIPE``: train a model with a recipe (see :mod:`larq_poke.train.run`).

```
larq-poke train plain --model teacher.keras --dataset digits/ --image-size 32 --output runs/teacher
larq-poke train pokebnn --model pokebnn-0.5x --dataset digits/ --image-size 32 \\
    --teacher runs/teacher/model.keras --epochs 4 --output runs/pokebnn --deterministic
larq-poke train pokebnn ... --output runs/pokebnn --resume       # continue where it stopped
```
"""

from __future__ import annotations

import contextlib
import json
import sys

from larq_poke.cli.output import emit_json, progress
from larq_poke.train.run import RECIPES


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model with the PokeBNN, BNext, BiNeal or plain recipe",
        description="Train with Model.fit: a recipe's loss, optimizer and schedule, teachers for "
        "distillation, checkpoints every N steps and exact --resume.",
    )
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--model", required=True, help="zoo name, keras.applications name or Keras model file")
    parser.add_argument("--dataset", required=True, help="TFDS name or image folder")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--image-size", type=int, default=None, metavar="N")
    parser.add_argument("--teacher", action="append", default=[], metavar="FILE",
                        help="a trained teacher model file or folder (repeat for BNext's two-teacher "
                        "scheme; with three or more, bnext "
                        "uses the last as the main teacher and the others as assistants taking turns in "
                        "equal phases)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="base / peak learning rate (default: the recipe's)")
    parser.add_argument("--crop-area", type=float, default=None, metavar="MIN",
                        help="smallest area fraction of the random-resized crop (default: the recipe's, 0.08)")
    parser.add_argument("--no-flip", dest="flip", action="store_const", const=False, default=None,
                        help="no random horizontal flips (digits, text)")
    parser.add_argument("--randaugment", default=None, metavar="SPEC",
                        help="timm RandAugment spec, or 'none' (default: the recipe's; bnext: rand-m7-mstd0.5-inc1)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bf16"),
                        help="bf16: Keras' mixed_bfloat16 policy while training (float32 variables, "
                        "batch-norm statistics and losses; the saved and converted model is float32)")
    parser.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                        help="steps between checkpoints (default 100; 0: only at the end)")
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--tensorboard-graph", action="store_true",
                        help="also write the training step's graph to OUTPUT/logs (TensorBoard's Graphs tab)")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON only")
    parser.add_argument("--distribute", default="auto", choices=("auto", "none", "mirrored", "multi-worker", "tpu"))
    parser.set_defaults(func=run)


def run(args) -> int:
    from larq_poke.train.run import TrainConfig, train

    config = TrainConfig(
        recipe=args.recipe, model=args.model, dataset=args.dataset, output=args.output,
        teachers=list(args.teacher), data_dir=args.data_dir, image_size=args.image_size,
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        lr=args.lr, checkpoint_every=args.checkpoint_every, resume=args.resume, seed=args.seed,
        deterministic=args.deterministic, distribute=args.distribute, crop_area=args.crop_area, flip=args.flip,
        randaugment=args.randaugment, precision=args.precision,
        tensorboard_graph=args.tensorboard_graph,
    )
    progress("train", f"training {args.model} with the {args.recipe} recipe; progress bars on stderr")
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bars are progress, not results
        metrics = train(config)
    if args.json:
        emit_json(args, metrics)
        return 0
    print(json.dumps(metrics.get("keras", {})))
    keras = metrics.get("keras")
    if keras:
        print(f"train: steps={metrics['steps']} top1={keras['top1']:.4f} top5={keras['top5']:.4f} n={keras['n']}")
    else:
        print(f"train: steps={metrics['steps']}")
    return 0
