"""Misses, clustering into gaps, stable identity, and replay from 0 to ≥ 80 % answered."""

from __future__ import annotations

import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kb.insight import board

from kb.insight import gaps
from kb.insight.board import ReplayRequiredError
from kb.errors import ValidationError
from kb.storage import schema
from kb.storage.database import Database, record_event, record_request

COFFEE = ["coffee machine broken", "the coffee machine on floor 3 is not working", "coffee maker out of order",
          "espresso machine leaking water", "who fixes the coffee machine", "coffee machine shows descale error",
          "no coffee coming out of the machine", "kitchen coffee machine is broken again"]
BARRIER = ["car park barrier won't open", "parking barrier stuck closed", "the gate at the car park does not lift",
           "barrier at garage entrance broken", "car park gate not recognising my plate",
           "can't get out of the car park, barrier down", "parking gate is jammed",
           "exit barrier in the car park not working"]
MENU = ["canteen menu this week", "what is for lunch in the canteen today", "cafeteria menu",
        "where can I see the canteen menu", "is there a vegetarian option in the canteen",
        "canteen opening hours and menu", "today's lunch menu", "what food does the cafeteria serve"]
NOISE = ["how do I change my desktop wallpaper", "fire drill schedule", "company holiday party date",
         "pet policy in the office", "is there a gym discount", "stapler request"]
COFFEE_ARTICLE = """---
title: Coffee machine not working
slug: coffee-machine
category: facilities
tags: [facilities, kitchen, coffee]
locale: en
status: published
updated: 2026-05-01
aliases:
  - coffee machine broken
  - coffee maker out of order
  - espresso machine
---
The kitchen coffee machines on every floor are maintained by Facilities.

## When the coffee machine is broken, leaking or shows an error

If the coffee machine is broken, out of order, leaking water, shows a descale error or no coffee
comes out of the machine, report it to Facilities: they fix coffee machines the same day. Put an
"out of order" sign on the coffee maker and use the espresso machine on another floor meanwhile.

## Who fixes the coffee machine

Facilities fixes the coffee machine and the espresso machine in each kitchen. Call extension 4400
or open a Facilities request with the floor number.
"""


def seed_unanswered(db: Database, texts: list[str], *, ts: float, session_prefix: str = "s", locale: str = "en") -> None:
    """Requests below the threshold, one session each."""
    with db.write() as conn:
        conn.execute(schema.requests.insert(), [
            dict(id=f"r_{session_prefix}{i}_{abs(hash(text)) % 10**8}", ts=ts + i, kind="suggest",
                 session=f"{session_prefix}{i}", query=text, locale=locale, answered=0, top_confidence=0.1,
                 fallback=0, results="[]", source="api")
            for i, text in enumerate(texts)])


@pytest.fixture
def db(database_url):
    """The gap tables on each engine."""
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture
def desk(settings, embedder, data_dir):
    from kb.serving.desk import Desk

    d = Desk(settings, embedder, None)
    d.load()
    return d


def test_collect_misses_covers_every_kind_once_per_request(db, settings):
    now = time.time()
    seed_unanswered(db, ["printer on fire"], ts=now - 100)
    record_request(db, request_id="r_ok", kind="search", session="a", query="reset password", locale="en",
                   answered=True, top_confidence=0.9, fallback=False, results=[{"slug": "reset-password"}])
    record_request(db, request_id="r_clicked", kind="search", session="b", query="vpn error", locale="en",
                   answered=True, top_confidence=0.9, fallback=False, results=[{"slug": "vpn-error-codes"}])
    record_event(db, session="b", type="result_click", request_id="r_clicked", slug="vpn-error-codes")
    record_request(db, request_id="r_no", kind="suggest", session="c", query="expense limits", locale="en",
                   answered=True, top_confidence=0.8, fallback=False, results=[{"slug": "per-diem-rates"}])
    db.insert(schema.feedback, dict(ts=now, request_id="r_no", slug="per-diem-rates", helpful=0,
                                    comment="not my country", session="c", source="widget", query="expense limits",
                                    locale="en"))
    misses = {m.key: m for m in gaps.collect_misses(db, settings, now - 3600)}
    assert {m.kind for m in misses.values()} == {"unanswered", "no_click", "feedback_no"}
    assert misses["request:r_ok"].kind == "no_click"
    assert "request:r_clicked" not in misses
    assert misses["request:r_no"].comment == "not my country"
    assert len(misses) == 3
    assert gaps.collect_misses(db, settings, now + 10) == []


def test_tickets_are_misses(db, settings):
    now = time.time()
    assert gaps.collect_misses(db, settings, now - 10) == []  # no tickets yet
    db.insert(schema.tickets, dict(id="t1", ts=now, subject="Coffee machine", body="It leaks everywhere",
                                   session="s9", locale="en", request_id=""))
    [miss] = gaps.collect_misses(db, settings, now - 10)
    assert (miss.kind, miss.text, miss.session) == ("ticket", "Coffee machine. It leaks everywhere", "s9")


