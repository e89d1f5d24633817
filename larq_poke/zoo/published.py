"""Published facts about the zoo models and the comparison anchors, each with its source.

The one home of published ImageNet top-1 values, papers and official code: the model cards
(:mod:`larq_poke.cards`) and the Pareto plots (:mod:`larq_poke.plots`) read them from here.
Provenance words follow ``specs/anchors.md``: **published** (a primary source), **secondary**
(a third party citing the paper), **computed** (from official code or data, not a published
number).

```python
from larq_poke.zoo.published import MODELS, ANCHORS, model_facts
model_facts("bnext-t").top1          # 72.4
[a.name for a in ANCHORS]            # ['QuickNetSmall', 'QuickNet', ...]
```
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

__all__ = ["Family", "ModelFacts", "TaskFacts", "Anchor", "FAMILIES", "MODELS", "TASKS", "ANCHORS", "model_facts"]


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its paper, its official code and what the zoo does with its weights."""

    name: str
    paper: str
    code: str
    preprocessing: str  # the larq_poke.data.preprocessing preset of its recipe
    description: str


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """One zoo classifier: published ImageNet top-1 (``None`` if no source gives one) and where
    the number comes from."""

    name: str
    family: str
    top1: Optional[float]
    top1_source: str
    provenance: str  # "published", "secondary" or "none"


