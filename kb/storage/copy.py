"""Copy one kb database into another (`kb db copy`): a SQLite data directory into PostgreSQL.

The target is migrated first and must be empty: the copy is one transaction, so it either
lands whole or not at all, and running it twice refuses the second time instead of doubling rows.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, func, select

from kb.errors import KbError
from kb.storage import schema
from kb.storage.database import Database

BATCH = 1000
KEEP_OUT = {"rate_limits"}  # counters of the moment, not data


class NotEmptyError(KbError):
    """The target database already holds data."""

    status_code = 409


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, in dependency order."""
    return {t.name: int(db.scalar(select(func.count()).select_from(t)) or 0) for t in schema.metadata.sorted_tables}


def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy every table's rows from source into the (empty) target; rows copied per table."""
    tables = [t for t in schema.metadata.sorted_tables if t.name not in KEEP_OUT]
    full = {name: n for name, n in row_counts(target).items() if n and name not in KEEP_OUT}
    if full:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in full.items())
        raise NotEmptyError(f"The target database is not empty: {listed}. Copy into a new, empty database.")
    copied: dict[str, int] = {}
    with source.read() as reader, target.write() as writer:
        for table in tables:
            copied[table.name] = 0
            result = reader.execution_options(yield_per=BATCH).execute(select(table))
            for rows in result.mappings().partitions(BATCH):
                writer.execute(table.insert(), [dict(r) for r in rows])
                copied[table.name] += len(rows)
        if target.dialect == "postgresql":
            _advance_sequences(writer, tables)
    return copied


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """Explicit ids were copied: move each numbered table's sequence past them (PostgreSQL)."""
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].type.python_type is int:
            top = conn.execute(select(func.max(pk[0]))).scalar()
            if top is not None:
                conn.execute(select(func.setval(func.pg_get_serial_sequence(table.name, pk[0].name), top)))