def test_misses_are_settled_requests_never_the_prefixes_typed_on_the_way(db, settings):
    now = time.time() - 600

    def logged(rid: str, ts: float, session: str, query: str, answered: bool) -> dict:
        return dict(id=rid, ts=ts, kind="suggest", session=session, query=query, locale="en", answered=int(answered),
                    top_confidence=0.9 if answered else 0.1, fallback=0, results="[]", source="api")

    # one request typed word by word: the widget asked at every pause; only the whole text is a miss
    cake = "please order a birthday cake for the team party"
    words = cake.split()
    rows = [logged(f"r_cake{i}", now + 1.2 * i, "w1", " ".join(words[: i + 1]), i == 2) for i in range(len(words))]
    # a prefix that got a confident answer, then more typing that did not: the request is the miss
    rows += [logged("r_vpn0", now, "w2", "vpn", True), logged("r_vpn1", now + 4, "w2", "vpn on the moon base", False)]
    with db.write() as conn:
        conn.execute(schema.requests.insert(), rows)
        # "No" on a suggestion of the settled request is one miss with it, not two
        conn.execute(schema.feedback.insert(), [dict(ts=now + 9, request_id="r_vpn1", slug="vpn-error-codes", helpful=0,
                                                     comment="", session="w2", source="widget",
                                                     query="vpn on the moon base", locale="en")])
    misses = gaps.collect_misses(db, settings, now - 10)
    assert sorted((m.key, m.text) for m in misses) == [
        (f"request:r_cake{len(words) - 1}", cake), ("request:r_vpn1", "vpn on the moon base")]


def test_a_refresh_right_after_a_miss_sees_it(db, settings):
    """A refresh is a snapshot: the request typed a moment ago counts (its prefixes still do not)."""
    now = time.time()
    rows = [dict(id=f"r_fresh{i}", ts=now - 1.0 + 0.4 * i, kind="suggest", session="w9", query=q, locale="en",
                 answered=0, top_confidence=0.1, fallback=0, results="[]", source="api")
            for i, q in enumerate(["vending", "vending machine ate my money"])]
    with db.write() as conn:
        conn.execute(schema.requests.insert(), rows)
    assert [m.text for m in gaps.collect_misses(db, settings, now - 10)] == ["vending machine ate my money"]


def test_three_topics_plus_noise_make_exactly_three_gaps(db, settings, desk):
    now = time.time()
    for n, topic in enumerate((COFFEE, BARRIER, MENU)):
        seed_unanswered(db, topic, ts=now - 3600 * (n + 1), session_prefix=f"t{n}-")
    seed_unanswered(db, NOISE, ts=now - 60, session_prefix="noise-")
    summary = gaps.refresh_gaps(db, settings, desk, now=now)
    assert summary["misses"] == 30 and summary["gaps"] == 3
    found = board.list_gaps(db)
    members = [{m.text for m in board.examples(db, g.id)} for g in found]
    assert sorted(map(frozenset, members), key=len) == sorted(map(frozenset, (COFFEE, BARRIER, MENU)), key=len)
    for g in found:
        assert g.size == 8 and g.sessions == 8 and g.status == "open"
        assert g.label in COFFEE + BARRIER + MENU and g.key_terms
    coffee = next(g for g in found if g.label in COFFEE)
    assert "coffee" in coffee.key_terms
    assert coffee.fix == "write"  # no article answers the topic
    # impact: 8 misses an hour old each weigh exp(-1/24/14)
    assert coffee.impact == pytest.approx(8 * 2.718281828 ** (-(3600 / 86400) / 14), rel=1e-3)
    assert sum(c for _, c in board.trend(db, coffee.id, now=now)) == 8


def test_refreshes_from_two_processes_at_once_store_each_gap_once(db, database_url, settings, desk):
    now = time.time()
    for n, topic in enumerate((COFFEE, BARRIER, MENU)):
        seed_unanswered(db, topic, ts=now - 3600 * (n + 1), session_prefix=f"t{n}-")
    other = Database(database_url)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            summaries = list(pool.map(lambda d: gaps.refresh_gaps(d, settings, desk, now=now), [db, other]))
    finally:
        other.close()
    assert [s["gaps"] for s in summaries] == [3, 3]
    assert sorted(s["kept"] for s in summaries) == [0, 3]  # the second found the first's gaps and kept them
    assert len(board.list_gaps(db)) == 3
    assert db.scalar("SELECT count(*) FROM gaps") == 3


