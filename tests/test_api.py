"""The JSON API under /api/v1: every route, with good and bad input."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kb.storage.database import DEFER_SECONDS
from servers import committed


def rows(settings, sql, params=()):
    """Read as another process would: the request log is written in batches, visible to others
    within DEFER_SECONDS."""
    time.sleep(DEFER_SECONDS * 2)
    return committed(settings.db_path, sql, params)


def new_session(client) -> tuple[str, str]:
    """(token, the session id it names) from POST /api/v1/session."""
    r = client.post("/api/v1/session", json={})
    assert r.status_code == 200 and r.json()["new"] is True
    token = r.json()["session"]
    return token, token.rpartition(".")[0]


def test_suggest_answers_with_passage_and_confidence(client, settings):
    token, sid = new_session(client)
    r = client.get("/api/v1/suggest", params={"q": "outlook keeps asking for my password", "session": token})
    assert r.status_code == 200
    body = r.json()
    assert body["answered"] is True
    assert 1 <= len(body["suggestions"]) <= 3
    top = body["suggestions"][0]
    assert top["slug"] == "outlook-password-prompts"
    assert top["url"].startswith("/articles/outlook-password-prompts")
    assert 0.0 <= top["confidence"] <= 1.0
    text, spans = top["passage"]["text"], top["passage"]["highlights"]
    assert "<" not in json.dumps(top["passage"]["highlights"])
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert {text[s:e].lower() for s, e in spans} & {"outlook", "password"}
    assert r.headers["cache-control"] == "no-store"
    recorded = rows(settings, "SELECT * FROM requests WHERE id = ?", (body["request_id"],))
    assert recorded and recorded[0]["session"] == sid and recorded[0]["answered"] == 1
    assert json.loads(recorded[0]["results"])[0]["slug"] == "outlook-password-prompts"


def test_suggest_limit_and_locale(client):
    body = client.get("/api/v1/suggest", params={"q": "сброс пароля", "limit": 1, "locale": "ru"}).json()
    assert len(body["suggestions"]) == 1
    assert body["locale"] == "ru" and body["suggestions"][0]["locale"] == "ru"
    via_header = client.get("/api/v1/suggest", params={"q": "забыл пароль"}, headers={"accept-language": "ru-RU,ru;q=0.9"})
    assert via_header.json()["locale"] == "ru"


def test_suggest_out_of_scope_is_not_answered(client):
    body = client.get("/api/v1/suggest", params={"q": "book me a flight to paris"}).json()
    assert body["answered"] is False


@pytest.mark.parametrize(
    ("params", "status"),
    [({"q": ""}, 400), ({"q": "   "}, 400), ({"q": "x" * 501}, 400), ({"q": "vpn", "limit": 0}, 400),
     ({"q": "vpn", "limit": 11}, 400), ({}, 400)],
)
def test_suggest_bad_input(client, params, status):
    r = client.get("/api/v1/suggest", params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]


@pytest.mark.parametrize("q", ['"', "AND(", "*", "NEAR(a b)", 'vpn" OR 1=1 --', "'; DROP TABLE requests; --"])
def test_suggest_fts_and_sql_syntax_is_just_text(client, settings, q):
    r = client.get("/api/v1/suggest", params={"q": q})
    assert r.status_code == 200
    assert rows(settings, "SELECT count(*) AS n FROM requests")[0]["n"] >= 1


def test_articles_paged(client):
    first = client.get("/api/v1/articles", params={"per_page": 5}).json()
    assert first["total"] >= 60 and len(first["items"]) == 5 and first["page"] == 1
    second = client.get("/api/v1/articles", params={"per_page": 5, "page": 2}).json()
    assert {a["slug"] for a in first["items"]}.isdisjoint(a["slug"] for a in second["items"])
    ru = client.get("/api/v1/articles", params={"locale": "ru", "per_page": 100}).json()
    assert ru["total"] >= 12 and all(a["locale"] == "ru" for a in ru["items"])
    assert client.get("/api/v1/articles", params={"page": 0}).status_code == 400


def test_article_detail_is_safe_html_with_passages(client):
    r = client.get("/api/v1/articles/vpn-connect")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] and body["passages"] and "<h2" in body["html"]
    assert all("text" in p and "anchor" in p for p in body["passages"])
    assert "public" in r.headers["cache-control"]


@pytest.mark.parametrize("slug", ["nope", "parental-leave", "..%2F..%2Fetc%2Fpasswd", "UPPER", "a b"])
def test_article_unknown_or_draft_or_hostile_slug_is_404(client, slug):
    r = client.get(f"/api/v1/articles/{slug}")
    assert r.status_code == 404


def test_article_path_traversal_is_404(client):
    assert client.get("/api/v1/articles/../../etc/passwd").status_code == 404


def test_feedback_recorded_with_request_text(client, settings):
    token, sid = new_session(client)
    rid = client.get("/api/v1/suggest", params={"q": "printer queue stuck", "session": token}).json()["request_id"]
    r = client.post("/api/v1/feedback", json={"request_id": rid, "slug": "print-queue-stuck", "helpful": False,
                                              "comment": "did not help", "session": token})
    assert r.status_code == 201
    row = rows(settings, "SELECT * FROM feedback WHERE id = ?", (r.json()["id"],))[0]
    assert row["helpful"] == 0 and row["query"] == "printer queue stuck" and row["comment"] == "did not help"
    assert rows(settings, "SELECT count(*) AS n FROM events WHERE type='feedback' AND session=?", (sid,))[0]["n"] == 1


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [(b"{bad json", "application/json", 400), (b"helpful=1", "text/plain", 415),
     (b"helpful=1", "application/x-www-form-urlencoded", 415), (b'{"helpful": "maybe"}', "application/json", 422),
     (b'{"slug": "vpn-connect"}', "application/json", 422), (b'{"helpful": true}', "application/json", 422),
     (b'{"helpful": true, "slug": "../etc"}', "application/json", 422),
     (b'{"helpful": true, "slug": "no-such-article"}', "application/json", 404)],
)
def test_feedback_bad_input(client, content, ctype, status):
    r = client.post("/api/v1/feedback", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_validation_errors_name_the_field(client):
    r = client.post("/api/v1/feedback", json={"helpful": "maybe"})
    assert r.status_code == 422
    assert any(e["key"] == "helpful" for e in r.json()["extra"])


def test_events_recorded_and_validated(client, settings):
    token, sid = new_session(client)
    ok = client.post("/api/v1/events", json={"session": token, "type": "suggestion_opened",
                                             "data": {"request_id": "r_1", "slug": "vpn-connect"}})
    assert ok.status_code == 202
    row = rows(settings, "SELECT * FROM events WHERE session=?", (sid,))[0]
    assert row["type"] == "suggestion_opened" and row["slug"] == "vpn-connect"
    assert client.post("/api/v1/events", json={"session": "w1", "type": "hack"}).status_code == 422
    assert client.post("/api/v1/events", json={"type": "session_start"}).status_code == 422
    big = {"session": "w1", "type": "request_settled", "data": {"text": "x" * 9000}}
    assert client.post("/api/v1/events", json=big).status_code == 422


def test_healthz(client):
    body = client.get("/api/v1/healthz").json()
    assert body["index_loaded"] is True and body["articles"] >= 60 and body["index_age_seconds"] >= 0


def test_openapi_schema_served(client):
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/v1/suggest" in paths and "/api/v1/feedback" in paths


def test_cors_allow_list(client):
    allowed = client.get("/api/v1/suggest", params={"q": "vpn"}, headers={"origin": "http://allowed.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    refused = client.get("/api/v1/suggest", params={"q": "vpn"}, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


def test_rate_limit_returns_429(settings, embedder):
    from litestar.testing import TestClient

    from kb.web.app import build_services, create_app

    tight = settings.replace(rate_suggest_per_minute=3)
    services = build_services(tight, embedder=embedder)
    with TestClient(create_app(tight, services=services)) as c:
        codes = [c.get("/api/v1/suggest", params={"q": "vpn"}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    services["db"].close()


def test_rebuilt_index_is_swapped_in_without_failing_requests(services, settings, embedder, tmp_path):
    """Requests in flight keep working while a new build goes live; the new one is then served."""
    import shutil

    from litestar.testing import TestClient

    from kb.web.app import create_app

    unlimited = settings.replace(rate_suggest_per_minute=0)  # the hammer below is one client IP
    services["settings"] = unlimited

    from kb.content.indexer import index_directory  # noqa: E402

    articles = tmp_path / "articles"
    shutil.copytree(settings.articles, articles)
    (articles / "coffee-machine.md").write_text(
        "---\ntitle: The coffee machine is leaking\nslug: coffee-machine\ncategory: facilities\n"
        "locale: en\nstatus: published\nupdated: 2026-11-01\n---\n\n## Report a leaking coffee machine\n\n"
        "Switch off the coffee machine, put a towel under it and report the leak to facilities on 5555.\n"
    )
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            status = client.get("/api/v1/suggest", params={"q": "vpn keeps dropping"}).status_code
            if status != 200:
                failures.append(status)

    with TestClient(create_app(unlimited, services=services)) as client:
        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            index_directory(settings.replace(articles=articles), embedder)
            assert services["desk"].reload_if_changed() is True
        finally:
            stop.set()
            worker.join()
        body = client.get("/api/v1/suggest", params={"q": "coffee machine leaking water"}).json()
    assert failures == []
    assert body["suggestions"][0]["slug"] == "coffee-machine"
