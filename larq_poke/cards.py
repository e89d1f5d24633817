"""Model cards: one Markdown page per zoo classifier, generated from the library itself.

A card says what the model is, where its weights come from (or that none are published), its
published ImageNet top-1 with the source, the cost table of :func:`larq_poke.cost.profile` at
224×224, the LCE census and host latency ratio to QuickNet from a conversion, and the exact
preprocessing of its recipe. Everything except the conversion is computed when the card is
written; the conversion figures come from a measurements file written by
``benchmarks/model_cards.py`` (a conversion per model and an interleaved latency run take far
longer than writing a page), and the card names the machine and kernels they came from.

```
python -m larq_poke.cards docs/models                 # rewrite every card and the index
python -m larq_poke.cards docs/models --check         # exit 1 if a committed card is stale
```

```python
from larq_poke.cards import model_card
text = model_card("bnext-t", measurements={})         # Markdown; "not measured" without figures
```
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

__all__ = ["MEASUREMENTS_FILE", "load_measurements", "model_card", "task_card", "index_page", "write_cards", "main"]

#: Name of the measurements file (``benchmarks/model_cards.py``) in the cards folder.
MEASUREMENTS_FILE = "measurements.json"

_INPUT_SIZE = 224


def load_measurements(folder: str) -> Dict[str, dict]:
    """The conversion and latency figures stored beside the cards (``{}`` when there are none)."""
    path = os.path.join(folder, MEASUREMENTS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise ValueError(f"{path}: expected {{'machine': ..., 'models': {{name: figures}}}}.")
    return data


def _title(name: str) -> str:
    family, _, variant = name.partition("-")
    labels = {"pokebnn": "PokeBNN", "bnext": "BNext", "bineal": "BiNeal"}
    return f"{labels.get(family, family)}-{variant.upper() if len(variant) == 1 else variant}"


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _weights_rows(name: str) -> List[str]:
    from larq_poke.zoo import weights

    entries = [e for e in weights.list_weights() if e.model == name]
    if not entries:
        return ["| Pretrained weights | none published by the authors; `weights=\"imagenet\"` raises an "
                "error that says so (train your own: `larq-poke train`) |"]
    rows = []
    for entry in entries:
        pinned = f"sha256 `{entry.sha256[:16]}…`" if entry.sha256 else "sha256 not pinned (the importer checks the file's structure)"
        rows.append(f"| Weights `{entry.variant}` | {entry.source}; `{entry.url}` ({entry.format}); {pinned} |")
        rows.append(f"| Weights license | {entry.license} |")
    return rows


def _cost_section(name: str, totals: Optional[dict], size: str = f"{_INPUT_SIZE}×{_INPUT_SIZE}") -> List[str]:
    if totals is None:
        from larq_poke.cost import profile
        from larq_poke.zoo import build

        totals = profile(build(name, input_shape=(_INPUT_SIZE, _INPUT_SIZE, 3))).totals
    mib = 1024 * 1024
    return [
        f"## Costs ({size}, `larq_poke.cost.profile`, float operands at 16 bits)",
        "",
        "| ACE (10⁹) | BOPs | FLOPs | OPs | binarization degree | params | packed size |",
        "|---|---|---|---|---|---|---|",
        f"| {totals['ace'] / 1e9:.3f} | {totals['bops'] / 1e9:.3f} G | {totals['flops'] / 1e6:.1f} M "
        f"| {totals['ops'] / 1e6:.1f} M | {100 * totals['binarization_degree']:.2f} % "
        f"| {totals['params'] / 1e6:.2f} M | {totals['packed_size_bytes'] / mib:.2f} MiB |",
        "",
        "ACE = Σ MACs × weight bits × activation bits; OPs = BOPs / 64 + FLOPs; binarization degree "
        "= BOPs / (64 · OPs); packed size: binary weights at 1 bit, the rest at their stored "
        "precision. Per-layer rows: `model.summary()` or `larq-poke summary " + name + "`.",
    ]


def _deployment_section(name: str, measurements: dict) -> List[str]:
    figures = measurements.get("models", {}).get(name)
    lines = ["## Deployment (Larq Compute Engine)", ""]
    if not figures:
        return lines + ["Not measured yet: run `python benchmarks/model_cards.py --models " + name + "`."]
    machine = measurements.get("machine", {})
    census = figures["census"]
    lines += [
        "| binary layers → `LceBconv2d` | bit-packed outputs | float ops between binary convs | `.tflite` size | host latency | QuickNet, same run | ratio to QuickNet |",
        "|---|---|---|---|---|---|---|",
        f"| {census['lce_bconv2d']}/{census['binary_layers']} | {census['bitpacked_outputs']} "
        f"| {census['float_ops_between_binary_convs']} | {census['size_bytes'] / 1e6:.2f} MB "
        f"| {figures['latency_ms']:.1f} ms | {figures['quicknet_ms']:.1f} ms | {figures['ratio_to_quicknet']:.2f} |",
        "",
        f"Op census: {', '.join(f'`{op}` {n}' for op, n in sorted(census['op_counts'].items(), key=lambda kv: (-kv[1], kv[0])))}.",
        "",
        f"Measured by `benchmarks/model_cards.py` ({measurements.get('date', 'undated')}) at "
        f"{figures['input_size']}×{figures['input_size']}: seeded random parameters (calibrated where "
        "the conversion needs it), float stem and head, converted with "
        f"`larq_poke.converters.convert`; {figures['runs']} interleaved runs with larq-zoo's QuickNet "
        f"on {machine.get('cpu', 'an unnamed CPU')}, LCE interpreter, {machine.get('kernel', '?')} "
        f"kernels, {machine.get('threads', '?')} thread(s). x86 timings are no guide to ARM; the "
        "ratio and the census carry over better. Measure a phone with "
        "`larq-poke bench --target adb`.",
    ]
    return lines


def _preprocessing_section(preset: str) -> List[str]:
    from larq_poke.data.preprocessing import get

    prep = get(preset)
    if prep.eval_mode == "crop_then_resize":
        evaluation = (f"center crop {prep.crop_fraction:.4g} of the shorter side, bicubic resize "
                      f"(antialiased) to {prep.image_size}×{prep.image_size}")
    else:
        evaluation = (f"bicubic resize (antialiased) of the shorter side to "
                      f"{int(prep.image_size / prep.crop_fraction)}, center crop "
                      f"{prep.image_size}×{prep.image_size}")
    norm = ("RGB scaled to [0, 1]" if prep.mean is None else
            f"RGB scaled to [0, 1], minus mean {prep.mean}, divided by std {prep.std}")
    augment = [f"random-resized crop (area {prep.area_range[0]:g}–{prep.area_range[1]:g}, aspect "
               f"{prep.aspect_range[0]:.3g}–{prep.aspect_range[1]:.3g}, bicubic)"]
    if prep.flip:
        augment.append("horizontal flip")
    if prep.randaugment:
        augment.append(f"timm RandAugment `{prep.randaugment}`")
    return [
        f"## Preprocessing (`larq_poke.data.preprocessing.get(\"{preset}\")`)",
        "",
        f"* Evaluation: {evaluation}; {norm}.",
        f"* Training: {', '.join(augment)}; the same normalisation.",
        f"* `larq-poke eval` and `larq-poke train` apply it; `load_dataset(..., preprocessing=\"{preset}\")` "
        "gives the `tf.data` pipeline.",
    ]


def model_card(name: str, measurements: Optional[dict] = None, costs: Optional[dict] = None) -> str:
    """The Markdown card of zoo classifier ``name``; ``costs``: the totals of
    ``cost.profile`` at 224×224 when already computed (else the model is built here)."""
    from larq_poke.zoo.published import FAMILIES, model_facts

    facts = model_facts(name)
    family = FAMILIES[facts.family]
    top1 = _percent(facts.top1)
    if facts.top1 is not None:
        top1 += f" ({facts.provenance}: {facts.top1_source})"
    else:
        top1 += f" ({facts.top1_source})"
    lines = [
        f"# {_title(name)}",
        "",
        family.description,
        "",
        "| | |",
        "|---|---|",
        f"| Zoo name | `{name}`: `larq_poke.zoo.build(\"{name}\")` |",
        f"| Paper | {family.paper} |",
        f"| Official code | {family.code} |",
        *_weights_rows(name),
        f"| ImageNet top-1 | {top1} |",
        "",
        *_cost_section(name, costs),
        "",
        *_deployment_section(name, measurements or {}),
        "",
        *_preprocessing_section(family.preprocessing),
        "",
        "*Generated by `python -m larq_poke.cards docs/models` from the library; do not edit by hand.*",
        "",
    ]
    return "\n".join(lines)


def task_card(name: str, costs: Optional[dict] = None) -> str:
    """The Markdown card of BiNeal task model ``name`` (``list_task_models()``): costed at the
    paper's input size (``TASKS[task].input_shape``); its measured accuracy and latency against
    the 8-bit counterpart are in docs/bineal_tasks.md (``benchmarks/bineal_tasks.py``)."""
    from larq_poke.zoo import list_task_models
    from larq_poke.zoo.published import FAMILIES, TASKS
    from larq_poke.zoo.registry import model_constructor

    task = next((t for t in TASKS if name in list_task_models(t)), None)
    if task is None:
        raise KeyError(f"{name!r} is not a task model; known: {', '.join(list_task_models())}.")
    facts = TASKS[task]
    kwargs = dict(facts.build_kwargs)
    if costs is None:
        from larq_poke.cost import profile

        costs = profile(model_constructor(name)(input_shape=facts.input_shape, **kwargs)).totals
    height, width, _ = facts.input_shape
    summary = (model_constructor(name).__doc__ or "").split("; keyword arguments")[0]
    arguments = ", ".join([f'"{name}"'] + [f"{k}={v}" for k, v in kwargs.items()])
    lines = [
        f"# {name}",
        "",
        f"{summary}. BiNeal for {task}: binary blocks that take and emit bit-packed tensors "
        "(gain terms and batch norms folded into per-channel thresholds), 8-bit first and last layers.",
        "",
        "| | |",
        "|---|---|",
        f"| Zoo name | `{name}`: `larq_poke.zoo.build({arguments})`; `precision=\"int8\"` builds the 8-bit counterpart |",
        f"| Paper | {FAMILIES['bineal'].paper} |",
        f"| The paper's setup | {facts.paper_setup} |",
        f"| Published | {facts.published} |",
        "| Pretrained weights | none published; train with `larq_poke.train.tasks.fit_task` |",
        "",
        *_cost_section(name, costs, f"{height}×{width}"),
        "",
        "## Deployment and accuracy",
        "",
        "Measured on generated or real stand-in data against the 8-bit counterpart, with the LCE "
        "census of both files: [BiNeal tasks](../bineal_tasks.md) (`benchmarks/bineal_tasks.py`).",
        "",
        "*Generated by `python -m larq_poke.cards docs/models` from the library; do not edit by hand.*",
        "",
    ]
    return "\n".join(lines)


def index_page(measurements: Optional[dict] = None) -> str:
    """The model overview: one row per zoo classifier and the Pareto plots."""
    from larq_poke.zoo import list_models
    from larq_poke.zoo.published import model_facts

    from larq_poke.zoo import list_task_models

    task_rows = [f"* [{name}]({name}.md)" for name in list_task_models()]
    figures = (measurements or {}).get("models", {})
    rows = []
    for name in list_models():
        facts = model_facts(name)
        ratio = figures.get(name, {}).get("ratio_to_quicknet")
        rows.append(f"| [{_title(name)}]({name}.md) | `{name}` | {_percent(facts.top1)} "
                    f"| {'—' if ratio is None else f'{ratio:.2f}'} |")
    return "\n".join([
        "# Models",
        "",
        "One page per zoo classifier, generated from the library (`python -m larq_poke.cards docs/models`).",
        "Top-1 is the published ImageNet value (no ImageNet run happens here); the latency ratio "
        "to QuickNet is a host measurement (see each card).",
        "",
        "| model | zoo name | published top-1 | host latency ratio to QuickNet |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Accuracy against cost",
        "",
        "Published top-1 against ACE, BOPs and measured host latency ratio, next to QuickNet, "
        "ReActNet and the other anchors (`larq-poke plot`; models without a published top-1 are "
        "left out):",
        "",
        "![top-1 against ACE](pareto_ace.svg)",
        "",
        "![top-1 against BOPs](pareto_bops.svg)",
        "",
        "![top-1 against host latency ratio](pareto_latency.svg)",
        "",
        "## Task models",
        "",
        "BiNeal for dense prediction (design and measurements: [BiNeal tasks](../bineal_tasks.md)):",
        "",
        *task_rows,
        "",
    ])


def write_cards(folder: str, names: Optional[List[str]] = None, check: bool = False) -> List[str]:
    """Write (or with ``check``, compare) the cards of ``names`` (default: every zoo classifier)
    and the index in ``folder``; returns the paths that were written, or with ``check`` the
    paths whose committed text differs from what the library generates."""
    from larq_poke.zoo import list_models

    measurements = load_measurements(folder)
    pages = {os.path.join(folder, "index.md"): index_page(measurements)}
    from larq_poke.zoo import list_task_models

    for name in names or list_models() + list_task_models():
        page = task_card(name) if name in list_task_models() else model_card(name, measurements)
        pages[os.path.join(folder, f"{name}.md")] = page
    changed = []
    for path, text in pages.items():
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        changed.append(path)
        if not check:
            os.makedirs(folder, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    return changed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m larq_poke.cards", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where the cards live (docs/models)")
    parser.add_argument("--models", nargs="*", default=None, help="zoo names (default: all)")
    parser.add_argument("--check", action="store_true", help="only report stale cards; exit 1 if any")
    args = parser.parse_args(argv)
    changed = write_cards(args.folder, args.models, check=args.check)
    for path in changed:
        print(("stale: " if args.check else "wrote: ") + path)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