def test_a_topic_the_index_answers_but_users_rejected_is_an_improve(db, settings, desk):
    now = time.time()
    texts = ["how do I reset my password", "forgot my password, how to reset it", "reset my windows password",
             "I need to reset my password", "password reset"]
    with db.write() as conn:
        conn.execute(schema.feedback.insert(), [
            dict(ts=now - 60, request_id=f"r_p{i}", slug="reset-password", helpful=0, comment="the link expired",
                 session=f"p{i}", source="widget", query=text, locale="en") for i, text in enumerate(texts)])
    gaps.refresh_gaps(db, settings, desk, now=now)
    [gap] = board.list_gaps(db)
    assert (gap.fix, gap.closest_slug) == ("improve", "reset-password")
    assert gap.closest_confidence >= 0.5
    assert board.examples(db, gap.id)[0].comment == "the link expired"


def test_gap_identity_status_and_link_survive_a_refresh(db, settings, desk):
    now = time.time()
    seed_unanswered(db, COFFEE, ts=now - 7200, session_prefix="a")
    gaps.refresh_gaps(db, settings, desk, now=now)
    [gap] = board.list_gaps(db)
    board.link_gap(db, desk, gap.id, "broken-chair-desk")
    board.set_status(db, gap.id, "dismissed")
    seed_unanswered(db, COFFEE[:4], ts=now - 60, session_prefix="b")
    gaps.refresh_gaps(db, settings, desk, now=now + 1)
    [again] = board.list_gaps(db)
    assert (again.id, again.status, again.linked_slug, again.size) == (gap.id, "dismissed", "broken-chair-desk", 12)


def test_link_validates_the_slug_and_resolve_needs_a_replay(db, settings, desk):
    seed_unanswered(db, COFFEE, ts=time.time() - 60)
    gaps.refresh_gaps(db, settings, desk)
    [gap] = board.list_gaps(db)
    with pytest.raises(ValidationError):
        board.link_gap(db, desk, gap.id, "no-such-article")
    with pytest.raises(ReplayRequiredError):
        board.set_status(db, gap.id, "resolved")  # not linked
    board.link_gap(db, desk, gap.id, "parking")
    with pytest.raises(ReplayRequiredError):
        board.set_status(db, gap.id, "resolved")  # linked, no replay yet
    board.replay_gap(db, desk, gap.id)
    assert board.set_status(db, gap.id, "resolved").status == "resolved"


def test_replay_goes_from_zero_to_at_least_80_percent_after_the_article_exists(tmp_path, db, settings, embedder):
    from kb.content.articles import load_dir
    from kb.serving.desk import Desk
    from kb.content.indexer import index_articles

    articles = tmp_path / "articles"
    shutil.copytree(settings.articles, articles)
    settings = settings.replace(articles=articles)
    desk = Desk(settings, embedder, None)
    desk.load()
    seed_unanswered(db, COFFEE, ts=time.time() - 60)
    gaps.refresh_gaps(db, settings, desk)
    [gap] = board.list_gaps(db)
    with pytest.raises(ValidationError):
        board.link_gap(db, desk, gap.id, "coffee-machine")  # not written yet
    (articles / "coffee-machine.md").write_text(COFFEE_ARTICLE)
    linked = board.link_gap(db, desk, gap.id, "coffee-machine")  # written, not indexed yet
    assert (linked.replay_before, linked.replay_total, linked.status) == (0, 8, "planned")
    assert board.replay_gap(db, desk, gap.id).replay_after == 0  # the index does not know it yet
    index_articles(load_dir(articles).articles, settings.index_path, embedder)
    assert desk.reload_if_changed()
    after = board.replay_gap(db, desk, gap.id)
    assert after.replay_total == 8 and after.replay_before == 0
    assert after.replay_after >= 0.8 * 8
    assert board.set_status(db, gap.id, "resolved").status == "resolved"


def test_replay_of_uncovered_topic_answers_nothing(db, settings, desk):
    seed_unanswered(db, COFFEE, ts=time.time() - 60)
    gaps.refresh_gaps(db, settings, desk)
    [gap] = board.list_gaps(db)
    linked = board.link_gap(db, desk, gap.id, "payslip-access")
    assert (linked.replay_before, linked.replay_total) == (0, 8)
    assert board.replay_gap(db, desk, gap.id).replay_after == 0


def test_board_filters_by_locale_and_status(db, settings, desk):
    seed_unanswered(db, COFFEE, ts=time.time() - 60)
    seed_unanswered(db, ["не работает кофемашина", "кофемашина сломалась", "кофемашина на кухне не варит кофе"],
                    ts=time.time() - 60, session_prefix="ru", locale="ru")
    gaps.refresh_gaps(db, settings, desk)
    assert {g.locale for g in board.list_gaps(db)} == {"en", "ru"}
    assert [g.locale for g in board.list_gaps(db, locale="ru")] == ["ru"]
    assert board.list_gaps(db, status="planned") == []
    with pytest.raises(ValidationError):
        board.list_gaps(db, status="bogus")


