"""The import graph of gateway/, adapters/ and local_moe/, read from the source with `ast`.

Every import statement counts, including those inside functions (they run too, only later), except
those under `if TYPE_CHECKING:`. `from pkg import mod` is an edge to `pkg.mod` when that is a module.
The graph must have no cycle; the engines (PII, risk, hallucination, the audit store, local_moe)
must not import the layers that drive them (HTTP, the pipeline, the compliance surfaces); and an
import written inside a function must be of a heavy optional module or say, in a comment, why.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "adapters", "local_moe")
ENGINES = ("gateway.pii", "gateway.risk", "gateway.hallucination", "gateway.audit", "local_moe")
SURFACES = ("gateway.http", "gateway.pipeline", "gateway.compliance")
# Imports that may sit inside a function without a comment: each takes seconds (or pulls a model
# stack) and only some deployments need it.
HEAVY_PACKAGES = ("torch", "presidio_analyzer", "presidio_anonymizer", "spacy", "litellm", "transformers",
                  "sentence_transformers")
# Our modules that import one of those at their top (test_heavy_modules_are_heavy keeps this honest).
HEAVY_MODULES = ("gateway.pii.analyzer", "adapters.local_moe_adapter", "local_moe")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int
    inline: bool  # written inside a function

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


@dataclass(frozen=True)
class Import:
    """One import statement, with the absolute names it imports."""

    module: str  # the module it is written in
    node: ast.Import | ast.ImportFrom
    names: tuple[str, ...]  # `import a.b` -> a.b; `from a import b, c` -> a, a.b, a.c
    inline: bool
    path: Path


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def find_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.Module):
    """(import node, inside a function?) for every import not under `if TYPE_CHECKING:`."""
    def walk(node: ast.AST, inline: bool):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, inline
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from walk(child, inline)
            return
        inside = inline or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            yield from walk(child, inside)

    yield from walk(tree, False)


def imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    modules = find_modules(root, packages)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, inline in _statements(tree):
            if isinstance(node, ast.Import):
                names = tuple(alias.name for alias in node.names)
            else:
                base = node.module or ""
                if node.level:
                    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, *([node.module] if node.module else [])])
                names = (base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*"))
            found.append(Import(module, node, names, inline, path))
    return found


def edges(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Edge]:
    modules = find_modules(root, packages)
    out = []
    for imp in imports(root, packages):
        if isinstance(imp.node, ast.Import):
            targets = [n for n in imp.names if n in modules]
        else:
            base, *members = imp.names
            submodules = [m for m in members if m in modules]
            # `from pkg import mod` depends on pkg.mod; `from pkg import name` on pkg itself
            targets = submodules + ([base] if base in modules and len(submodules) < len(members) else [])
            if not members and base in modules:  # `from pkg import *`
                targets = [base]
        out += [Edge(imp.module, t, imp.path, imp.node.lineno, imp.inline) for t in targets if t != imp.module]
    return out


def cycles(graph: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected group of modules, found with Tarjan's algorithm."""
    out_edges: dict[str, dict[str, Edge]] = defaultdict(dict)
    for e in graph:
        out_edges[e.source].setdefault(e.target, e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(out_edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted({e.source for e in graph}):
        if v not in index:
            connect(v)

    return sorted((_round_trip(min(group), group, out_edges) for group in groups), key=lambda c: c[0].source)


def _round_trip(start: str, group: set[str], out_edges: dict[str, dict[str, Edge]]) -> list[Edge]:
    """The shortest way from `start` back to itself inside a strongly connected group (breadth first)."""
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while True:
        v = queue.pop(0)
        for w, e in sorted(out_edges[v].items()):
            if w == start:
                return [*paths[v], e]
            if w in group and w not in paths:
                paths[w] = [*paths[v], e]
                queue.append(w)


def forbidden(graph: list[Edge], engines: tuple[str, ...] = ENGINES,
              surfaces: tuple[str, ...] = SURFACES) -> list[Edge]:
    return [e for e in graph if _within(e.source, engines) and _within(e.target, surfaces)]


def _comment_lines(source: str) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


def unexplained_inline(root: Path, packages: tuple[str, ...] = PACKAGES,
                       heavy: tuple[str, ...] = HEAVY_PACKAGES + HEAVY_MODULES) -> list[Import]:
    """Imports inside functions that are neither of a heavy module nor commented: a comment on one of
    the statement's lines, or on the nearest non-blank line above it (or above the run of import
    statements it ends, so one comment can explain a block)."""
    out = []
    by_path: dict[Path, list[Import]] = defaultdict(list)
    for imp in imports(root, packages):
        if imp.inline:
            by_path[imp.path].append(imp)
    for path, found in by_path.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        comments = _comment_lines(source)
        import_lines = {n for imp in imports_in(source) for n in range(imp.lineno, imp.end_lineno + 1)}
        for imp in found:
            if isinstance(imp.node, ast.Import):
                is_heavy = all(_within(name, heavy) for name in imp.names)
            else:  # `from heavy import x`, or `from pkg import heavy_module`
                base, *members = imp.names
                is_heavy = _within(base, heavy) or bool(members) and all(_within(m, heavy) for m in members)
            if is_heavy:
                continue
            if comments & set(range(imp.node.lineno, imp.node.end_lineno + 1)):
                continue
            above = imp.node.lineno - 1
            while above > 0 and (not lines[above - 1].strip() or
                                 (above in import_lines and above not in comments)):
                above -= 1
            if above in comments and lines[above - 1].lstrip().startswith("#"):
                continue
            out.append(imp)
    return out


def imports_in(source: str) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)]


