"""Opening the database a process was configured for: migrated, with old secret files imported."""

from __future__ import annotations

from kb.errors import KbError
from kb.settings import Settings
from kb.storage.database import Database
from kb.storage.engine import database_url, sqlite_path
from kb.storage.secrets import import_files


class MissingDatabaseError(KbError):
    """There is no database here yet."""


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """The database the settings name, migrated, with the data directory's secret files imported
    (releases before the database kept them there). `create=False` (read-only commands) refuses
    to make a new SQLite file: MissingDatabaseError instead."""
    url = database_url(settings.database_url, settings.data)
    path = sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise MissingDatabaseError(f"No database at {path}: run `kb serve` there first, or pass --data.")
    db = Database(url)
    try:
        import_files(db, settings.data)
    except BaseException:
        db.close()
        raise
    return db
