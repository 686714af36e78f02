"""Keep the dependency arrows true: kb/web -> kb -> search, and search knows nothing above it.

kb/ is grouped by purpose (content, serving, storage, tickets, staff, insight, measure, web); the
packages form layers with no import circle, and no serving code imports the offline measurement.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEARCH_FORBIDDEN = {"kb", "litestar", "jinja2", "sqlite_utils", "sqlite3", "sqlalchemy", "alembic", "psycopg"}
KB_FORBIDDEN = {"litestar", "jinja2"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    found.append((node.lineno, "<relative import escapes the top-level package>"))
                    continue
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(files: list[Path], forbidden: set[str]) -> list[str]:
    out = []
    for path in files:
        for line, target in imports(path):
            top = target.split(".")[0]
            if top in forbidden or target.startswith("<"):
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    return sorted(set(out))


def python_files(directory: str, exclude: str | None = None) -> list[Path]:
    files = sorted((ROOT / directory).rglob("*.py"))
    if exclude:
        files = [f for f in files if (ROOT / exclude) not in f.parents]
    return files


def test_checker_sees_every_import_form(tmp_path, monkeypatch):
    pkg = tmp_path / "search"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(
        "import os\nimport kb.content.articles\nfrom kb import desk\nfrom litestar import get\nimport jinja2 as j\n"
        "def f():\n    import sqlite_utils\n    from .. import x\n    importlib.import_module('kb.storage.database')\n"
        "from . import text\nfrom .fusion import Fusion\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations([pkg / "bad.py"], SEARCH_FORBIDDEN)
    assert sorted({int(v.split(":")[1]) for v in found}) == [2, 3, 4, 5, 7, 8, 9], found
    assert [t for _, t in imports(pkg / "bad.py") if t.startswith("search")] == [
        "search", "search.text", "search.fusion", "search.fusion.Fusion"
    ]


def test_search_is_independent_of_kb_and_the_web():
    files = python_files("search")
    assert files, "no search/*.py found"
    assert violations(files, SEARCH_FORBIDDEN) == []


def test_kb_core_has_no_web_imports():
    files = python_files("kb", exclude="kb/web")
    assert any(f.name == "desk.py" for f in files)
    assert violations(files, KB_FORBIDDEN) == []


@pytest.mark.parametrize("module", ["search", "search.index", "search.embed"])
def test_search_imports_without_kb_loaded(module):
    import subprocess
    import sys

    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'kb', 'litestar', 'jinja2', 'sqlite_utils'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


# Which kb package may import which: a layer only looks down. cli sits on top of everything.
BASE = {"kb.errors", "kb.settings", "kb.urls", "kb.clock", "kb.logs"}
LAYERS = {
    "kb.errors": set(),
    "kb.urls": set(),
    "kb.clock": set(),
    "kb.logs": set(),
    "kb.settings": {"kb.errors", "kb.urls"},
    "kb.storage": BASE,
    "kb.content": BASE,
    "kb.serving": BASE | {"kb.storage", "kb.content"},
    "kb.tickets": BASE | {"kb.storage"},
    "kb.staff": BASE | {"kb.storage"},
    "kb.insight": BASE | {"kb.storage", "kb.content", "kb.serving"},
    "kb.web": BASE | {"kb.storage", "kb.content", "kb.serving", "kb.tickets", "kb.staff", "kb.insight"},
    "kb.measure": BASE | {"kb.storage", "kb.content", "kb.serving"},
}


def kb_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "kb").rglob("*.py"))}


def kb_graph() -> dict[str, set[str]]:
    """Module -> the kb modules it imports, at any depth (lazy imports inside functions count too)."""
    modules = kb_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for _, target in imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "kb":
                deps.add(target)
        graph[name] = deps
    return graph


def layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kb_modules_import_no_circle():
    assert cycles(kb_graph()) == []


def test_kb_packages_only_import_the_layers_below():
    bad = []
    for module, deps in kb_graph().items():
        own = layer(module)
        if own in ("kb.cli", "kb.__main__", "kb.__init__", "kb"):
            continue
        assert own in LAYERS, f"{module} is in no known layer: add its package to LAYERS"
        for dep in deps:
            if layer(dep) != own and layer(dep) not in LAYERS[own]:
                bad.append(f"{module} imports {dep}")
    assert bad == []


def test_serving_code_never_imports_measurement():
    serving = [m for m in kb_graph() if layer(m) not in ("kb.measure", "kb.cli", "kb.__main__")]
    graph = kb_graph()
    bad = [f"{m} imports {d}" for m in serving for d in graph[m] if layer(d) == "kb.measure"]
    assert bad == []
