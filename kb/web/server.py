"""Run the app under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

import uvicorn

from kb.settings import Settings
from kb.web.app import create_app


def run(settings: Settings) -> None:
    """Serve the help center; with several workers each one loads the model and index."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = dict(host=settings.host, port=settings.port, log_level=settings.log_level,
                   loop="uvloop", http="httptools", access_log=False, timeout_graceful_shutdown=5)
    if settings.workers > 1:
        import os

        # Workers are fresh processes: hand them the resolved settings through KB_* variables.
        for name, value in vars(settings).items():
            os.environ["KB_" + name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
        uvicorn.run("kb.web.server:app", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)


def app():
    """App factory for multi-worker runs."""
    return create_app(Settings.load())
