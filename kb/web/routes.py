"""Every route handler of the app, gathered from the modules that define them."""

from __future__ import annotations

import importlib
import importlib.util

from litestar import Router

# Each module exposes ROUTES: a list of handlers, controllers or routers.
MODULES = ("api", "pages", "widget", "tickets", "admin")


# HTML pages are not part of the JSON API: they stay out of the OpenAPI schema.
PAGES = ("pages", "widget")


def handlers() -> list:
    out: list = []
    for name in MODULES:
        qualified = f"kb.web.{name}"
        if importlib.util.find_spec(qualified) is None:  # a feature not built yet
            continue
        routes = importlib.import_module(qualified).ROUTES
        out.append(Router(path="/", route_handlers=routes, include_in_schema=False) if name in PAGES else routes)
    return [r for item in out for r in (item if isinstance(item, list) else [item])]
