"""Pareto plots: published ImageNet top-1 against ACE, BOPs and measured host latency ratio.

Our zoo classifiers (published top-1 from :mod:`larq_poke.zoo.published`, costs from
:func:`larq_poke.cost.profile` at 224×224, latency ratios from the model cards' measurements
file) next to QuickNet, ReActNet and the other anchors of the literature. Models without a
published top-1 are left out; anchors are drawn on the latency plot only where they were timed
in the same run (larq-zoo's QuickNet family). The Pareto front (no other point is both cheaper
and more accurate) is drawn as a step line.

```python
from larq_poke.plots import pareto_points, pareto_plot
points = pareto_points(models=["pokebnn-0.5x", "bnext-t"])
pareto_plot(points, "ace", "pareto_ace")          # writes pareto_ace.png and pareto_ace.svg
```

Command line: ``larq-poke plot -o docs/models --measurements docs/models/measurements.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence

__all__ = ["AXES", "Point", "pareto_points", "pareto_front", "pareto_plot"]

#: x axes: key -> (Point attribute, axis label, log scale).
AXES = {
    "ace": ("ace", "ACE (10⁹ bit-MACs: MACs × weight bits × activation bits; float at 16 bits)", True),
    "bops": ("bops", "binary MACs (BOPs, 10⁹)", True),
    "latency": ("latency_ratio", "host latency / QuickNet latency (LCE interpreter, same run)", True),
}


@dataclasses.dataclass(frozen=True)
class Point:
    """One model on the plots; ``group`` is ``"larq-poke"`` (a zoo model) or ``"anchor"``."""

    name: str
    group: str
    top1: float
    ace: Optional[float] = None  # 10^9
    bops: Optional[float] = None  # 10^9
    latency_ratio: Optional[float] = None


def pareto_points(models: Optional[Iterable[str]] = None, measurements: Optional[dict] = None,
                  float_bits: int = 16, progress=None) -> List[Point]:
    """Points for our zoo classifiers with a published top-1 (``models``: default all) and for
    the literature anchors. ``measurements`` is the model cards' file
    (``benchmarks/model_cards.py``): its latency ratios, ours and the anchors'."""
    from larq_poke.cost import profile
    from larq_poke.zoo import build, list_models
    from larq_poke.zoo.published import ANCHORS, model_facts

    measured: Dict[str, dict] = (measurements or {}).get("models", {})
    anchor_ratios: Dict[str, float] = (measurements or {}).get("anchors", {})
    points = []
    for name in models or list_models():
        facts = model_facts(name)
        if facts.top1 is None:
            continue
        if progress:
            progress(f"costing {name} at 224x224 ...")
        totals = profile(build(name, input_shape=(224, 224, 3)), float_bits=float_bits).totals
        points.append(Point(name, "larq-poke", facts.top1, totals["ace"] / 1e9, totals["bops"] / 1e9,
                            measured.get(name, {}).get("ratio_to_quicknet")))
    for anchor in ANCHORS:
        points.append(Point(anchor.name, "anchor", anchor.top1, anchor.ace_estimate(float_bits),
                            None if anchor.bops is None else anchor.bops / 1e9, anchor_ratios.get(anchor.name)))
    return points


def pareto_front(points: Sequence[Point], axis: str) -> List[Point]:
    """The points no other point beats on both cost (lower ``axis``) and top-1 (higher), by
    increasing cost."""
    attribute = AXES[axis][0]
    usable = sorted((p for p in points if getattr(p, attribute) is not None),
                    key=lambda p: (getattr(p, attribute), -p.top1))
    front, best = [], float("-inf")
    for point in usable:
        if point.top1 > best:
            front.append(point)
            best = point.top1
    return front


def pareto_plot(points: Sequence[Point], axis: str, path_stem: str, formats: Sequence[str] = ("png", "svg")) -> List[str]:
    """Draw top-1 against ``axis`` ("ace", "bops" or "latency") and write ``path_stem.<format>``
    for each format; returns the paths. Every point's SVG element carries its model name as id."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; known: {', '.join(AXES)}.")
    unknown = sorted(set(formats) - {"png", "svg", "pdf"})
    if unknown:
        raise ValueError(f"unknown plot formats {unknown}; use png, svg or pdf.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("larq-poke plot needs matplotlib: pip install 'larq-poke[plot]'") from err

    attribute, label, log = AXES[axis]
    usable = [p for p in points if getattr(p, attribute) is not None]
    if not usable:
        raise ValueError(f"no point has a value for {axis!r} (latency needs the measurements file).")
    plt.rcParams["svg.hashsalt"] = "larq-poke"  # stable SVG ids from run to run
    figure, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    styles = {"larq-poke": dict(color="tab:red", marker="o"), "anchor": dict(color="tab:gray", marker="s")}
    for group, style in styles.items():
        group_points = [p for p in usable if p.group == group]
        if not group_points:
            continue
        ax.scatter([], [], label="larq-poke zoo" if group == "larq-poke" else "literature anchors", **style)
        for p in group_points:
            artist = ax.scatter([getattr(p, attribute)], [p.top1], zorder=3, **style)
            artist.set_gid(f"point-{p.name}")
            ax.annotate(p.name, (getattr(p, attribute), p.top1), textcoords="offset points",
                        xytext=(4, 3), fontsize=7, color=style["color"])
    front = pareto_front(usable, axis)
    ax.step([getattr(p, attribute) for p in front], [p.top1 for p in front], where="post",
            color="tab:blue", alpha=0.5, linewidth=1, label="Pareto front")
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)
    ax.set_ylabel("ImageNet top-1 (%), published")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    figure.tight_layout()
    paths = []
    for fmt in formats:
        path = f"{path_stem}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else {})
        figure.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    plt.close(figure)
    return paths