def _describe(cycle: list[Edge], root: Path) -> str:
    names = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
    return f"{names}  ({', '.join(e.where(root) for e in cycle)})"


# -- the tree ------------------------------------------------------------------------------------


def test_no_import_cycles():
    found = cycles(edges(ROOT))
    assert not found, "import cycles:\n" + "\n".join(_describe(c, ROOT) for c in found)


def test_engines_do_not_import_the_layers_that_drive_them():
    found = forbidden(edges(ROOT))
    assert not found, "engine modules importing HTTP, the pipeline or compliance:\n" + "\n".join(
        f"{e.where(ROOT)}: {e.source} imports {e.target}" for e in found)


def test_inline_imports_are_heavy_or_explained():
    found = unexplained_inline(ROOT)
    assert not found, (
        "imports inside functions without a reason (move them to the top, or say why in a comment):\n"
        + "\n".join(f"{imp.path.relative_to(ROOT)}:{imp.node.lineno}: {ast.unparse(imp.node)}" for imp in found))


def test_heavy_modules_are_heavy():
    """Each module the inline check lets through must really import a heavy package at its top."""
    tops: dict[str, set[str]] = defaultdict(set)
    for imp in imports(ROOT):
        if not imp.inline:
            tops[imp.module].update(imp.names)
    modules = find_modules(ROOT)

    def reaches_heavy(module: str, seen: set[str]) -> bool:
        seen.add(module)
        for name in tops[module]:
            if _within(name, HEAVY_PACKAGES):
                return True
            if name in modules and name not in seen and reaches_heavy(name, seen):
                return True
        return False

    light = [m for m in HEAVY_MODULES if not reaches_heavy(m, set())]
    assert not light, f"listed as heavy but import no heavy package at their top: {light}"


# -- the checks themselves, on a planted package -------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_cycle_is_found_even_through_a_function_level_import(tmp_path):
    root = _package(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/a.py": "from gateway import b\n",
        "gateway/b.py": "def f():\n    from . import c\n",
        "gateway/c.py": "import gateway.a\n",
        "gateway/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway import e\n",
        "gateway/e.py": "from gateway.d import x\n",
    })
    found = cycles(edges(root, ("gateway",)))
    assert [[e.source for e in c] for c in found] == [["gateway.a", "gateway.b", "gateway.c"]]
    assert _describe(found[0], root) == ("gateway.a -> gateway.b -> gateway.c -> gateway.a  "
                                         "(gateway/a.py:1, gateway/b.py:2, gateway/c.py:1)")
    # d <-> e is no cycle: d imports e only for the type checker


def test_a_planted_upward_import_is_reported_with_its_line(tmp_path):
    root = _package(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/pipeline.py": "from gateway.pii import scan\n",
        "gateway/http/__init__.py": "",
        "gateway/http/app.py": "",
        "gateway/pii/__init__.py": "",
        "gateway/pii/scan.py": "import json\n\n\ndef f():\n    from ..http import app\n",
        "gateway/pii/cli.py": "from gateway import pipeline\n",
    })
    found = forbidden(edges(root, ("gateway",)))
    assert sorted((e.where(root), e.target) for e in found) == [
        ("gateway/pii/cli.py:1", "gateway.pipeline"), ("gateway/pii/scan.py:5", "gateway.http.app")]


def test_a_planted_unexplained_inline_import_is_reported(tmp_path):
    root = _package(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/m.py": (
            "def bare():\n    import json\n\n"
            "def heavy():\n    import torch\n\n"
            "def explained():\n    # only `serve` needs it\n    import uvicorn\n\n"
            "def trailing():\n    import yaml  # only the CLI reads YAML\n\n"
            "def block():\n    # both only for `explain`\n    import csv\n\n    from gateway import n\n\n"
            "def string_is_no_comment():\n    x = '# not a comment'\n    import zlib\n"
        ),
        "gateway/n.py": "",
    })
    found = unexplained_inline(root, ("gateway",))
    assert [(imp.node.lineno, ast.unparse(imp.node)) for imp in found] == [(2, "import json"), (22, "import zlib")]
