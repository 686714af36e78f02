"""Looking at kb from outside, as another process would: a real `kb serve` subprocess over HTTP,
and its database through a fresh engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kb.measure.bench import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "articles"
# Litestar's TestClient sends "Host: testserver.local": tests that build an app allow it in their
# settings (KB_ALLOWED_HOSTS); the default allow-list stays the base URL and this machine's names.
TEST_HOST = "testserver.local"


def start_server(data: Path, env_extra: dict[str, str] | None = None, port: int | None = None, timeout: float = 600,
                 inherit_kb: bool = True):
    """Start `kb serve` as a real subprocess on a free port; return (process, base URL).

    `inherit_kb=False` drops the caller's own KB_* variables, so only env_extra configures it.
    """
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = port or free_port()
    inherited = {k: v for k, v in os.environ.items() if inherit_kb or not k.startswith("KB_")}
    env = {**inherited, "KB_LOG_LEVEL": "warning", "KB_ARTICLES": str(ARTICLES), **(env_extra or {})}
    log = open(data / f"server-{port}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kb", "serve", "--port", str(port), "--data", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout  # a first start may index every article
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kb serve exited with {proc.returncode}: {(data / f'server-{port}.log').read_text()[-2000:]}")
        try:
            if httpx.get(base + "/api/v1/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"kb serve did not become healthy within {timeout:.0f} s")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except Exception:
        proc.kill()
        proc.wait()


def committed(db: Path | str, sql: str, params: tuple | dict = ()) -> list[Any]:
    """Read through a fresh engine (a SQLite path or any database URL): what is committed, not
    what a cached connection saw. `sql` is plain SQL with the driver's parameter style."""
    from sqlalchemy.engine import URL, make_url

    from kb.storage.engine import make_engine

    url = make_url(str(db)) if "://" in str(db) else URL.create("sqlite", database=str(db))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(sql, params).mappings())
    finally:
        engine.dispose()


STAFF_PASSWORD = "correct horse battery"  # the password browser tests give the staff they add


def login(page: Any, base: str, email: str, password: str = STAFF_PASSWORD) -> None:
    """Sign in to the admin of the kb at `base` through its login form (a Playwright page)."""
    page.goto(base + "/admin/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
