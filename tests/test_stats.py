"""Dashboard metrics over a known event log: exact values, implicit-window edges, exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import pytest

from kb.insight import charts

from kb.insight import stats
from kb.errors import ValidationError
from kb.settings import Settings
from kb.storage import schema
from kb.storage.database import Database, record_event

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc).timestamp()
LATE = datetime(2026, 3, 10, 22, 0, tzinfo=timezone.utc).timestamp()
NOW = datetime(2026, 3, 11, 0, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400


def request(db, rid, ts, session, query, answered, slug="vpn"):
    results = json.dumps([{"slug": slug, "anchor": "", "confidence": 0.9}] if answered else [])
    db.insert(schema.requests, dict(id=rid, ts=ts, kind="suggest", session=session, query=query, locale="en",
                                    answered=int(answered), top_confidence=0.9 if answered else 0.1, fallback=0,
                                    results=results, source="api"))


def feedback(db, ts, request_id, slug, helpful, session):
    db.insert(schema.feedback, dict(ts=ts, request_id=request_id, slug=slug, helpful=int(helpful), comment="",
                                    session=session, source="widget", query="", locale="en"))
    record_event(db, session=session, type="feedback", request_id=request_id, slug=slug, data={"helpful": helpful}, ts=ts)


def ticket(db, tid, ts, session, email):
    db.insert(schema.tickets, dict(id=tid, ts=ts, name="", email=email, subject="help", body="body", category="",
                                   locale="en", session=session, request_id="", transcript="{}", idempotency_key=tid,
                                   ip_hash="", status="received"))
    record_event(db, session=session, type="ticket_created", ts=ts, data={"ticket": tid})


def seed(db: Database) -> None:
    """The log the expected figures below are worked out from by hand."""
    request(db, "r0", T0 - 10 * DAY, "s0", "old request", True)  # before the period
    # s1: opened, viewed and confirmed "Yes" -> explicit (vpn)
    request(db, "r1", T0, "s1", "VPN error 809", True)
    record_event(db, session="s1", type="suggestion_opened", request_id="r1", slug="vpn", ts=T0 + 10)
    record_event(db, session="s1", type="article_view", request_id="r1", slug="vpn", ts=T0 + 15)
    feedback(db, T0 + 20, "r1", "vpn", True, "s1")
    # s2: clicked, ticket exactly 24 h after the click -> inside the window (inclusive): not deflected
    request(db, "r2", T0, "s2", "printer offline", True, "printer")
    record_event(db, session="s2", type="result_click", request_id="r2", slug="printer", ts=T0 + 5)
    ticket(db, "t2", T0 + 5 + DAY, "s2", "b@example.com")
    # s3: opened, ticket 24 h + 1 s after -> outside the window: implicit deflection (printer)
    request(db, "r3", T0, "s3", "Printer offline", True, "printer")
    record_event(db, session="s3", type="suggestion_opened", request_id="r3", slug="printer", ts=T0 + 5)
    ticket(db, "t3", T0 + 5 + DAY + 1, "s3", "B@example.com")
    # s4: no confident answer, then a ticket without an email
    request(db, "r4", T0 + 100, "s4", "coffee machine", False)
    ticket(db, "t4", T0 + 200, "s4", "")
    # s5: answered, never opened
    request(db, "r5", T0 + 100, "s5", "vpn  error 809?", True)
    # s6: browsed an article without a request, said Yes: not a deflection of a request
    record_event(db, session="s6", type="article_view", slug="vpn", ts=T0 + 300)
    db.insert(schema.feedback, dict(ts=T0 + 310, request_id="", slug="vpn", helpful=1, comment="", session="s6",
                                    source="article", query="", locale="en"))
    # s7: opened two hours before `now`: its window is still open -> pending
    request(db, "r7", LATE, "s7", "wifi password", True, "wifi")
    record_event(db, session="s7", type="suggestion_opened", request_id="r7", slug="wifi", ts=LATE + 60)
    # a request without a session id counts as its own session
    request(db, "r8", T0 + 300, "", "coffee machine.", False)


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "kb.db")
    seed(database)
    yield database
    database.close()


@pytest.fixture
def span():
    return stats.period("2026-03-01", "2026-03-10")


def test_exact_figures(db, span):
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    assert result.figures == {
        # s2 and s3 came back a day later to file their tickets: a second help-center session each
        "requests": 7, "sessions_with_request": 7, "help_center_sessions": 10,
        "explicit_deflections": 1, "implicit_deflections": 1, "pending_implicit": 1, "tickets": 3,
        "deflection_rate": round(2 / 7, 4), "self_service_score": 5.0,  # 10 sessions / 2 ticket users
        "unsuccessful_searches": 3, "unsuccessful_no_result": 2, "unsuccessful_no_click": 1,
    }
    assert result.funnel == [("Help-center sessions", 10), ("Sessions with a request", 7),
                             ("Opened a suggestion", 4), ("Deflected", 2), ("Filed a ticket", 3)]


def test_implicit_window_edges_and_setting(db, span):
    # a window of 23 h: s2's ticket (24 h after) is now outside it, so s2 counts too
    short = stats.compute(db, Settings.load(environ={}, implicit_window_hours=23), span, NOW)
    assert short.figures["implicit_deflections"] == 2
    # 48 h: both tickets fall inside the window; s7 is still pending
    long = stats.compute(db, Settings.load(environ={}, implicit_window_hours=48), span, NOW)
    assert (long.figures["implicit_deflections"], long.figures["pending_implicit"]) == (0, 1)
    # once s7's window has closed without a ticket it is deflected
    later = stats.compute(db, Settings.load(environ={}), span, LATE + 60 + DAY)
    assert (later.figures["implicit_deflections"], later.figures["pending_implicit"]) == (2, 0)


def test_daily_top_requests_and_articles(db, span):
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    days = {d["day"]: d for d in result.daily}
    assert len(days) == 10
    assert days["2026-03-02"] == {"day": "2026-03-02", "requests": 6, "deflections": 2, "tickets": 1}
    assert days["2026-03-03"] == {"day": "2026-03-03", "requests": 0, "deflections": 0, "tickets": 2}
    assert days["2026-03-10"]["requests"] == 1
    assert result.top_requests == [
        {"request": "coffee machine", "count": 2, "answered_share": 0.0},
        {"request": "printer offline", "count": 2, "answered_share": 1.0},
        {"request": "vpn error 809", "count": 2, "answered_share": 1.0},
        {"request": "wifi password", "count": 1, "answered_share": 1.0},
    ]
    rows = {a["slug"]: a for a in result.articles}
    assert rows["vpn"] == {"slug": "vpn", "views": 2, "yes": 2, "no": 0, "deflections": 1, "tickets_after_viewing": 0}
    # s2's and s3's tickets came a day later, in other sessions: not "after viewing" the printer article
    assert rows["printer"] == {"slug": "printer", "views": 0, "yes": 0, "no": 0, "deflections": 1,
                               "tickets_after_viewing": 0}
    assert rows["wifi"]["deflections"] == 0


def test_period_bounds_are_whole_inclusive_utc_days():
    p = stats.period("2026-03-01", "2026-03-01")
    assert p.until - p.since == DAY and p.days() == ["2026-03-01"]
    default = stats.period(today=date(2026, 3, 30))
    assert (default.start, default.end) == (date(2026, 3, 1), date(2026, 3, 30))
    for bad in (("2026-03-05", "2026-03-01"), ("yesterday", None)):
        with pytest.raises(ValidationError):
            stats.period(*bad)


def test_empty_log_has_no_rates(tmp_path):
    db = Database(tmp_path / "empty.db")
    result = stats.compute(db, Settings.load(environ={}), stats.period("2026-03-01", "2026-03-02"), NOW)
    assert result.figures["deflection_rate"] is None and result.figures["self_service_score"] is None
    assert result.as_dict()["display"]["deflection_rate"] == "—"


def test_display_definitions_and_exports(db, span):
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    out = result.as_dict()
    assert out["display"]["deflection_rate"] == "28.6 %" and out["display"]["self_service_score"] == "5:1"
    assert "24 h + 1 s" in out["definitions"]["implicit_deflections"]
    assert set(stats.LABELS) <= set(out["definitions"])
    tables = stats.tables(result)
    assert set(tables) == {"figures", "daily", "funnel", "top_requests", "articles"}
    for name in ("daily", "funnel"):
        svg = getattr(charts, name)(result)
        assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"<script" not in svg


def test_csv_defuses_formulas():
    from kb.web.admin import csv_text

    text = csv_text(["a", "b"], [["=HYPERLINK(\"http://x\")", 1], ["+1", "@SUM(A1)"], ["-2", "\tx"], ["ok", -3]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][0] == "'=HYPERLINK(\"http://x\")" and rows[1][1] == "1"
    assert rows[2] == ["'+1", "'@SUM(A1)"] and rows[3] == ["'-2", "'\tx"] and rows[4] == ["ok", "-3"]


def test_dashboard_page_json_csv_and_cli_show_the_same_figures(settings, services, tmp_path):
    import re
    import time

    from click.testing import CliRunner
    from litestar.testing import TestClient

    from kb.staff.auth import add_user
    from kb.cli import main
    from kb.web.app import create_app

    settings = settings.replace(gap_refresh_minutes=0)
    services["settings"] = settings
    seed(services["db"])
    add_user(services["db"], "owner@example.com", "owner", "correct horse battery")
    query = {"since": "2026-03-01", "until": "2026-03-10"}
    with TestClient(create_app(settings, services=services)) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
        client.post("/admin/login", data={"email": "owner@example.com", "password": "correct horse battery",
                                          "csrf_token": token})
        page = client.get("/admin/dashboard", params=query).text
        api = client.get("/api/v1/admin/stats", params=query).json()
        articles = client.get("/admin/dashboard/export/articles.csv", params=query).text
        assert client.get("/api/v1/admin/stats", params={"since": "2026-03-10", "until": "2026-03-01"}).status_code == 422
        assert client.get("/admin/dashboard/export/nope.csv").status_code == 404
    expected = stats.compute(services["db"], settings, stats.period("2026-03-01", "2026-03-10"), time.time())
    assert api["figures"] == expected.figures and api["figures"]["implicit_deflections"] == 2  # s7's window closed
    assert 'id="fig-deflection_rate">42.9 %<' in page and "(explicit + implicit deflections) / sessions" in page
    assert "/admin/charts/daily.svg?since=2026-03-01&amp;until=2026-03-10" in page
    assert "printer,0,0,0,1,0" in articles.replace("\r", "")
    result = CliRunner().invoke(main, ["stats", "--json", "--data", str(settings.data), *sum(
        (["--" + k, v] for k, v in query.items()), [])])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["figures"] == expected.figures
    text = CliRunner().invoke(main, ["stats", "--data", str(settings.data), "--since", "2026-03-01", "--until", "2026-03-10"])
    assert "Deflection rate: 42.9 %" in text.output and "Self-service score: 5:1" in text.output


def typed(db, session, parts, start, gaps, answered_last=True):
    """The suggest calls a widget makes while someone types: one row per pause, `gaps` seconds apart."""
    ts = start
    for i, text in enumerate(parts):
        last = i == len(parts) - 1
        request(db, f"r_{session}_{i}", ts, session, text, answered_last if last else i % 2 == 0)
        ts += gaps[i] if i < len(gaps) else 0
    return f"r_{session}_{len(parts) - 1}"


def test_a_typed_request_counts_once_whatever_the_pauses(tmp_path, span):
    db = Database(tmp_path / "typed.db")
    words = "my laptop screen is cracked after I dropped it".split()
    parts = [" ".join(words[: i + 1]) for i in range(len(words))]
    # 0.7 s pauses after quick words (1.1 s between calls) and after slow ones (2.4 s): one request
    typed(db, "a", parts, T0, [1.1, 2.4, 1.1, 2.4, 1.1, 2.4, 1.1, 2.4])
    ru = ["не", "не могу", "не могу подключиться", "не могу подключиться к", "не могу подключиться к впн"]
    typed(db, "b", ru, T0 + 100, [1.3, 3.0, 1.0, 1.6])
    # a backspace: "outlook keeps as" -> "outlook keep" -> the whole request, calls 1.2 s apart
    typed(db, "c", ["outlook k", "outlook keeps as", "outlook keep", "outlook keeps asking for my password"],
          T0 + 200, [1.2, 1.2, 1.2])
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    assert result.figures["requests"] == 3
    assert sorted(r["request"] for r in result.top_requests) == [
        "my laptop screen is cracked after i dropped it", "outlook keeps asking for my password",
        "не могу подключиться к впн"]
    db.close()


def test_separate_requests_of_one_session_count_separately(tmp_path, span):
    db = Database(tmp_path / "two.db")
    first = typed(db, "a", ["printer", "printer jam"], T0, [1.0])
    # Enter on "printer jam" ends it at once; the next text extends it, but it is a new request
    record_event(db, session="a", type="request_settled", request_id=first, ts=T0 + 1.2,
                 data={"text": "printer jam", "by": "enter"})
    request(db, "r_a_2", T0 + 3, "a", "printer jam in tray 2", True)
    # a new text after a 5 s pause that does not extend the last one is a new request
    request(db, "r_a_3", T0 + 8, "a", "vpn drops", True)
    # another text within 1.5 s (a paste replacing the box) is the same request
    request(db, "r_a_4", T0 + 9, "a", "vpn drops every hour", False)
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    assert sorted(r["request"] for r in result.top_requests) == ["printer jam", "printer jam in tray 2",
                                                                 "vpn drops every hour"]
    assert result.figures["unsuccessful_no_result"] == 1
    db.close()


def test_a_request_still_being_typed_is_not_counted_yet(tmp_path):
    db = Database(tmp_path / "live.db")
    now = T0 + 10
    typed(db, "a", ["my", "my laptop"], now - 1.2, [1.0])
    span = stats.period("2026-03-02", "2026-03-02")
    assert stats.compute(db, Settings.load(environ={}), span, now).figures["requests"] == 0
    assert stats.compute(db, Settings.load(environ={}), span, now + 2).figures["requests"] == 1
    db.close()


def test_one_verdict_per_session_and_tickets_only_after_views_of_that_session(tmp_path, span):
    db = Database(tmp_path / "verdicts.db")
    # y: "Yes" on vpn, then a ticket five minutes later in the same session: a ticket, not a deflection;
    # the ticket is not "after viewing" vpn either, which was confirmed as the solution before it
    request(db, "ry", T0, "y", "vpn error 809", True)
    record_event(db, session="y", type="suggestion_opened", request_id="ry", slug="vpn", ts=T0 + 5)
    feedback(db, T0 + 10, "ry", "vpn", True, "y")
    ticket(db, "ty", T0 + 300, "y", "y@example.com")
    # z: "Yes" on vpn, and the next morning a ticket about something else: the deflection stands
    request(db, "rz", T0, "z", "vpn error 809", True)
    feedback(db, T0 + 10, "rz", "vpn", True, "z")
    ticket(db, "tz", T0 + 20 * 3600, "z", "z@example.com")
    # p: opened printer, ticket ten minutes later: a ticket after viewing printer
    request(db, "rp", T0, "p", "printer offline", True, "printer")
    record_event(db, session="p", type="suggestion_opened", request_id="rp", slug="printer", ts=T0 + 5)
    ticket(db, "tp", T0 + 600, "p", "p@example.com")
    result = stats.compute(db, Settings.load(environ={}), span, NOW)
    f = result.figures
    assert (f["explicit_deflections"], f["implicit_deflections"], f["sessions_with_request"]) == (1, 0, 3)
    assert result.funnel[-2:] == [("Deflected", 1), ("Filed a ticket", 3)]
    rows = {a["slug"]: a for a in result.articles}
    assert rows["vpn"]["tickets_after_viewing"] == 0 and rows["printer"]["tickets_after_viewing"] == 1
    assert "never a deflection" in result.definitions["deflection_rate"]
    db.close()


def test_session_idle_minutes_decides_where_a_session_ends(tmp_path, span):
    db = Database(tmp_path / "idle.db")
    request(db, "r1", T0, "s", "printer offline", True, "printer")
    record_event(db, session="s", type="suggestion_opened", request_id="r1", slug="printer", ts=T0 + 5)
    ticket(db, "t1", T0 + 45 * 60, "s", "s@example.com")  # 45 minutes later
    default = stats.compute(db, Settings.load(environ={}), span, NOW)  # 30 min: the ticket is a new session
    assert (default.figures["help_center_sessions"], {a["slug"]: a for a in default.articles}["printer"]
            ["tickets_after_viewing"]) == (2, 0)
    longer = stats.compute(db, Settings.load(environ={}, session_idle_minutes=60), span, NOW)
    assert (longer.figures["help_center_sessions"], {a["slug"]: a for a in longer.articles}["printer"]
            ["tickets_after_viewing"]) == (1, 1)
    assert "60 minutes" in longer.definitions["help_center_sessions"]
    db.close()
