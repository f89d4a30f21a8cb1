"""The project's import graph has no cycle, between files or between packages (issue 22).

The graph is read from the source with `ast`, so it holds every import a module can make: at
the top, inside a function (a lazy import still makes the dependency) and under
`if TYPE_CHECKING:`. Its nodes are the modules under ursa/, harness/ and benchmarks/; a
package's node is its folder. The dependency direction the design asks for is plug-ins
(benchmarks/) -> harness -> ursa; a cycle anywhere makes that order meaningless.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ursa", "harness", "benchmarks")

Graph = dict[str, set[str]]


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name `module` imports (`from a import b` yields a.b)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")[: None if is_package else -1]
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            yield from (f"{base}.{alias.name}" for alias in node.names)


def module_graph(modules: dict[str, Path]) -> Graph:
    """Module -> the project modules it imports: for each name, the longest project module that
    it starts with (`from harness.plugins import Registry` -> harness.plugins)."""
    graph: Graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _ancestors(package: str) -> list[str]:
    """The package and every package that contains it: a.b.c -> [a.b.c, a.b, a]."""
    parts = package.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def package_graph(graph: Graph, modules: dict[str, Path]) -> Graph:
    """Package (folder) -> the packages its modules import. A package contains its subpackages:
    an import from a.x into b.y is an edge between a.x, a and b.y, b alike; one between a
    package and its own sub- or parent package (a part of one component) is no edge."""

    def package(module: str) -> str:
        return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]

    packages: Graph = {package(m): set() for m in graph}
    for module, targets in graph.items():
        for target in targets:
            for a in _ancestors(package(module)):
                packages.setdefault(a, set()).update(
                    b
                    for b in _ancestors(package(target))
                    if b not in _ancestors(a) and a not in _ancestors(b)
                )
    return packages


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
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
            while (member := stack.pop()) != node:
                component.append(member)
            if component:
                found.append(sorted([*component, node]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(component: list[str], graph: Graph) -> str:
    """One cycle's edges, `a -> b`, for the failure message."""
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "; ".join(edges)


def test_no_cycle_between_files() -> None:
    graph = module_graph(project_modules())
    found = [describe(c, graph) for c in cycles(graph)]
    assert not found, "import cycles between files (break each by moving what both need):\n" + (
        "\n".join(found)
    )


def test_no_cycle_between_packages() -> None:
    modules = project_modules()
    graph = package_graph(module_graph(modules), modules)
    found = [describe(c, graph) for c in cycles(graph)]
    assert not found, "import cycles between packages (a lazy import does not break one):\n" + (
        "\n".join(found)
    )


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A cycle made of a lazy import, a TYPE_CHECKING import and a relative import is found
    between files and, through a subpackage, between packages: the tests above can fail."""
    files = {
        "harness/__init__.py": "",
        "harness/a.py": "def f():\n    from ursa.sub.b import g\n",
        "ursa/__init__.py": "",
        "ursa/sub/__init__.py": "",
        "ursa/sub/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n"
        ),
        "ursa/c.py": "from harness import a\nC = 1\n",
        "benchmarks/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = project_modules(tmp_path)
    graph = module_graph(modules)
    assert cycles(graph) == [["harness.a", "ursa.c", "ursa.sub.b"]]
    assert describe(cycles(graph)[0], graph) == (
        "harness.a -> ursa.sub.b; ursa.c -> harness.a; ursa.sub.b -> ursa.c"
    )
    assert cycles(package_graph(graph, modules)) == [["harness", "ursa"]]
