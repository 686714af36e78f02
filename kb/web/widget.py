"""The embeddable widget's script and its demo page."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get

from kb.errors import NotFoundError

WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"


def _read(name: str) -> bytes:
    path = WIDGET_DIR / name
    if not path.is_file():
        raise NotFoundError(f"widget file {name} is missing from this installation")
    return path.read_bytes()


@get("/widget/kb-widget.js", sync_to_thread=False, include_in_schema=False)
def widget_script() -> Response[bytes]:
    """The widget: one script tag on any page (cached for an hour, CORS-free by design)."""
    return Response(
        _read("kb-widget.js"),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600", "Cross-Origin-Resource-Policy": "cross-origin"},
    )


@get("/widget/demo", sync_to_thread=False, include_in_schema=False)
def widget_demo() -> Response[bytes]:
    """A page showing the snippet and the widget working against this server."""
    return Response(_read("demo.html"), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


ROUTES = [widget_script, widget_demo]
