"""The import graph of tst_bench has no cycle, counting imports inside functions too.

An import inside a function hides a cycle from Python's import machinery but not from a reader:
the two modules still depend on each other. The graph is read with `ast` from every module's
source: module-level and function-level `import` / `from ... import` statements, relative ones
resolved. Importing `a.b.c` also runs the packages `a.b` and `a`, so an edge goes to each package
above the imported module that is not also above the importer (a module's own packages are
already being imported when it runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tst_bench

PACKAGE = "tst_bench"
ROOT = Path(tst_bench.__file__).parent


def module_name(path: Path) -> str:
    parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name an import statement anywhere in the file refers to (absolute)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep])
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        own_packages = set(packages_of(module))
        for name in imported_names(module, path):
            if name not in modules:
                continue
            targets = {name, *packages_of(name)} - own_packages - {module}
            graph[module] |= {target for target in targets if target in modules}
    return graph


def cycle_groups(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycle_within(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A concrete path a -> b -> ... -> a inside a strongly connected component, for the message."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = parents[node]
                    return [start, *reversed(path[1:]), start]
                if target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_tst_bench_import_graph_has_no_cycle():
    graph = import_graph()
    groups = cycle_groups(graph)
    assert not groups, "import cycles (imports inside functions count):\n" + "\n".join(
        " -> ".join(cycle_within(graph, set(group))) + f"  (modules in the cycle: {', '.join(group)})"
        for group in groups
    )


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    """The detector itself: a cycle hidden in a function through a relative import is found."""
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycle_groups(graph) == [["p.a", "p.b", "p.c"]]
    assert cycle_within(graph, {"p.a", "p.b", "p.c"}) == ["p.a", "p.b", "p.c", "p.a"]
    source = tmp_path / "b.py"
    source.write_text("def later():\n    from . import a\n    from .c import thing\n")
    assert set(imported_names("p.b", source)) >= {"p.a", "p.c"}
    package = tmp_path / "__init__.py"
    package.write_text("from .sub import x\n")
    assert "p.sub" in set(imported_names("p", package))
