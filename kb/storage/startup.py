"""Opening the database a process was configured for: migrated, with old secret files imported."""

from __future__ import annotations

from kb.errors import KbError
from kb.settings import Settings
from kb.storage.database import Database
from kb.storage.engine import database_url, sqlite_path
from kb.storage.secrets import import_files


class NoDatabaseError(KbError):
    """There is no kb database here yet."""

    status_code = 404


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """The database the settings name, migrated, with the data directory's secret files imported
    (releases before the database kept them there). With create=False a missing SQLite file is an
    error, never a new file (a read-only command pointed at the wrong folder must not leave an
    empty kb.db behind)."""
    url = database_url(settings.database_url, settings.data)
    path = sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise NoDatabaseError(
            f"No kb database in {path.parent} ({path.name} is missing): point --data or KB_DATA at the data"
            " directory of a kb that has run, or start `kb serve` there first."
        )
    db = Database(url)
    try:
        import_files(db, settings.data)
    except BaseException:
        db.close()
        raise
    return db
