"""ptx has no import cycles, among its modules nor among its subpackages (``ptx.nn``, ``ptx.ops``, ...).

Imports are read with ``ast`` from every ``ptx/**/*.py``, function-level ones included: a lazy import still
ties two packages together. ``from pkg import name`` imports the module ``pkg.name`` when there is one, else
``pkg``. Not counted: imports under ``if TYPE_CHECKING:`` (never executed; annotations only) and module names
handed to ``importlib`` as strings (the registry's methods).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

Edges = dict[str, dict[str, str]]  # importer -> {imported: "file:line" of one import that makes the edge}


def _modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted((root / "ptx").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported_names(node: ast.AST, package: str, modules: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: strip level - 1 components off the importer's package
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def _executed_nodes(node: ast.AST):
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for branch in child.orelse:
                yield branch
                yield from _executed_nodes(branch)
            continue
        yield from _executed_nodes(child)


def module_graph(root: pathlib.Path = REPO) -> Edges:
    """Edges between ptx modules; an import of a name inside a module counts as importing that module."""
    modules = _modules(root)
    graph: Edges = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _executed_nodes(ast.parse(path.read_text(), str(path))):
            for target in _imported_names(node, package, modules):
                while target and target not in modules:  # a name defined in a module: that module
                    target = target.rpartition(".")[0]
                if target.split(".")[0] == "ptx" and target != name:
                    graph[name].setdefault(target, f"{path.relative_to(root)}:{node.lineno}")
    return graph


def subpackage_graph(graph: Edges) -> Edges:
    """The module graph with every module folded into its top-level unit (``ptx.nn.vgg`` -> ``ptx.nn``)."""

    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    folded: Edges = {}
    for src, targets in graph.items():
        folded.setdefault(unit(src), {})
        for dst, where in targets.items():
            if unit(dst) != unit(src):
                folded[unit(src)].setdefault(unit(dst), where)
    return folded


def find_cycle(graph: Edges) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def describe(cycle: list[str], graph: Edges) -> str:
    return "import cycle:\n" + "\n".join(
        f"  {a} -> {b}   ({graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)
    )


@pytest.fixture(scope="module")
def ptx_graph() -> Edges:
    return module_graph()


def test_no_cycles_among_modules(ptx_graph):
    graph = ptx_graph
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph)


def test_no_cycles_among_subpackages(ptx_graph):
    graph = subpackage_graph(ptx_graph)
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph)


def test_graph_sees_function_level_imports_and_finds_cycles(ptx_graph):
    graph = ptx_graph
    assert "ptx.losses.pssim" in graph["ptx.evaluate.evaluators"]  # imported inside a method
    assert "ptx.io.torch_pickle" in graph["ptx.nn.vgg"]  # imported inside a function
    cyclic = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}}
    assert find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert "c -> a   (c.py:3)" in describe(find_cycle(cyclic), cyclic)
    typing_only = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ptx.x\nimport ptx.y\n"
    )
    executed = [a.name for n in _executed_nodes(typing_only) if isinstance(n, ast.Import) for a in n.names]
    assert executed == ["ptx.y"]
    folded = subpackage_graph({"ptx.x.m": {"ptx.y.n": "x/m.py:1"}, "ptx.y.n": {"ptx.x.k": "y/n.py:5"}})
    assert find_cycle(folded) == ["ptx.x", "ptx.y", "ptx.x"]
