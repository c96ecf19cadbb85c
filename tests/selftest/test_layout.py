"""The package's layout holds: imports go one way, without cycles, at module top, and only
the plugin imports pytest.

plugin, commands -> decision, checks -> answering, model -> formats, inputs, results -> errors, progress, resources, stats.
A module may import its own layer or a lower one, never a higher one (function-level
imports included: a lazy import is still a dependency). No module reaches itself through
its imports, no two packages import each other, and imports sit at module top unless
they load a heavy library (HEAVY), which a module imports where it is needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "punie_gates"
LAYERS = {
    "errors": 0, "progress": 0, "resources": 0, "stats": 0, "__init__": 0,
    "inputs": 1, "formats": 1, "results": 1,
    "model": 2, "answering": 2,
    "checks": 3, "decision": 3,
    "plugin": 4, "commands": 4, "__main__": 4,
}  # fmt: skip


# Libraries whose import costs seconds or memory (or is optional): imported inside the
# function that needs them, so `punie-gates --help`, report rendering and the plugin's
# start stay fast. Everything else is imported at module top.
HEAVY = frozenset({
    "mlx", "mlx_lm", "transformers", "mistral_common", "tokenizers", "huggingface_hub", "safetensors",
    "numpy", "scipy", "matplotlib", "jsonschema", "jinja2", "openai", "selenium",
})  # fmt: skip

# Package pairs that still import each other, each with why (none today).
KNOWN_MUTUAL_PACKAGES: set[frozenset[str]] = set()


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
            names = (
                [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "punie_gates"
                else [node.module]
            )
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) of every import that runs (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(sub)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    # An import under `except ImportError` probes an optional or private API where it is
    # used (plugin/early.py: pytest's own setup search): it counts as at top.
    probed = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.Try)
        and any(h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers)
        for statement in node.body
        for sub in ast.walk(statement)
    }
    in_function = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for sub in ast.walk(node)
        if id(sub) not in probed
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, name, id(node) in in_function) for name in names]
    return found


def _graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (function-level imports included)."""
    paths = {_module_name(p): p for p in _modules()}

    def module_of(name: str) -> str | None:  # `punie_gates.model.folder.read_config` -> `punie_gates.model.folder`
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = {module_of(name) for _, name, _ in _runtime_imports(path) if name.startswith("punie_gates")}
        graph[module] = {t for t in targets if t and t != module and not module.startswith(f"{t}.")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
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


def test_no_module_reaches_itself_through_its_imports():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_two_packages_import_each_other():
    edges = {(_part(a), _part(b)) for a, targets in _graph().items() for b in targets if _part(a) != _part(b)}
    mutual = {frozenset(edge) for edge in edges if edge[::-1] in edges}
    for known in KNOWN_MUTUAL_PACKAGES:  # a known pair that no longer loops must leave the list
        assert known in mutual, f"{sorted(known)} no longer import each other: remove them from KNOWN_MUTUAL_PACKAGES"
    wrong = sorted(" <-> ".join(sorted(pair)) for pair in mutual - KNOWN_MUTUAL_PACKAGES)
    assert not wrong, "packages that import each other:\n" + "\n".join(wrong)


def test_imports_sit_at_module_top_unless_heavy():
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} inside a function"
        for path in _modules()
        for line, name, inside in _runtime_imports(path)
        if inside and name.split(".")[0] not in HEAVY
    ]
    assert not wrong, "move these to the top of their module (or name the library in HEAVY):\n" + "\n".join(
        dict.fromkeys(wrong)
    )


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


def test_every_module_opens_with_its_one_idea():
    missing = [
        str(p.relative_to(PACKAGE.parent))
        for p in _modules()
        if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert not missing, "give these modules a docstring saying their one idea:\n" + "\n".join(missing)
