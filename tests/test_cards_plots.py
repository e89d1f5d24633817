"""Model cards, published facts and Pareto plots (docs/models)."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import larq_poke  # noqa: F401
from larq_poke.cards import index_page, load_measurements, model_card, task_card
from larq_poke.plots import Point, pareto_front, pareto_plot
from larq_poke.zoo import list_models, list_task_models
from larq_poke.zoo.published import ANCHORS, MODELS, model_facts

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "docs" / "models"


def test_every_zoo_classifier_has_published_facts():
    assert set(MODELS) == set(list_models())
    with pytest.raises(KeyError, match="Known models"):
        model_facts("pokebnn-9x")
    # the numbers of the primary sources (specs/anchors.md sections 5-7)
    assert [model_facts(f"bnext-{s}").top1 for s in "tsml"] == [72.4, 76.1, 78.3, 80.6]
    assert model_facts("pokebnn-0.75x").top1 == 70.5 and model_facts("bineal-1.5x").top1 == 69.7
    assert model_facts("pokebnn-2.0x").top1 is None  # no source: never guessed


def test_anchor_ace_by_hand():
    quicknet = next(a for a in ANCHORS if a.name == "QuickNet")
    assert quicknet.ace_estimate() == pytest.approx((1.850e9 + 28.9e6 * 256) / 1e9)
    assert quicknet.ace_estimate(8) == pytest.approx((1.850e9 + 28.9e6 * 64) / 1e9)
    adam = next(a for a in ANCHORS if a.name == "ReActNet-Adam")
    # the 16x16 convention reproduces the PokeBNN abstract's 7.9 from the paper's own MAC counts
    # (specs/anchors.md section 0), an independent check of the stored figures
    assert (adam.bops + adam.flops * 256) / 1e9 == pytest.approx(7.9, abs=0.05)
    # a published ACE wins over the estimate, whatever bit width is asked for
    assert adam.ace_estimate(8) == adam.ace
    assert adam.ace_estimate(8) != pytest.approx((adam.bops + adam.flops * 64) / 1e9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_committed_card_is_what_the_library_generates(name, zoo_cost):
    path = CARDS / f"{name}.md"
    assert path.exists(), f"{path} missing: run python -m larq_poke.cards docs/models"
    costs = zoo_cost(name).totals
    assert path.read_text() == model_card(name, load_measurements(str(CARDS)), costs=costs), (
        f"{path} is stale: run python -m larq_poke.cards docs/models")


@pytest.mark.parametrize("name", list_task_models())
def test_committed_task_card_is_what_the_library_generates(name):
    path = CARDS / f"{name}.md"
    assert path.exists() and path.read_text() == task_card(name), (
        f"{path} is stale: run python -m larq_poke.cards docs/models")


def test_every_card_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in list_models() + list_task_models():
        assert f"models/{name}.md" in nav, name


def test_committed_index_and_measurements():
    measurements = load_measurements(str(CARDS))
    assert (CARDS / "index.md").read_text() == index_page(measurements)
    for name, figures in measurements["models"].items():
        census = figures["census"]
        assert census["lce_bconv2d"] == census["op_counts"].get("LceBconv2d", 0), name
        assert figures["ratio_to_quicknet"] == pytest.approx(figures["latency_ms"] / figures["quicknet_ms"]), name
    for axis in ("ace", "bops", "latency"):
        assert (CARDS / f"pareto_{axis}.svg").exists()


def test_pareto_front_by_hand():
    points = [
        Point("a", "anchor", 60.0, ace=1.0), Point("b", "anchor", 70.0, ace=2.0),
        Point("c", "anchor", 65.0, ace=3.0),  # dominated by b
        Point("d", "larq-poke", 75.0, ace=5.0), Point("e", "larq-poke", 50.0, ace=None),
        Point("f", "anchor", 60.0, ace=1.0),  # ties a: not strictly better
    ]
    assert [p.name for p in pareto_front(points, "ace")] == ["a", "b", "d"]
    with pytest.raises(KeyError):
        pareto_front(points, "watts")


def test_pareto_plot_files(tmp_path):
    points = [Point("pokebnn-0.75x", "larq-poke", 70.5, ace=2.588, bops=2.3),
              Point("QuickNet", "anchor", 63.3, ace=9.25, bops=1.85)]
    paths = pareto_plot(points, "ace", str(tmp_path / "p"), ("png", "svg"))
    assert [os.path.basename(p) for p in paths] == ["p.png", "p.svg"]
    assert Path(paths[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ids = {element.get("id") for element in ET.parse(paths[1]).iter()}
    assert {"point-pokebnn-0.75x", "point-QuickNet"} <= ids
    with pytest.raises(ValueError, match="latency needs the measurements"):
        pareto_plot(points, "latency", str(tmp_path / "q"))
    with pytest.raises(ValueError, match="unknown axis"):
        pareto_plot(points, "watts", str(tmp_path / "q"))


def test_docs_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: every page, nav entry, link and API reference resolves."""
    pytest.importorskip("mkdocs", reason="the docs extra (mkdocs) is not installed")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "zoo" / "index.html").exists()
    assert "PokeBNN" in (tmp_path / "site" / "models" / "pokebnn-1.0x" / "index.html").read_text()
