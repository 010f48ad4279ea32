"""The data flows one way: no import cycle in the package, and no stage reaching back upstream.

The graph is read from the source (every import, at module level or inside a function, except
those under `if TYPE_CHECKING:`), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "artifactbench"
PACKAGE = "artifactbench"

# Reading results: the contract, the pure analysis over it, and every report built from it.
RESULTS = ("predictions", "analysis", "reports")
# Making results: what reads audio, calls a model or writes the score store.
UPSTREAM = ("runner", "detectors", "audio")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool) -> set[str]:
    """What `tree` imports, outside TYPE_CHECKING blocks: `a.b` for `import a.b`, `a.b.c` for
    `from a.b import c` (a module c, or a name c of module a.b: `import_graph` tells)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a `from pkg import name` counts as the
    submodule `pkg.name` where that is a module, else as `pkg`)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        raw = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        edges = set()
        for target in raw:
            if not target.startswith(PACKAGE):
                continue
            if target in paths:
                edges.add(target)
            elif target.rpartition(".")[0] in paths:
                edges.add(target.rpartition(".")[0])
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _in(module: str, stages: tuple[str, ...]) -> bool:
    return any(module == f"{PACKAGE}.{s}" or module.startswith(f"{PACKAGE}.{s}.") for s in stages)


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_results_never_reach_back_to_what_makes_them() -> None:
    graph = import_graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _in(module, RESULTS)
        for target in targets
        if _in(target, UPSTREAM)
    )
    assert wrong == []


def test_detectors_only_score() -> None:
    """A detector turns views into scores: it knows no bench, runner, analysis or side flow."""
    graph = import_graph()
    barred = ("runner", "benches", "experiments", "audit", *RESULTS)
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _in(module, ("detectors",))
        for target in targets
        if _in(target, barred)
    )
    assert wrong == []


def test_the_audit_is_a_side_flow() -> None:
    """The leakage audit reads benches through the decode pool and writes its own directory;
    only the command line runs it, and the reports take its findings as data, so it needs no
    runner, detector or results package either."""
    graph = import_graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if (_in(target, ("audit",)) and not _in(module, ("audit", "cli")))
        or (_in(module, ("audit",)) and _in(target, ("runner", "detectors", *RESULTS)))
    )
    assert wrong == []


def test_the_cycle_finder_sees_a_lazy_import_cycle(tmp_path: Path) -> None:
    source = "def late():\n    from artifactbench import a\n"
    graph = {
        "artifactbench.a": {"artifactbench.b"},
        "artifactbench.b": _imports(ast.parse(source), "artifactbench.b", False)
        & {"artifactbench.a"},
    }
    assert cycles(graph) == [["artifactbench.a", "artifactbench.b"]]
    hidden = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from artifactbench import a\n"
    )
    assert "artifactbench.a" not in _imports(ast.parse(hidden), "artifactbench.b", False)


@pytest.mark.parametrize(
    "module", ["artifactbench.runner.local_engine", "artifactbench.runner.ray_engine"]
)
def test_the_engines_share_the_plan_and_not_each_other(module: str) -> None:
    graph = import_graph()
    engines = {
        "artifactbench.runner.local_engine": {"artifactbench.runner.local_engine"},
        "artifactbench.runner.ray_engine": {
            "artifactbench.runner.ray_engine", "artifactbench.runner.ray_work"
        },
    }  # fmt: skip
    other = set().union(*(parts for name, parts in engines.items() if name != module))
    assert "artifactbench.runner.plan" in graph[module]
    assert not graph[module] & other
    # What runs on the cluster needs the plan only, never the driver or the other engine.
    assert not graph["artifactbench.runner.ray_work"] & {
        "artifactbench.runner.ray_engine",
        "artifactbench.runner.local_engine",
    }


def test_recipes_sit_above_every_stage() -> None:
    """A recipe orchestrates the runner, the side flows and the reports; no stage calls back up
    into it, only the command line does (and `python -m artifactbench` starts the command line)."""
    graph = import_graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if not _in(module, ("recipes", "cli", "__main__"))
        for target in targets
        if _in(target, ("recipes", "cli"))
    )
    assert wrong == []
