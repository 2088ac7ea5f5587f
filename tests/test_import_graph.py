"""The house's import directions (STYLE.md): core <- engine; core <- structure, generation, benchmarks; a product
imports the engine only for its own training; no product imports another; no import cycle. Function-level
imports count as much as module-level ones."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# installed name -> source folder (pyproject's package-dir)
PACKAGES = {"xtrimo.structure": "structure", "xtrimo.generation": "generation", "xtrimo.benchmarks": "benchmarks",
            "xtrimo": "xtrimo"}
PRODUCTS = ("xtrimo.structure", "xtrimo.generation", "xtrimo.benchmarks")
ENGINE = "xtrimo.train"
# a product's own training run may import the engine
TRAINING = {"xtrimo.structure.train", "xtrimo.structure.lit", "xtrimo.generation.sft_demo"}


def _modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("")
            if "speed" in rel.parts:  # speed benchmarks are scripts, they may import anything
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([name, *parts])] = path
    return found


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The xtrimo modules ``path`` imports (resolved to the longest known module name)."""
    out = set()
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _owner(module: str) -> str:
    for p in PRODUCTS:
        if module == p or module.startswith(p + "."):
            return p
    if module == ENGINE or module.startswith(ENGINE + "."):
        return ENGINE
    return "core"


def test_imports_follow_the_house() -> None:
    modules = _modules()
    known = set(modules)
    bad = []
    graph = {}
    for name, path in modules.items():
        deps = _imports(path, name, known)
        graph[name] = {d for d in deps if not name.startswith(d + ".")}  # a module's own package __init__
        src = _owner(name)
        for dep in deps:
            dst = _owner(dep)
            if src == dst or dst == "core":
                continue
            if src == "core":
                bad.append(f"core {name} imports {dep}")
            elif dst == ENGINE and name not in TRAINING:
                bad.append(f"{name} imports the engine ({dep}) outside its own training")
            elif dst in PRODUCTS:
                bad.append(f"{name} imports another product ({dep})")
    assert not bad, "\n".join(bad)
    assert not _cycles(graph), _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module found on an import cycle, with one cycle through it."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found
