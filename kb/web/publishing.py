"""GET /api/v1/index: the publisher hands its live index build to replicas (kb/content/publish.py).

Only with KB_PUBLISH_INDEX=true (404 otherwise), only for the index token every process on the
database can read (401 without, 403 wrong), and kept out of the public API schema.
"""

from __future__ import annotations

from litestar import Request, Response, Router, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import File

from kb.content import publish
from kb.storage.secrets import INDEX_TOKEN, shared_secret


def _authorize(request: Request, state: State) -> None:
    settings = state["settings"]
    expected = shared_secret(state["db"], INDEX_TOKEN) if settings.publish_index else ""
    publish.authorize(settings, expected, request.headers.get("authorization", ""))


@get("/index", sync_to_thread=True, include_in_schema=False, cache_control=None)
def offered_build(request: Request, state: State) -> Response[publish.Offer]:
    """The publisher's live build: its name, model and each file's size and SHA-256."""
    _authorize(request, state)
    return Response(publish.offer(state["settings"]), headers={"Cache-Control": "no-store"})


@get("/index/{version:str}/{name:str}", sync_to_thread=True, include_in_schema=False)
def build_file(request: Request, state: State, version: FromPath[str], name: FromPath[str]) -> File:
    """One file of a build the publisher keeps (the live one and the two before it)."""
    _authorize(request, state)
    path = publish.build_file(state["settings"], version, name)
    return File(path=path, filename=name, media_type="application/octet-stream")


ROUTES = [Router(path="/api/v1", route_handlers=[offered_build, build_file])]
