"""The embeddable widget's script and its demo page.

The script is written readable (widget/kb-widget.js: names, comments) and served minified by
rjsmin, computed once per version of the file; its size budget is measured on what is served
(tests/test_widget_size.py), as emoji-picker-element budgets its bundle rather than its source.
"""

from __future__ import annotations

import functools
from pathlib import Path

import rjsmin

from litestar import Response, get

from kb.errors import NotFoundError

WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"


def _read(name: str) -> bytes:
    path = WIDGET_DIR / name
    if not path.is_file():
        raise NotFoundError(f"widget file {name} is missing from this installation")
    return path.read_bytes()


@functools.lru_cache(maxsize=4)
def _minify(path: str, mtime_ns: int) -> bytes:
    return rjsmin.jsmin(Path(path).read_text(encoding="utf-8"), keep_bang_comments=True).encode("utf-8")


def served_script() -> bytes:
    """kb-widget.js as served: minified, its /*! header kept."""
    _read("kb-widget.js")  # a clear 404 when the file is missing
    path = WIDGET_DIR / "kb-widget.js"
    return _minify(str(path), path.stat().st_mtime_ns)


@get("/widget/kb-widget.js", sync_to_thread=False, include_in_schema=False)
def widget_script() -> Response[bytes]:
    """The widget: one script tag on any page (cached for an hour, CORS-free by design)."""
    return Response(
        served_script(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600", "Cross-Origin-Resource-Policy": "cross-origin"},
    )


@get("/widget/demo", sync_to_thread=False, include_in_schema=False)
def widget_demo() -> Response[bytes]:
    """A page showing the snippet and the widget working against this server."""
    return Response(_read("demo.html"), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


ROUTES = [widget_script, widget_demo]