@pytest.fixture
def quiet_settings(settings):
    """No background refresh racing the test."""
    return settings.replace(gap_refresh_minutes=0)


@pytest.fixture
def staff_client(quiet_settings, embedder):
    from litestar.testing import TestClient

    from kb.staff.auth import add_user
    from kb.web.app import build_services, create_app

    services = build_services(quiet_settings, embedder=embedder)
    add_user(services["db"], "writer@example.com", "writer", "correct horse battery")
    with TestClient(create_app(quiet_settings, services=services)) as client:
        page = client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        client.post("/admin/login", data={"email": "writer@example.com", "password": "correct horse battery",
                                          "csrf_token": token})
        yield client
    services["db"].close()


def test_the_board_closes_the_loop_over_http(staff_client):
    client = staff_client
    seed_unanswered(client.app.state["db"], COFFEE, ts=time.time() - 60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/gaps").text).group(1)
    assert client.post("/admin/gaps/refresh", data={"csrf_token": token}).status_code == 200
    [gap] = client.get("/api/v1/admin/gaps").json()["gaps"]
    board_page = client.get("/admin/gaps").text
    assert gap["label"] in board_page and f"/admin/gaps/{gap['id']}/trend.svg" in board_page
    detail = client.get(f"/admin/gaps/{gap['id']}")
    assert "coffee maker out of order" in detail.text and "Closest article" in detail.text
    svg = client.get(f"/admin/gaps/{gap['id']}/trend.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    post = lambda action, **fields: client.post(f"/admin/gaps/{gap['id']}/{action}",  # noqa: E731
                                                data={"csrf_token": token, **fields})
    bad = post("link", slug="no-such-article")
    assert bad.status_code == 422 and "No published article" in bad.text
    early = post("status", status="resolved")
    assert early.status_code == 409 and "Replay the gap" in early.text
    assert post("link", slug="payslip-access").status_code == 200
    assert post("replay").status_code == 200
    page = post("status", status="resolved")
    assert page.status_code == 200 and "0 / 8" in page.text
    [done] = client.get("/api/v1/admin/gaps", params={"status": "resolved"}).json()["gaps"]
    assert (done["replay_before"], done["replay_after"], done["replay_total"]) == (0, 0, 8)
    exported = client.get("/admin/gaps/export.csv").text
    assert exported.splitlines()[0].startswith("id,label,key_terms,status") and "payslip-access" in exported
    assert client.get("/admin/gaps/999").status_code == 404


def test_cli_gaps_refresh_link_replay(settings, embedder, monkeypatch):
    from click.testing import CliRunner

    from kb.cli import main

    monkeypatch.setattr("kb.content.indexer.make_embedder", lambda s: embedder)
    monkeypatch.setenv("KB_ARTICLES", str(settings.articles))
    db = Database(settings.db_path)
    seed_unanswered(db, COFFEE + NOISE, ts=time.time() - 60)
    runner = CliRunner()
    data = ["--data", str(settings.data)]
    refreshed = runner.invoke(main, ["gaps", "--refresh", "--json", *data])
    assert refreshed.exit_code == 0, refreshed.output
    [gap] = json.loads(refreshed.stdout)["gaps"]
    assert gap["size"] == 8 and gap["status"] == "open"
    assert f"#{gap['id']} [open] {gap['label']}" in runner.invoke(main, ["gaps", *data]).output
    bad = runner.invoke(main, ["gaps", *data, "link", str(gap["id"]), "nope"])
    assert bad.exit_code == 1 and "No published article" in bad.output
    linked = runner.invoke(main, ["gaps", *data, "link", str(gap["id"]), "payslip-access"])
    assert linked.exit_code == 0 and "0/8 answered" in linked.output
    replayed = runner.invoke(main, ["gaps", *data, "replay", str(gap["id"])])
    assert replayed.exit_code == 0 and "0 -> 0 of 8 answered" in replayed.output
    db.close()


def test_the_same_russian_requests_typed_in_either_ui_make_one_russian_gap(db, settings, desk):
    kofe = ["не работает кофемашина", "кофемашина сломалась", "кофемашина на кухне не варит кофе",
            "кофемашина течет", "кофемашина пишет ошибку"]
    now = time.time() - 60
    seed_unanswered(db, kofe, ts=now, session_prefix="en-ui", locale="en")  # the English UI
    seed_unanswered(db, kofe, ts=now, session_prefix="ru-ui", locale="ru")
    gaps.refresh_gaps(db, settings, desk)
    found = board.list_gaps(db)
    assert [(g.locale, g.size) for g in found] == [("ru", 10)]
