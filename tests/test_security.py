"""Security headers, CORS allow-list, path traversal in slugs and static paths."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/", "/search?q=vpn", "/articles/vpn-connect", "/contact", "/nope-404"])
def test_portal_pages_send_security_headers(client, path):
    r = client.get(path, headers={"accept": "text/html"})
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_api_responses_are_nosniff(client):
    assert client.get("/api/v1/healthz").headers["x-content-type-options"] == "nosniff"


def test_cors_preflight_only_for_allowed_origins(client):
    ok = client.options("/api/v1/tickets", headers={"origin": "http://allowed.example",
                                                    "access-control-request-method": "POST",
                                                    "access-control-request-headers": "content-type"})
    assert ok.headers.get("access-control-allow-origin") == "http://allowed.example"
    bad = client.options("/api/v1/tickets", headers={"origin": "http://evil.example",
                                                     "access-control-request-method": "POST"})
    assert bad.headers.get("access-control-allow-origin") is None
    post = client.post("/api/v1/tickets", json={}, headers={"origin": "http://evil.example"})
    assert post.status_code == 403


@pytest.mark.parametrize("path", [
    "/static/../kb.db", "/static/..%2f..%2fkb.db", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/widget/../pyproject.toml", "/articles/..%2F..%2Fetc%2Fpasswd", "/articles/%2e%2e",
    "/categories/..%2f..%2fetc",
])
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404)
    assert "[project]" not in r.text and "SQLite format" not in r.text and "root:" not in r.text
