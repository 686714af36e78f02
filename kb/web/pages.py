"""Server-rendered help-center pages (Jinja2, autoescaped, usable without JavaScript)."""

from __future__ import annotations

from litestar import Request
from litestar.response import Template


def error_page(request: Request, status: int, title: str, detail: str, headers=None) -> Template:
    """The HTML error page for every portal error (404 included)."""
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail},
        status_code=status,
        headers=headers or {},
    )


ROUTES: list = []
