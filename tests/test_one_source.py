"""Limits and formats shown to people come from the code that enforces them (issue 14 item 7):
a page or the widget that hard-codes a maxlength or a pattern drifts from the server's check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "kb" / "web" / "templates").rglob("*.html"))
LITERAL = re.compile(r"""\b(maxlength|minlength|pattern)\s*=\s*["'](?!\{\{)[^"']*["']""")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_take_limits_and_formats_from_the_server(page: Path):
    assert not LITERAL.findall(page.read_text(encoding="utf-8"))
