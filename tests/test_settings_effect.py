"""Every setting changes what kb does: a test per setting that would fail if nothing read it.

Settings with a behavioural test elsewhere are listed in TESTED_ELSEWHERE with the test that
covers them; `test_every_setting_is_read_by_code` lists any setting no code path consults.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest

from kb.settings import Settings
from kb.storage import schema

ROOT = Path(__file__).resolve().parents[1]
NOT_WIRED_YET: set[str] = set()


def test_every_setting_is_read_by_code():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "kb").rglob("*.py") if p.name != "settings.py")
    unread = [f.name for f in dataclasses.fields(Settings) if not re.search(rf"\.{f.name}\b", source)]
    assert sorted(unread) == sorted(NOT_WIRED_YET), f"settings no code reads: {unread}"


def test_every_setting_has_a_test_that_uses_it():
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py")
                      if p.name not in ("test_settings.py", "test_settings_effect.py"))  # coercion is not an effect
    here = Path(__file__).read_text(encoding="utf-8")
    untested = [f.name for f in dataclasses.fields(Settings)
                if f.name not in NOT_WIRED_YET
                and not re.search(rf"\b{f.name}\s*=|KB_{f.name.upper()}\b|\.{f.name}\b", tests + here.rsplit("# -- effects", 1)[-1])]
    assert untested == [], f"settings no test exercises: {untested}"


# -- effects ----------------------------------------------------------------------------------


COFFEE = ["the coffee machine is broken", "coffee machine not working", "who repairs the coffee maker",
          "coffee machine on floor 3 leaks"]
BARRIER = ["car park barrier won't open", "parking barrier stuck closed", "the gate at the car park does not lift",
           "exit barrier in the car park not working"]


def seed(db, texts, ts, prefix):
    with db.write() as conn:
        for i, text in enumerate(texts):
            conn.execute(schema.requests.insert().values(
                id=f"r_{prefix}{i}", ts=ts + i, kind="suggest", session=f"{prefix}{i}", query=text,
                locale="en", answered=0, top_confidence=0.1, fallback=0, results="[]", source="api"))


@pytest.fixture
def desk_db(settings, embedder):
    from kb.web.app import build_services

    services = build_services(settings, embedder=embedder)
    yield services["desk"], services["db"]
    services["db"].close()


def gap_sizes(db, settings, desk):
    from kb.insight.gaps import refresh_gaps

    refresh_gaps(db, settings, desk)
    return sorted(r["size"] for r in db.query("SELECT size FROM gaps WHERE active = 1"))


def test_gap_min_misses_decides_what_is_a_gap(settings, desk_db):
    desk, db = desk_db
    seed(db, COFFEE[:3], time.time() - 3600, "c")
    assert gap_sizes(db, settings.replace(gap_min_misses=3), desk) == [3]
    assert gap_sizes(db, settings.replace(gap_min_misses=4), desk) == []


def test_gap_window_days_drops_older_misses(settings, desk_db):
    desk, db = desk_db
    seed(db, COFFEE, time.time() - 10 * 86400, "c")
    assert gap_sizes(db, settings.replace(gap_window_days=30), desk) == [4]
    assert gap_sizes(db, settings.replace(gap_window_days=5), desk) == []


def test_gap_similarity_decides_what_joins_a_topic(settings, desk_db):
    desk, db = desk_db
    seed(db, COFFEE, time.time() - 3600, "c")
    seed(db, BARRIER, time.time() - 3600, "b")
    assert gap_sizes(db, settings.replace(gap_similarity=0.4), desk) == [4, 4]
    assert gap_sizes(db, settings.replace(gap_similarity=0.01), desk) == [8]


def test_max_query_chars_rejects_longer_requests(settings, desk_db):
    from kb.errors import InvalidQueryError

    desk, _ = desk_db
    text = "my vpn keeps dropping when i work from home " * 2  # 88 characters
    assert desk.suggest(text, record=False).items
    desk.settings = settings.replace(max_query_chars=50)
    with pytest.raises(InvalidQueryError, match="limit is 50"):
        desk.suggest(text, record=False)


def test_default_locale_is_used_when_a_request_names_none(settings, desk_db):
    desk, _ = desk_db
    assert desk.suggest("vpn", record=False).locale == "en"
    desk.settings = settings.replace(default_locale="ru")
    assert desk.suggest("vpn", record=False).locale == "ru"


def test_encode_threads_reaches_the_encoder(embedder):
    from kb.content.indexer import make_embedder

    assert make_embedder(Settings.load(environ={}, encode_threads=2)).threads == 2


def test_admin_session_hours_ends_sessions(settings, desk_db, monkeypatch):
    from kb.staff import auth

    _, db = desk_db
    user = auth.add_user(db, "owner@example.com", "owner", "correct horse battery")
    short = settings.replace(admin_session_hours=1)
    cookie = auth.start_session(db, short, user)
    assert auth.load_session(db, short, cookie) is not None
    later = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert auth.load_session(db, short, cookie) is None
    monkeypatch.undo()
    longer = settings.replace(admin_session_hours=3)
    cookie = auth.start_session(db, longer, user)
    monkeypatch.setattr(time, "time", lambda: later)
    assert auth.load_session(db, longer, cookie) is not None


@pytest.fixture
def auth_smtp():
    """A real SMTP server that accepts AUTH without TLS and records who logged in."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from kb.measure.bench import free_port

    class Handler:
        messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content)
            return "250 OK"

    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret-pass")

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield controller, logins
    controller.stop()