@dataclasses.dataclass(frozen=True)
class TaskFacts:
    """What the BiNeal paper says about one dense-prediction task, and the input size and class
    count its model card is costed at (the paper's input where it names one)."""

    task: str
    paper_setup: str
    published: str
    input_shape: Tuple[int, int, int]
    build_kwargs: Tuple[Tuple[str, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A comparison model from the literature: top-1 and cost (binary MACs, real-valued MACs;
    ACE in 10^9 when published), with sources. ``larq_zoo`` names the larq-zoo constructor when
    the model can be built (and so converted and timed) here."""

    name: str
    top1: float
    bops: Optional[float]
    flops: Optional[float]
    source: str
    ace: Optional[float] = None
    larq_zoo: Optional[str] = None

    def ace_estimate(self, float_bits: int = 16) -> Optional[float]:
        """ACE in units of 10^9: published, else binary MACs + real MACs × ``float_bits``²."""
        if self.ace is not None:
            return self.ace
        if self.bops is None or self.flops is None:
            return None
        return (self.bops + self.flops * float_bits * float_bits) / 1e9


FAMILIES = {
    "pokebnn": Family(
        name="PokeBNN",
        paper="Zhang, Zhang & Lew, *PokeBNN: A Binary Pursuit of Lightweight Accuracy*, CVPR 2022 (arXiv 2112.00133)",
        code="github.com/google/aqt (JAX/Flax, Apache-2.0), commit 9d1667e",
        preprocessing="pokebnn",
        description=(
            "A ResNet-50-shaped BNN of PokeConv blocks (binary conv, 4-bit squeeze-excite, "
            "DPReLU, several residual paths per conv) with an 8-bit PokeInit stem and 8-bit "
            "classifier, designed for the lowest arithmetic computation effort (ACE)."
        ),
    ),
    "bnext": Family(
        name="BNext",
        paper="Guo, Bethge, Meinel & Yang, *Join the High Accuracy Club on ImageNet with A Binary Neural Network Ticket*, 2022 (arXiv 2211.12933)",
        code="github.com/hpi-xnor/BNext (PyTorch), commit dfcf347",
        preprocessing="bnext",
        description=(
            "A ReActNet-A-like MobileNet backbone of binary 3x3 token mixers with ELM attention "
            "and binary 1x1 FFNs, trained with diversified consecutive knowledge distillation "
            "from two teachers; the first BNNs above 80 % ImageNet top-1."
        ),
    ),
    "bineal": Family(
        name="BiNeal",
        paper="Nie et al. (DJI), *Binary Neural Networks as a general-propose compute paradigm for on-device computer vision*, 2022 (arXiv 2202.03716)",
        code="none published: larq-poke's reconstruction (docs/bineal.md)",
        preprocessing="bineal",
        description=(
            "Binary weights and no real-valued activations: a ResNet-18 layout of binary blocks "
            "whose gain terms and batch norms fold into per-channel thresholds, so that blocks "
            "take and emit bit-packed tensors; only the stem and classifier stay 8-bit."
        ),
    ),
}

_PWC = "paperswithcode 'Results from the Paper' entry of arXiv 2112.00133 (not checked against the PDF)"
_BNEXT = "BNext README (github.com/hpi-xnor/BNext @dfcf347)"
_BINEAL = "the paper's value as recorded by a third-party results registry"

MODELS = {
    facts.name: facts
    for facts in (
        ModelFacts("pokebnn-0.5x", "pokebnn", 65.2, _PWC, "secondary"),
        ModelFacts("pokebnn-0.75x", "pokebnn", 70.5,
                   "PokeBNN abstract ('small' PokeBNN: 70.5 % at 2.6 ACE; the official code gives "
                   "2.588 ACE for 0.75x, so the width is inferred)", "published"),
        ModelFacts("pokebnn-1.0x", "pokebnn", 73.4, _PWC, "secondary"),
        ModelFacts("pokebnn-1.5x", "pokebnn", None, "no available source gives it", "none"),
        ModelFacts("pokebnn-2.0x", "pokebnn", None, "no available source gives it", "none"),
        ModelFacts("bnext-t", "bnext", 72.4, _BNEXT, "published"),
        ModelFacts("bnext-s", "bnext", 76.1, _BNEXT, "published"),
        ModelFacts("bnext-m", "bnext", 78.3, _BNEXT, "published"),
        ModelFacts("bnext-l", "bnext", 80.6, _BNEXT + "; abstract: 80.57 %", "published"),
        ModelFacts("bnext-18", "bnext", None, "no released checkpoint or table entry", "none"),
        ModelFacts("bineal-1.0x", "bineal", 65.0, _BINEAL, "secondary"),
        ModelFacts("bineal-1.5x", "bineal", 69.7, _BINEAL, "secondary"),
        ModelFacts("bineal-2.0x", "bineal", None,
                   "not published (m = 2 is the width of the paper's dense-prediction tasks)", "none"),
    )
}

_BINEAL_FPS = ("Mobile-CPU FPS 1.3–2.4× that of the 8-bit baselines across the paper's five tasks "
               "(published, abstract); no per-task accuracy is available (specs/bineal.md)")

#: BiNeal's dense-prediction tasks (specs/bineal.md section 3, decision D9).
TASKS = {
    "segmentation": TaskFacts(
        "segmentation", "FCN on a ResNet-18-layout BiNeal backbone, 512×1024 input; dataset not named",
        "1.4× faster than 8-bit on Bolt and 3.9× fewer cycles at similar accuracy (secondary: a summary "
        "of the paper). " + _BINEAL_FPS, (512, 1024, 3), (("num_classes", 19),)),
    "detection": TaskFacts(
        "detection", "CenterNet on a BiNeal backbone, m = 2, 448×672 input; 'ours' (backbone binary) and "
        "'ours*' (backbone and head binary); dataset not named", _BINEAL_FPS, (448, 672, 3), (("num_classes", 80),)),
    "super-resolution": TaskFacts(
        "super-resolution", "a shrunk EDSR with a binary body, first and last layers 8-bit; datasets and "
        "scale not named", _BINEAL_FPS, (256, 256, 3)),
    "matching": TaskFacts(
        "matching", "R2D2, consecutive conv pairs as skip-less blocks, the last two layers not binarized; "
        "trained on web images + Aachen, tested on HPatches", _BINEAL_FPS, (256, 256, 3)),
}

_ZOO = "Larq Zoo (docs.larq.dev/zoo @67eb830; MACs from its plot data)"
_REACTNET = "ReActNet README (github.com/liuzechun/ReActNet @a6cd08d); MACs computed from its model code"

#: Literature anchors for comparison plots (specs/anchors.md sections 1, 3, 5).
ANCHORS: Tuple[Anchor, ...] = (
    Anchor("QuickNetSmall", 59.4, 1.156e9, 15.5e6, _ZOO, larq_zoo="QuickNetSmall"),
    Anchor("QuickNet", 63.3, 1.850e9, 28.9e6, _ZOO, larq_zoo="QuickNet"),
    Anchor("QuickNetLarge", 66.9, 3.699e9, 28.9e6, _ZOO, larq_zoo="QuickNetLarge"),
    Anchor("RealToBinaryNet", 65.0, 1.676e9, 138.1e6, _ZOO),
    Anchor("BinaryDenseNet45", 64.6, 6.431e9, 244.1e6, _ZOO),
    Anchor("MeliusNet22", 62.4, 4.624e9, 136.4e6, _ZOO),
    Anchor("Bi-Real Net", 57.5, 1.676e9, 137.8e6, _ZOO),
    Anchor("ReActNet-A", 69.4, 4.82e9, 0.012e9, _REACTNET),
    Anchor("ReActNet-Adam", 70.5, 4.82e9, 0.012e9,
           "AdamBNN README (published 70.5 %); ACE 7.9 from the PokeBNN abstract", ace=7.9),
    Anchor("ReActNet-C", 71.4, 4.69e9, 1.40e8, _REACTNET + " (C: real-valued downsampling, computed)"),
)


def model_facts(name: str) -> ModelFacts:
    """The published facts of zoo classifier ``name``; ``KeyError`` naming the known ones."""
    key = name.lower()
    if key not in MODELS:
        raise KeyError(f"No published facts for {name!r}. Known models: {', '.join(sorted(MODELS))}.")
    return MODELS[key]
