"""The layering contract (pyproject.toml, [tool.importlinter]) holds: layers only import downwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_import_circle() -> None:
    """No two agentnet modules import each other, directly or through others (imports made only for
    type checking do not count: they never run)."""
    import grimp

    graph = grimp.build_graph("agentnet", exclude_type_checking_imports=True, cache_dir=None)
    assert strongly_connected(graph) == []


def strongly_connected(graph: Any) -> list[list[str]]:
    """The import circles (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
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
                circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_over_900_lines() -> None:
    """One job per module: a module that grows past this is doing two (split it by job)."""
    long = {}
    for path in sorted((ROOT / "agentnet").rglob("*.py")):
        if "protos" in path.parts:  # generated protobuf code
            continue
        lines = path.read_text().count("\n")
        if lines > 900:
            long[str(path.relative_to(ROOT))] = lines
    assert long == {}