def test_smtp_user_password_and_starttls_are_used(tmp_path, auth_smtp):
    from kb.tickets.outbox import DeliveryError, send_email

    controller, logins = auth_smtp
    ticket = {"id": "T-AAAAAAAAAA", "subject": "Printer", "name": "Ann", "email": "ann@example.com", "body": "Jam.",
              "created": "2026-11-28T10:00:00Z", "category": "", "locale": "en", "idempotency_key": "k-1",
              "transcript": {"requests": [], "events": []}}
    base = Settings.load(environ={}, data=tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port,
                         smtp_to="desk@example.com", smtp_from="kb@example.com")
    send_email(base.replace(smtp_user="kb-desk", smtp_password="s3cret-pass"), ticket, 1)
    assert logins == [("kb-desk", "s3cret-pass")]
    with pytest.raises(DeliveryError, match="STARTTLS"):  # this server offers no TLS: the setting is honoured
        send_email(base.replace(smtp_starttls=True), ticket, 3)
    send_email(base, ticket, 4)  # no user: no login attempted
    assert len(logins) == 1


def test_suggest_limit_is_the_default_number_of_suggestions(settings, desk_db):
    desk, _ = desk_db
    query = "printer problems"
    assert len(desk.suggest(query, record=False).items) == 3
    desk.settings = settings.replace(suggest_limit=5)
    assert len(desk.suggest(query, record=False).items) == 5


def test_locales_limit_the_languages_served(settings, desk_db):
    desk, _ = desk_db
    assert desk.suggest("забыл пароль", locale="ru", record=False).locale == "ru"
    desk.settings = settings.replace(locales=("en",), default_locale="en")
    assert desk.suggest("забыл пароль", locale="ru", record=False).locale == "en"


def test_contact_mode_decides_when_the_widget_and_the_portal_offer_contact(settings, services):
    from litestar.testing import TestClient

    from kb.web.app import create_app

    seen = {}
    for mode in ("self-service", "neutral", "ask-first"):
        chosen = settings.replace(contact_mode=mode)
        services["settings"] = chosen
        with TestClient(create_app(chosen, services=services)) as client:
            config = client.get("/api/v1/widget/config").json()
            home = client.get("/", headers={"accept": "text/html"}).text
        seen[mode] = (config["contact_mode"], "contact-cta" in home, "contact-first" in home)
    assert seen == {"self-service": ("self-service", False, False), "neutral": ("neutral", True, False),
                    "ask-first": ("ask-first", False, True)}


def test_contact_only_after_query_still_decides_the_mode_served(settings, services, tmp_path):
    """The setting before the three modes: a kb.toml or KB_ variable of today keeps its meaning."""
    from litestar.testing import TestClient

    from kb.web.app import create_app

    toml = tmp_path / "kb.toml"
    served = {}
    for name, environ, text in (("env false", {"KB_CONTACT_ONLY_AFTER_QUERY": "false"}, ""),
                                ("toml true", {}, "contact_only_after_query = true\n"),
                                ("toml false", {}, "contact_only_after_query = false\n")):
        toml.write_text(text, encoding="utf-8")
        loaded = Settings.load(environ, config=toml)
        chosen = settings.replace(contact_mode=loaded.contact_mode)
        services["settings"] = chosen
        with TestClient(create_app(chosen, services=services)) as client:
            served[name] = (client.get("/api/v1/widget/config").json()["contact_mode"],
                            "contact-cta" in client.get("/", headers={"accept": "text/html"}).text)
    assert served == {"env false": ("neutral", True), "toml true": ("self-service", False),
                      "toml false": ("neutral", True)}


