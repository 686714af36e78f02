"""Every route handler of the app, gathered from the modules that define them."""

from __future__ import annotations

import importlib
import importlib.util

# Each module exposes ROUTES: a list of handlers, controllers or routers.
MODULES = ("api", "pages", "widget", "tickets", "admin")


def handlers() -> list:
    out: list = []
    for name in MODULES:
        qualified = f"kb.web.{name}"
        if importlib.util.find_spec(qualified) is None:  # a feature not built yet
            continue
        out.extend(importlib.import_module(qualified).ROUTES)
    return out
