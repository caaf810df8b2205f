"""Checks on the shape of the code that anyone can run (issue #14): no import cycle in wbg_core,
counting the imports inside functions, and no module over 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "wbg_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """wbg_core modules that `path` imports, at module level or lazily inside functions: a lazy
    import that closes a loop is still a cycle, only deferred to the first call."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            targets = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_import_cycle_inside_wbg_core():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: _imports(p, set(files)) for m, p in files.items()}
    assert "wbg_core.composition.parse" in graph["wbg_core.composition.validity"]  # lazy imports are seen

    def parent_packages(m: str) -> set[str]:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = m.split(".")
        return {".".join(parts[:k]) for k in range(1, len(parts))} & set(files)

    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if n in parent_packages(m):
                continue  # a submodule importing its own package's names is how packages work
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


MAX_LINES = 400


def test_no_module_over_400_lines():
    """A module past 400 lines holds more than one job: split it by what it is for (the way
    oracle_training.py holds the oracle's training apart from oracle.py)."""
    long = {str(p.relative_to(PKG.parent)): n for p in sorted(PKG.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
