"""Who is asking: the client address every per-IP limit and hash is keyed on, read in one place."""

from __future__ import annotations

from litestar import Request


def client_ip(request: Request) -> str:
    """The address of the client that opened the connection ("unknown" if the server was not told)."""
    return request.client.host if request.client else "unknown"
