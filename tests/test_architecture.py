"""The package's layout rules, read from the source with ``ast`` (docs/architecture.md).

* No import cycle between ``larq_poke`` modules, function-level imports included. An import of
  ``a.b`` is an edge to module ``a.b`` (a package's ``__init__`` only when the import names the
  package itself); string imports through ``importlib`` (the registries' plugin lists) are not
  edges.
* Imports flow one way between the rooms: each room imports only the rooms listed for it.
* ``larq_poke.checkpoints`` imports neither TensorFlow nor another ``larq_poke`` module, and
  reading a checkpoint leaves TensorFlow unloaded; building a zoo model from a checkpoint loads
  neither ``larq_poke.converters`` nor ``larq_compute_engine``.
"""

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "larq_poke"

# room -> rooms it may import. The base modules (legacy_keras, serialization, no_autograph,
# keras_graph) may be imported by every room and import no room themselves.
BASE = {"larq_poke", "legacy_keras", "serialization", "no_autograph", "keras_graph"}
ALLOWED = {
    "checkpoints": set(),
    "quantizers": set(),
    "layers": {"quantizers"},
    "zoo": {"layers", "quantizers", "checkpoints", "cost"},
    "cost": {"converters"},  # only larq_poke.converters.fusability (see NARROW)
    "cycles": {"cost"},
    "converters": {"layers", "quantizers", "cost"},
    "bench": {"converters"},
    "data": set(),
    "train": {"data", "zoo", "converters", "cost", "layers", "quantizers"},
    "cards": {"zoo", "cost", "data"},
    "plots": {"zoo", "cost"},
    "cli": {"zoo", "cost", "cycles", "converters", "bench", "layers", "quantizers", "checkpoints", "data", "train",
            "plots"},
}


# room -> the only modules of other rooms it may import, where narrower than ALLOWED.
NARROW = {"cost": {"larq_poke.converters.fusability"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph():
    """``{module: {imported larq_poke modules}}`` from every import statement in the package."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("larq_poke") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "larq_poke"


def test_the_checker_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_imports_flow_one_way():
    wrong = []
    for module, edges in import_graph().items():
        room = _room(module)
        for target in edges:
            other = _room(target)
            if other == room or other in BASE:
                continue
            if room in BASE or other not in ALLOWED.get(room, set()):
                wrong.append(f"{module} -> {target}")
            elif room in NARROW and target not in NARROW[room]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layout (docs/architecture.md):\n" + "\n".join(sorted(wrong))


def test_checkpoints_import_no_tensorflow_and_no_other_room():
    for path in (PACKAGE / "checkpoints").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("tensorflow", "tf_keras", "keras", "larq.", "larq_compute_engine")), (path, name)
                assert not name.startswith("larq_poke") or name.startswith("larq_poke.checkpoints"), (path, name)


def _run(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_reading_checkpoints_leaves_tensorflow_unloaded(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (CPU) is a test dependency")
    import msgpack
    import numpy as np

    torch.save({"w": torch.ones(2, 3)}, tmp_path / "a.pth")
    payload = msgpack.packb(([2], "float32", np.ones(2, np.float32).tobytes()), use_bin_type=True)
    (tmp_path / "checkpoint_1").write_bytes(
        msgpack.packb({"params": {"w": msgpack.ExtType(1, payload)}}, use_bin_type=True)
    )
    loaded = _run(
        f"""
        import json, sys
        import larq_poke.checkpoints as c
        torch_state = c.read_checkpoint({str(tmp_path / 'a.pth')!r})
        flax_state = c.read_checkpoint({str(tmp_path / 'checkpoint_1')!r})
        print(json.dumps({{"tf": "tensorflow" in sys.modules, "torch": "torch" in sys.modules,
                          "shape": list(torch_state["w"].shape),
                          "flax": flax_state["params"]["w"].tolist()}}))
        """
    )
    assert loaded == {"tf": False, "torch": False, "shape": [2, 3], "flax": [1.0, 1.0]}


def test_zoo_model_from_a_checkpoint_loads_no_converter(tmp_path):
    import numpy as np
    from conftest import golden_path

    golden = golden_path("pokebnn_small.npz")
    with np.load(golden) as data:
        np.savez(tmp_path / "vars.npz", **{k: data[k] for k in data.files})
    loaded = _run(
        f"""
        import json, sys
        from larq_poke.zoo import PokeBNN
        PokeBNN(0.5, input_shape=(64, 64, 3), weights={str(tmp_path / 'vars.npz')!r})
        print(json.dumps(sorted(m for m in sys.modules
                                if m.startswith(("larq_poke.converters", "larq_compute_engine")))))
        """
    )
    assert loaded == []


def test_the_code_passes_ruff():
    """The lint rules of pyproject.toml's [tool.ruff] section, on the package, tests and benchmarks."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed (it is in the test extra)")
    result = subprocess.run(
        [str(ruff), "check", "--output-format", "concise", "larq_poke", "tests", "benchmarks"],
        cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
