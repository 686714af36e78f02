"""The server's own schedule: the gap board is refreshed from the lifespan, with no page opened."""

from __future__ import annotations

import time

from litestar.testing import TestClient

from kb.storage import schema


def test_gap_refresh_runs_without_any_admin_request(settings, embedder):
    from kb.insight import gaps
    from kb.web.app import build_services, create_app

    settings = settings.replace(gap_refresh_minutes=15)
    services = build_services(settings, embedder=embedder)
    db = services["db"]
    with db.write() as conn:
        for i, text in enumerate(["the coffee machine is broken", "coffee machine not working",
                                  "who repairs the coffee maker", "coffee machine on floor 3 leaks"]):
            conn.execute(schema.requests.insert().values(
                id=f"r_bg{i}", ts=time.time() - 60 + i, kind="suggest", session=f"s{i}", query=text,
                locale="en", answered=0, top_confidence=0.1, fallback=0, results="[]", source="api"))
    assert gaps.last_refresh(db) is None
    with TestClient(create_app(settings, services=services)):
        deadline = time.time() + 120
        while gaps.last_refresh(db) is None and time.time() < deadline:
            time.sleep(0.2)
        assert gaps.last_refresh(db) is not None, "no refresh within 120 s of start"
        labels = [r["label"] for r in db.query("SELECT label FROM gaps WHERE active = 1")]
        assert any("coffee" in label for label in labels), labels
    db.close()


def test_no_refresh_when_the_setting_is_zero(settings, embedder):
    from kb.insight import gaps
    from kb.web.app import build_services, create_app

    services = build_services(settings.replace(gap_refresh_minutes=0), embedder=embedder)
    with TestClient(create_app(settings.replace(gap_refresh_minutes=0), services=services)) as client:
        assert client.get("/api/v1/healthz").status_code == 200
        time.sleep(1.0)
        assert gaps.last_refresh(services["db"]) is None
    services["db"].close()


def test_replicas_waking_together_refresh_the_gaps_once(settings, embedder, database_url):
    from concurrent.futures import ThreadPoolExecutor

    from kb.serving.desk import Desk
    from kb.storage.database import Database
    from kb.web.background import refresh_if_due

    settings = settings.replace(gap_refresh_minutes=15)
    replicas = [Database(database_url) for _ in range(3)]  # three processes on one database
    desk = Desk(settings, embedder, replicas[0])
    desk.load()
    try:
        with ThreadPoolExecutor(3) as pool:
            done = list(pool.map(lambda db: refresh_if_due(db, settings, desk), replicas))
        assert sum(summary is not None for summary in done) == 1
        assert replicas[1].scalar("SELECT count(*) FROM gap_runs") == 1
        assert refresh_if_due(replicas[2], settings, desk, now=time.time() + 16 * 60) is not None  # a period later
    finally:
        for db in replicas:
            db.close()