def test_session_idle_minutes_decides_where_a_help_center_session_ends(tmp_path):
    """"Yes, this solved it", then a ticket 40 minutes later: two sessions (one deflected) at 30
    minutes, one session that ended in a ticket (never a deflection) at 60."""
    from kb.insight import stats
    from kb.storage.settle import Sessions
    from kb.storage.database import Database, record_event

    activity = [("s", 0.0), ("s", 40 * 60.0)]  # forty idle minutes
    assert len(Sessions(activity, Settings.load(environ={}).session_idle_minutes * 60).all()) == 2
    db = Database(tmp_path / "idle.db")
    start = time.time() - 3 * 3600
    with db.write() as conn:
        conn.execute(schema.requests.insert().values(
            id="r_1", ts=start, kind="suggest", session="s", query="vpn error 809", locale="en", answered=1,
            top_confidence=0.9, fallback=0, results="[]", source="widget"))
        conn.execute(schema.feedback.insert().values(ts=start + 30, request_id="r_1", slug="vpn", helpful=1,
                                                     comment="", session="s", source="widget"))
        conn.execute(schema.tickets.insert().values(
            id="T-1", ts=start + 40 * 60, name="", email="s@example.com", subject="printer", body="jammed",
            category="", locale="en", session="s", request_id="", transcript="{}", idempotency_key="k1",
            ip_hash="", status="received"))
    record_event(db, session="s", type="ticket_created", ts=start + 40 * 60, data={"ticket": "T-1"})
    span = stats.period(today=None)
    figures = {minutes: stats.compute(db, Settings.load(environ={}, session_idle_minutes=minutes), span,
                                      time.time()).figures for minutes in (30, 60)}
    db.close()
    assert (figures[30]["explicit_deflections"], figures[30]["help_center_sessions"]) == (1, 2)
    assert (figures[60]["explicit_deflections"], figures[60]["help_center_sessions"]) == (0, 1)


def test_trusted_proxies_decides_whose_x_forwarded_for_names_the_client(tmp_path):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import uvicorn

    from kb.web.server import proxy_options

    seen: list[str] = []

    async def app(scope, receive, send):  # as far as kb's handlers see: scope["client"] is client_ip
        if scope["type"] == "http":
            seen.append(scope["client"][0])
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def ask(proxies: tuple[str, ...]) -> str:
        config = uvicorn.Config(app, **proxy_options(Settings.load(environ={}, data=tmp_path, trusted_proxies=proxies)))
        config.load()  # the app as `kb serve` wraps it
        transport = httpx.ASGITransport(config.loaded_app, client=("10.0.0.5", 40000))  # the balancer
        async with httpx.AsyncClient(transport=transport, base_url="http://kb") as client:
            await client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
        return seen[-1]

    def answer(proxies: tuple[str, ...]) -> str:
        with ThreadPoolExecutor(1) as pool:  # a loop of its own: the browser tests leave one running in this thread
            return pool.submit(asyncio.run, ask(proxies)).result()

    assert answer(("10.0.0.0/24",)) == "203.0.113.9"  # the balancer is believed
    assert answer(("10.9.0.1",)) == "10.0.0.5"  # another proxy is trusted, not this peer
    assert answer(()) == "10.0.0.5"  # nobody is: a client cannot pick its own address


def test_publish_index_offers_the_build_to_replicas(settings, services):
    from litestar.testing import TestClient

    from kb.storage.secrets import INDEX_TOKEN, shared_secret
    from kb.web.app import create_app

    auth = {"Authorization": f"Bearer {shared_secret(services['db'], INDEX_TOKEN)}"}
    for publish, status in ((False, 404), (True, 200)):
        chosen = settings.replace(publish_index=publish)
        services["settings"] = chosen
        with TestClient(create_app(chosen, services=services, background_work=False)) as client:
            assert client.get("/api/v1/index", headers=auth).status_code == status


def test_index_source_makes_a_replica_that_pulls_and_never_builds(settings, embedder, tmp_path):
    from kb.content.indexer import index_directory
    from kb.content.publish import ArticlesElsewhereError
    from kb.serving.desk import Desk
    from kb.storage.database import Database

    db = Database(tmp_path / "kb.db")
    try:
        assert Desk(settings, embedder, db).puller is None
        replica = settings.replace(index_source="http://10.0.0.11:8000", data=tmp_path / "replica")
        desk = Desk(replica, embedder, db)
        assert desk.puller is not None and desk.puller.source == "http://10.0.0.11:8000"
        with pytest.raises(ArticlesElsewhereError, match="10.0.0.11"):
            index_directory(replica, embedder)
    finally:
        db.close()
