"""A throwaway PostgreSQL server for the tests: Debian's PostgreSQL 15 binaries, a cluster in a
temporary directory, reachable only through a unix socket in that directory.

PostgreSQL refuses to run as root, so under root the cluster belongs to the unprivileged
`postgres` user (Debian's package creates it) and its commands run through `runuser`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
_names = itertools.count()


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be started here (the reason is the message)."""


class PostgresServer:
    """One running cluster; `new_database()` gives each test an empty database of its own."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise PostgresUnavailable(f"PostgreSQL is not installed ({BIN}/initdb missing: apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and runuser is missing")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C.UTF-8")
        options = f"-c listen_addresses='' -c unix_socket_directories={self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(BIN / program), *args], capture_output=True, text=True,
                                cwd=self.root, timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{program} failed: {result.stderr.strip()[-500:]}")

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL (as an operator would write it) for one database."""
        return f"postgresql://postgres@/{database}?host={self.root}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        name = f"kb_test_{os.getpid()}_{next(_names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("/")[-1].split("?")[0]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
