"""Every route handler of the app, gathered from the modules that define them."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from kb.web import admin, api, editor, pages, publishing, tickets, widget


def handlers() -> list[ControllerRouterHandler]:
    """The API routers as they are, and the HTML pages under one router kept out of the OpenAPI schema."""
    html = Router(path="/", route_handlers=[*pages.ROUTES, *widget.ROUTES, *editor.PUBLIC], include_in_schema=False)
    return [*api.ROUTES, html, *tickets.ROUTES, *admin.ROUTES, *editor.ROUTES, *publishing.ROUTES]
