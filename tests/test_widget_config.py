"""What the server tells the widget and the portal (contact mode, settle time, field limits), and
what it tells the operator about origins it refuses."""

from __future__ import annotations

import logging
import re

import pytest

from kb.storage.settle import SETTLE_SECONDS
from kb.tickets.intake import FIELD_CHARS


def test_widget_config_is_public_and_comes_from_the_settings(client, settings):
    r = client.get("/api/v1/widget/config", headers={"origin": "http://allowed.example"})
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    body = r.json()
    assert body == {"contact_mode": "self-service", "settle_ms": round(SETTLE_SECONDS * 1000),
                    "limits": {"query": settings.max_query_chars, "comment": 2000, **FIELD_CHARS}}


@pytest.fixture
def owner_client(settings, services):
    from litestar.testing import TestClient

    from kb.staff.auth import add_user
    from kb.web.app import create_app

    add_user(services["db"], "owner@example.com", "owner", "correct horse battery")
    add_user(services["db"], "writer@example.com", "writer", "correct horse battery")
    with TestClient(create_app(settings, services=services)) as client:
        yield client


def login(client, email: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    client.post("/admin/login", data={"email": email, "password": "correct horse battery", "csrf_token": token})


def test_a_refused_origin_is_logged_once_and_listed_for_owners(owner_client, caplog):
    caplog.set_level(logging.WARNING, logger="kb.web.edge")
    for _ in range(3):
        r = owner_client.get("/api/v1/suggest", params={"q": "vpn"}, headers={"origin": "https://intranet.example"})
        assert r.status_code == 403
    owner_client.get("/api/v1/widget/config", headers={"origin": "https://evil.example\r\nforged: line"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "intranet.example" in w]) == 1
    assert "KB_CORS_ORIGINS" in warnings[0] and "'https://intranet.example'" in warnings[0]
    assert not any("\n" in w or "\r" in w for w in warnings)  # repr(): no forged log lines
    assert owner_client.get("/api/v1/admin/origins").status_code == 401  # anonymous
    login(owner_client, "writer@example.com")
    assert owner_client.get("/api/v1/admin/origins").status_code == 403
    owner_client.cookies.clear()
    login(owner_client, "owner@example.com")
    listed = owner_client.get("/api/v1/admin/origins").json()
    counts = {o["origin"]: o["count"] for o in listed["origins"]}
    assert counts["https://intranet.example"] == 3 and len(counts) == 2
    page = owner_client.get("/admin/dashboard").text
    assert "https://intranet.example" in page and "KB_CORS_ORIGINS" in page
    assert "https://allowed.example" not in counts


def test_an_allowed_origin_is_not_refused(owner_client):
    assert owner_client.get("/api/v1/widget/config", headers={"origin": "http://allowed.example"}).status_code == 200
    login(owner_client, "owner@example.com")
    assert owner_client.get("/api/v1/admin/origins").json()["origins"] == []


def test_no_length_limit_is_written_into_the_widget_or_the_templates(settings):
    """No limit the server enforces is written as a number in the widget or a page: the widget reads
    them from GET /api/v1/widget/config, templates from `limits`."""
    from pathlib import Path

    from kb.storage.database import COMMENT_CHARS

    root = Path(__file__).resolve().parents[1]
    limits = {settings.max_query_chars, COMMENT_CHARS, *FIELD_CHARS.values()}
    files = [*(root / "widget").glob("*.js"), *(root / "widget").glob("*.html"),
             *(root / "kb" / "web" / "templates").rglob("*.html")]
    status = r"(?<!=== )(?<!status: )"  # 200 and 500 are also HTTP statuses
    written = [(f.name, n) for f in files for n in limits
               if re.search(rf"{status}(?<![\d.#-])(?:{n:_}|{n})(?![\d.%]|px)", f.read_text(encoding="utf-8"))]
    assert files and written == [], written  # maxlength attributes themselves: tests/test_one_source.py
