"""Schema migrations, the upgrade of a database made before them, `kb db`, and copying into PostgreSQL."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select

from kb.cli import main
from kb.settings import Settings
from kb.staff import auth
from kb.storage import migrate, schema
from kb.storage.database import Database
from kb.storage.limits import RateLimiter
from kb.storage.startup import open_database
from kb.tickets.intake import ip_hash, list_tickets

LEGACY_SQL = Path(__file__).parent / "data" / "kb-db-before-migrations.sql"
PASSWORD = "correct horse battery"
SECRET = "a-secret-key-written-by-an-earlier-release-0123456789"


def legacy_data_dir(tmp_path: Path) -> Path:
    """A data directory as an earlier release left it: sqlite-utils tables with rows, secret files."""
    from argon2 import PasswordHasher

    data = tmp_path / "old"
    data.mkdir()
    conn = sqlite3.connect(data / "kb.db")
    conn.executescript(LEGACY_SQL.read_text())
    conn.execute("INSERT INTO requests VALUES ('r1', 100.0, 'suggest', 's1', 'vpn error', 'en', 1, 0.9, 0, '[]', 'api')")
    conn.execute("INSERT INTO events (ts, session, type, request_id, slug, data) VALUES (101, 's1', 'suggestion_opened', 'r1', 'vpn', '{}')")
    conn.execute("INSERT INTO tickets VALUES ('T-AAAAAAAAAA', 102, 'Ann', 'ann@example.com', 'VPN', 'It drops', '',"
                 " 'en', 's1', 'r1', '{}', 'key-1', 'hash', 'pending')")
    conn.execute("INSERT INTO outbox (ticket_id, sink, status, attempts, next_attempt_at, last_error, delivered_at,"
                 " claimed_until) VALUES ('T-AAAAAAAAAA', 'webhook', 'pending', 1, 0, 'timeout', NULL, 0)")
    conn.execute("INSERT INTO users (email, role, password_hash, created, disabled) VALUES (?, 'owner', ?, 1, 0)",
                 ("owner@example.com", PasswordHasher().hash(PASSWORD)))
    conn.execute("INSERT INTO gaps (label, key_terms, locale, size, impact, active) VALUES ('coffee', '[]', 'en', 3, 1.5, 1)")
    conn.commit()
    conn.close()
    (data / "secret.key").write_text(SECRET + "\n")
    (data / "ip_salt").write_text("an-old-salt\n")
    return data


def test_a_database_from_before_migrations_is_adopted_with_every_row(tmp_path):
    data = legacy_data_dir(tmp_path)
    settings = Settings.load(environ={}, data=data)
    old_cookie = auth.sign(SECRET.encode(), "an-old-session")  # signed by the old file's key
    db = open_database(settings)
    try:
        assert migrate.status(db.engine).pending == []
        assert "fix" in {c["name"] for c in inspect(db.engine).get_columns("gaps")}
        assert db.scalar(select(schema.requests.c.query)) == "vpn error"
        assert db.scalar(select(schema.gaps.c.label)) == "coffee"
        [ticket] = list_tickets(db)
        assert ticket["id"] == "T-AAAAAAAAAA" and ticket["deliveries"][0]["last_error"] == "timeout"
        assert auth.secret_key(db, settings) == SECRET.encode()  # the old key file was imported
        assert auth.unsign(auth.secret_key(db, settings), old_cookie) == "an-old-session"
        assert ip_hash(db, settings, "10.0.0.1") == hashlib.sha256(b"an-old-salt|10.0.0.1").hexdigest()
        uid = auth.authenticate(db, settings, RateLimiter(db), "owner@example.com", PASSWORD, "10.0.0.1")
        assert auth.load_session(db, settings, auth.start_session(db, settings, uid)) is not None
        assert db.insert(schema.events, {"ts": 103, "session": "s1", "type": "feedback"}) == 2  # numbering goes on
    finally:
        db.close()


def test_several_processes_starting_together_migrate_once(database_url):
    errors: list[BaseException] = []
    opened: list[Database] = []

    def start() -> None:
        try:
            opened.append(Database(database_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = opened[0]
    assert [r["version_num"] for r in db.query("SELECT version_num FROM alembic_version")] == [migrate.status(db.engine).head]
    assert set(schema.metadata.tables) <= set(inspect(db.engine).get_table_names())
    for d in opened:
        d.close()


def test_read_only_commands_never_create_a_database(tmp_path):
    runner = CliRunner()
    for args in (["stats"], ["tickets"], ["gaps"], ["db", "status"]):
        result = runner.invoke(main, [*args, "--data", str(tmp_path / "none")])
        assert result.exit_code == 1 and "No kb database in" in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_db_upgrade_and_status(tmp_path):
    runner = CliRunner()
    data = legacy_data_dir(tmp_path)
    before = runner.invoke(main, ["db", "status", "--data", str(data)])
    assert before.exit_code == 0 and "revision: (none)" in before.output and "pending:  0001, 0002, 0003" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data", str(data)])
    assert upgraded.exit_code == 0 and "at revision 0003" in upgraded.output
    after = runner.invoke(main, ["db", "status", "--data", str(data)])
    assert "engine:   sqlite" in after.output and "pending:  none" in after.output


def test_copy_a_sqlite_data_directory_into_postgresql(tmp_path, postgres):
    runner = CliRunner()
    data = legacy_data_dir(tmp_path)
    target = postgres.new_database()
    try:
        result = runner.invoke(main, ["db", "copy", "--to", target, "--data", str(data)])
        assert result.exit_code == 0, result.output
        assert "tickets: 1 rows" in result.output and "secrets: 2 rows" in result.output
        settings = Settings.load(environ={}, data=tmp_path / "empty", database_url=target)
        db = open_database(settings)
        try:
            assert auth.secret_key(db, settings) == SECRET.encode()  # old sessions stay valid
            assert [t["id"] for t in list_tickets(db)] == ["T-AAAAAAAAAA"]
            assert db.insert(schema.events, {"ts": 104, "session": "s2", "type": "feedback"}) == 2
        finally:
            db.close()
        again = runner.invoke(main, ["db", "copy", "--to", target, "--data", str(data)])
        assert again.exit_code == 1 and "not empty" in again.output
    finally:
        postgres.drop_database(target)


def test_a_database_url_kb_does_not_run_on_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["stats", "--data", str(tmp_path)], env={"KB_DATABASE_URL": "mysql://x@y/z"})
    assert result.exit_code == 1 and "sqlite:///PATH or postgresql://" in result.output


@pytest.mark.parametrize("url", ["postgresql://u@h/d", "postgres://u@h/d", "postgresql+psycopg://u@h/d"])
def test_postgresql_urls_use_psycopg(url):
    from kb.storage.engine import database_url

    assert database_url(url, Path(".")).drivername == "postgresql+psycopg"
