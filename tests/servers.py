"""Looking at kb from outside, as another process would: a real `kb serve` subprocess over HTTP,
and its SQLite database through a fresh connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kb.measure.bench import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "articles"


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


def committed(db_path: Path, sql: str, params=()) -> list[sqlite3.Row]:
    """Read through a fresh connection: what is committed, not what a cached connection saw."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
