"""The edge of a real `kb serve` (uvicorn), as issue 17 attacked it on loopback: per-IP limits
under forged X-Forwarded-For, forged log lines, DNS rebinding and malformed requests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from servers import start_server, stop_server

TICKET = {"name": "Ann", "email": "ann@example.com", "subject": "Printer", "body": "The printer is jammed."}
LIMITS = {"KB_RATE_TICKETS_PER_HOUR": "3", "KB_RATE_SUGGEST_PER_MINUTE": "5"}


def serve(tmp_path_factory: pytest.TempPathFactory, indexed_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("edge") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    proc, base = start_server(data, {**LIMITS, **env}, inherit_kb=False)
    try:
        yield base, data
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def direct(tmp_path_factory, indexed_dir):
    """kb serve with the default settings: no trusted proxy."""
    yield from serve(tmp_path_factory, indexed_dir, {})


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, indexed_dir):
    """kb serve behind a (pretend) reverse proxy on 127.0.0.1."""
    yield from serve(tmp_path_factory, indexed_dir, {"KB_TRUSTED_PROXIES": "127.0.0.1"})


def statuses(base: str, n: int, forwarded_for: list[str], path: str = "/api/v1/tickets") -> list[int]:
    out = []
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(n):
            headers = {"x-forwarded-for": forwarded_for[i % len(forwarded_for)]}
            if path == "/api/v1/tickets":
                out.append(c.post(path, json=TICKET, headers=headers).status_code)
            else:
                out.append(c.get(path, params={"q": f"printer jam {i}"}, headers=headers).status_code)
    return out


def test_a_new_forwarded_for_each_time_does_not_reset_the_limits(direct):
    """The issue: from 127.0.0.1 with a new X-Forwarded-For each time, the limits never bit."""
    base, _ = direct
    spoofed = [f"198.51.100.{n}" for n in range(1, 50)]
    assert statuses(base, 4, spoofed) == [201, 201, 201, 429]
    assert statuses(base, 6, spoofed, "/api/v1/suggest") == [200] * 5 + [429]


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(proxied):
    base, _ = proxied
    assert statuses(base, 4, ["203.0.113.1"]) == [201, 201, 201, 429]
    assert statuses(base, 2, ["203.0.113.2", "203.0.113.3"]) == [201, 201]  # other clients, other budgets
    # What a client writes left of the proxy's own entry is not believed: all of these are 203.0.113.1.
    assert statuses(base, 2, ["6.6.6.1, 203.0.113.1", "6.6.6.2, 203.0.113.1"]) == [429, 429]


def test_a_forged_log_line_never_reaches_the_log(direct):
    base, data = direct
    forged = "2026-11-28 12:00:00,000 ERROR kb: forged by a visitor"
    with httpx.Client(base_url=base, timeout=30) as c:
        for path in ("/static/portal.css%00.js", "/static/x%0d%0a" + forged.replace(" ", "%20"),
                     "/articles/x%0a" + forged.replace(" ", "%20")):
            r = c.get(path)
            assert r.status_code in (400, 404), (path, r.status_code)
    logs = "".join(p.read_text(errors="replace") for p in data.glob("server-*.log"))
    assert "forged by a visitor" not in logs and "Traceback" not in logs


def test_dns_rebinding_is_refused_by_the_real_server(direct):
    """The issue: with Host and Origin both rebind.evil.example:PORT, POST /api/v1/feedback -> 201."""
    base, _ = direct
    port = base.rsplit(":", 1)[1]
    evil = f"rebind.evil.example:{port}"
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/api/v1/feedback", json={"helpful": True, "slug": "vpn-connect"},
                   headers={"host": evil, "origin": f"http://{evil}"})
        assert r.status_code == 400
        assert c.get("/", headers={"host": evil}).status_code == 400
        assert c.post("/api/v1/feedback", json={"helpful": True, "slug": "vpn-connect"}).status_code == 201
        assert c.get("/", headers={"host": f"localhost:{port}"}).status_code == 200
