"""The package's layout holds: imports go one way, and only the plugin imports pytest.

plugin, commands -> decision, checks -> answering, model -> formats, inputs -> errors, progress, resources, stats.
A module may import its own layer or a lower one, never a higher one (function-level
imports included: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "punie_gates"
LAYERS = {
    "errors": 0, "progress": 0, "resources": 0, "stats": 0, "__init__": 0,
    "inputs": 1, "formats": 1,
    "model": 2, "answering": 2,
    "checks": 3, "decision": 3,
    "plugin": 4, "commands": 4, "__main__": 4,
}  # fmt: skip


def _part(module: str) -> str:
    """`punie_gates.model.folder` -> `model`; `punie_gates` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names] if node.module == "punie_gates" else [node.module]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_part_of_the_package_has_a_layer():
    parts = {_layer_of(p) for p in _modules()}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


def test_imports_go_one_way():
    wrong = []
    for path in _modules():
        mine = _layer_of(path)
        for line, name in _imports(path):
            if not name.startswith("punie_gates."):
                continue
            theirs = _part(name)
            if theirs in LAYERS and LAYERS[theirs] > LAYERS[mine]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({mine}) imports {name} ({theirs})")
    assert not wrong, "imports that go the wrong way:\n" + "\n".join(wrong)


def test_only_the_plugin_imports_pytest():
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in _modules()
        if _layer_of(path) != "plugin"
        for line, name in _imports(path)
        if name == "pytest" or name.startswith(("pytest.", "_pytest"))
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("folder", sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()))
def test_each_subpackage_says_what_lives_there(folder):
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "being filled in" not in doc and len(doc) > 80, f"punie_gates/{folder}/__init__.py needs a docstring"
