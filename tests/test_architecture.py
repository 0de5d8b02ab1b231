"""The house's shape: no import circle (function-level imports included), public names that stay themselves."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp

import wan_nb


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over direct imports."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if not w.startswith("wan_nb"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_even_through_imports_inside_functions():
    graph = grimp.build_graph("wan_nb")
    assert "wan_nb.recovery.engine" in graph.modules  # the graph is the package's, not an empty one
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle_made_inside_a_function(tmp_path):
    package = tmp_path / "loop_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from loop_pkg import b\n    return b\n")
    (package / "b.py").write_text("from loop_pkg import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("loop_pkg")
    finally:
        sys.path.remove(str(tmp_path))
    cycles = [[m.replace("loop_pkg", "wan_nb") for m in c] for c in _cycles(_Renamed(graph))]
    assert cycles == [["wan_nb.a", "wan_nb.b"]]


class _Renamed:
    """The fixture package's graph under the name the finder follows."""

    def __init__(self, graph: grimp.ImportGraph) -> None:
        self._graph = graph

    @property
    def modules(self) -> set[str]:
        return {m.replace("loop_pkg", "wan_nb") for m in self._graph.modules}

    def find_modules_directly_imported_by(self, module: str) -> set[str]:
        found = self._graph.find_modules_directly_imported_by(module.replace("wan_nb", "loop_pkg"))
        return {m.replace("loop_pkg", "wan_nb") for m in found}


def test_the_import_contracts_hold():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_every_public_name_is_still_itself_after_every_submodule_is_imported():
    before = {name: getattr(wan_nb, name) for name in wan_nb.__all__}
    for info in pkgutil.walk_packages(wan_nb.__path__, "wan_nb."):
        importlib.import_module(info.name)
    for name, value in before.items():
        assert getattr(wan_nb, name) is value, name
    assert callable(wan_nb.diagnose) and callable(wan_nb.plan) and callable(wan_nb.recover)
