"""Keep the dependency arrows true: kb/web -> kb -> search, and search knows nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEARCH_FORBIDDEN = {"kb", "litestar", "jinja2", "sqlite_utils"}
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
        "import os\nimport kb.articles\nfrom kb import desk\nfrom litestar import get\nimport jinja2 as j\n"
        "def f():\n    import sqlite_utils\n    from .. import x\n    importlib.import_module('kb.store')\n"
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
