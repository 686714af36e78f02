"""Secrets every process and replica must share (``secrets`` table): the key that signs staff
sessions and CSRF tokens, the salt of the IP hashes on tickets, and the token replicas show the
index publisher (kb/content/publish.py).

Earlier releases kept them in files in the data directory (``secret.key``, ``ip_salt``);
`import_files` copies those in on the first start, so existing sessions stay valid. The first
process that needs a missing secret generates it; a concurrent one keeps the stored value.
"""

from __future__ import annotations

import secrets as random
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from kb.storage import schema
from kb.storage.database import Database, upsert

SESSION_KEY = "session_key"
IP_SALT = "ip_salt"
INDEX_TOKEN = "index_token"
GENERATORS: dict[str, Callable[[], str]] = {
    SESSION_KEY: lambda: random.token_urlsafe(48),
    IP_SALT: lambda: random.token_hex(32),
    INDEX_TOKEN: lambda: random.token_urlsafe(32),
}
FILES = {SESSION_KEY: "secret.key", IP_SALT: "ip_salt"}  # where releases before the database kept them


def _store(db: Database, name: str, value: str) -> None:
    """Insert the secret unless one is stored already (the first writer wins)."""
    with db.write() as conn:
        conn.execute(upsert(db.dialect, schema.secrets, ["name"]).values(name=name, value=value, created=time.time()))


def shared_secret(db: Database, name: str) -> str:
    """The named secret, generated and stored on first use; cached for the life of `db`."""
    key = "secret:" + name
    if key not in db.cache:
        query = select(schema.secrets.c.value).where(schema.secrets.c.name == name)
        value = db.scalar(query)
        if value is None:
            _store(db, name, GENERATORS[name]())
            value = db.scalar(query)
        db.cache[key] = value
    return str(db.cache[key])


def import_files(db: Database, data: Path) -> list[str]:
    """Copy secrets from the data directory's files into the database where none is stored yet;
    the names imported."""
    imported = []
    for name, filename in FILES.items():
        path = Path(data) / filename
        if not path.is_file():
            continue
        value = path.read_text(encoding="ascii").strip()
        stored = db.scalar(select(schema.secrets.c.value).where(schema.secrets.c.name == name))
        if value and stored is None:
            _store(db, name, value)
            imported.append(name)
    return imported
