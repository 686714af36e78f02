"""Versioned schema migrations (Alembic, kb/storage/migrations/): run once at start, under a lock.

Several replicas (or `kb serve` workers) starting together must migrate once: on PostgreSQL the
upgrade runs inside a transaction holding an advisory lock, on SQLite inside a BEGIN IMMEDIATE
transaction (the database's write lock). Either way the second process waits, then finds the
revision current and does nothing. DDL is transactional on both, so a failed upgrade leaves the
previous revision in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATION_LOCK = 0x6B62_6462  # "kbdb": the advisory lock id of the schema upgrade
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class Status:
    """Where a database stands: its engine, its revision and the revisions still to apply."""

    engine: str
    url: str
    current: str | None
    head: str
    pending: list[str]


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "kb.storage:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated). Read directly rather than through
    Alembic's MigrationContext, which logs its setup at INFO on every process start."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    return versions[0] if len(versions) == 1 else MigrationContext.configure(connection).get_current_revision()


def status(engine: Engine) -> Status:
    """The engine, current revision and pending revisions (oldest first)."""
    script = _script()
    head = script.get_current_head() or ""
    with engine.connect() as conn:
        current = current_revision(conn)
    pending = [r.revision for r in script.iterate_revisions(head, current)]
    return Status(engine.dialect.name, engine.url.render_as_string(hide_password=True), current, head,
                  list(reversed(pending)))


def upgrade(engine: Engine, reader: Engine | None = None) -> bool:
    """Bring the schema to the newest revision; whether anything was applied.

    `reader` (SQLite's read engine) checks the revision first without taking the write lock.
    """
    head = _script().get_current_head()
    with (reader or engine).connect() as conn:
        if current_revision(conn) == head:  # the usual start: no lock taken at all
            return False
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        if current_revision(conn) == head:  # another process migrated while we waited
            return False
        command.upgrade(_config(conn), "head")
    return True
