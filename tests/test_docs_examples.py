"""Every Python and shell example of the README and the docs runs (docs/index.md says how).

Per page, the fenced ``python`` and ``bash`` blocks run in order in a fresh folder that holds the
files the pages name (``digits/``, a small image folder of scikit-learn's real digits); Python
blocks of a page share one namespace. Shell blocks run each ``larq-poke`` command in-process
through ``larq_poke.cli.main`` and expect exit code 0; the ``python3 -m venv`` / ``pip install``
set-up steps of the README are what CI itself runs.

HTML comments right before a block adapt it to the test (they do not show on the site):

* ``<!-- example: replace "OLD" "NEW" -->``: run with a smaller configuration than the page shows
  (input sizes, epochs);
* ``<!-- example: check-only: REASON -->``: the block needs what no test machine has (ImageNet,
  a phone, the network). Python: its imports run and every call of an imported name is bound
  to the callee's signature; shell: every command is parsed by the real argument parser.
"""

import ast
import inspect
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import larq_poke  # noqa: F401  (Keras 2 before TensorFlow)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md"))

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
_DIRECTIVE = re.compile(r"<!--\s*example:\s*(?P<text>.*?)\s*-->")


def blocks(page: Path):
    """``(lang, code, directives)`` of each python / bash block of ``page``."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        lang = match.group("lang")
        if lang not in ("python", "bash"):
            continue
        before = text[: match.start()].rstrip("\n").splitlines()
        directives = []
        while before and _DIRECTIVE.fullmatch(before[-1].strip()):
            directives.insert(0, _DIRECTIVE.fullmatch(before[-1].strip()).group("text"))
            before.pop()
        body = "\n".join(line[len(match.group("indent")):] for line in match.group("body").splitlines())
        found.append((lang, body, directives))
    return found


def _apply(code: str, directives):
    check_only = None
    for directive in directives:
        if directive.startswith("replace "):
            old, new = shlex.split(directive[len("replace "):])
            assert old in code, f"replace directive: {old!r} is not in the block"
            code = code.replace(old, new)
        elif directive.startswith("check-only:"):
            check_only = directive[len("check-only:"):].strip()
            assert check_only, "check-only needs a reason"
        else:
            raise AssertionError(f"unknown example directive {directive!r}")
    return code, check_only


def _check_python(code: str, namespace: dict):
    """Run the imports of ``code`` and bind every call of an imported callable to its signature."""
    tree = ast.parse(code)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), "<example>", "exec"), namespace)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        try:
            target = eval(compile(ast.Expression(node.func), "<example>", "eval"), namespace)
        except Exception:
            continue  # a name the block defines itself
        if not callable(target):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        args = [None] * sum(not isinstance(a, ast.Starred) for a in node.args)
        kwargs = {k.arg: None for k in node.keywords if k.arg is not None}
        signature.bind(*args, **kwargs)  # TypeError: the page calls an API that does not exist


def shell_commands(code: str):
    """The commands of a bash block, continuation lines joined, comments dropped; each command
    chain split on ``&&``."""
    joined = re.sub(r"\\\n\s*", " ", code)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            yield shlex.split(part, comments=True)


def _run_shell(code: str, check_only):
    from larq_poke.cli import build_parser, main

    for argv in shell_commands(code):
        if argv[0].endswith("larq-poke"):
            argv = argv[1:]
        elif argv[:3] == ["python3", "-m", "venv"] or "pip" in os.path.basename(argv[0]) or argv[0].endswith("python"):
            continue  # set-up steps and the test command: CI runs them
        else:
            raise AssertionError(f"unexpected command in a shell example: {shlex.join(argv)}")
        if check_only:
            build_parser().parse_args(argv)  # SystemExit(2) on an unknown option
        else:
            assert main(argv) == 0, f"larq-poke {shlex.join(argv)} failed"


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    from sklearn.datasets import load_digits

    from larq_poke.data import write_image_folder

    digits = load_digits()
    images = np.repeat((digits.images * (255 / 16)).astype(np.uint8)[..., None], 3, axis=-1)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    folder = tmp_path_factory.mktemp("data") / "digits"
    write_image_folder(folder, "train", images[order[:200]], digits.target[order[:200]])
    write_image_folder(folder, "test", images[order[200:260]], digits.target[order[200:260]])
    return folder


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page, tmp_path, digits_folder, monkeypatch):
    examples = blocks(page)
    if not examples:
        pytest.skip(f"{page.name} has no python or bash example")
    os.symlink(digits_folder, tmp_path / "digits")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LARQ_POKE_CACHE", str(tmp_path / "cache"))  # no download, no user cache
    namespace = {"__name__": "__example__"}
    for lang, code, directives in examples:
        code, check_only = _apply(code, directives)
        if lang == "python":
            if check_only:
                _check_python(code, namespace)
            else:
                exec(compile(code, f"{page.name} example", "exec"), namespace)
        else:
            _run_shell(code, check_only)
