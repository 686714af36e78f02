"""Shared fixtures: the real model (loaded once), the bundled KB indexed once, a test client."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "articles"
EVAL_DIR = ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def embedder():
    """The real embedding model, loaded once per test session."""
    from kb.indexer import make_embedder
    from kb.settings import Settings

    return make_embedder(Settings.load(environ={}))


@pytest.fixture(scope="session")
def indexed_dir(tmp_path_factory, embedder) -> Path:
    """A data directory with the bundled articles indexed (shared, treat as read-only)."""
    from kb.indexer import index_directory
    from kb.settings import Settings

    data = tmp_path_factory.mktemp("kb-data")
    index_directory(Settings.load(environ={}, articles=ARTICLES, data=data), embedder)
    return data


@pytest.fixture
def data_dir(tmp_path, indexed_dir) -> Path:
    """A private copy of the indexed data directory that a test may write to."""
    target = tmp_path / "data"
    shutil.copytree(indexed_dir, target, symlinks=True)
    return target


@pytest.fixture
def settings(data_dir):
    from kb.settings import Settings

    return Settings.load(environ={}, articles=ARTICLES, data=data_dir, cors_origins=("http://allowed.example",))


@pytest.fixture
def services(settings, embedder):
    from kb.web.app import build_services

    state = build_services(settings, embedder=embedder)
    yield state
    state["db"].close()


@pytest.fixture
def client(settings, services):
    """A Litestar TestClient over the full app with the bundled KB loaded."""
    from litestar.testing import TestClient

    from kb.web.app import create_app

    with TestClient(create_app(settings, services=services)) as test_client:
        yield test_client


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, env_extra: dict[str, str] | None = None, port: int | None = None, timeout: float = 600):
    """Start `kb serve` as a real subprocess on a free port; return (process, base URL)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = port or free_port()
    env = {**os.environ, "KB_LOG_LEVEL": "warning", "KB_ARTICLES": str(ARTICLES), **(env_extra or {})}
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


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, indexed_dir):
    """A real `kb serve` subprocess over a private copy of the indexed bundled KB."""
    data = tmp_path_factory.mktemp("live") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    proc, base = start_server(data, {"KB_RATE_SUGGEST_PER_MINUTE": "0", "KB_RATE_TICKETS_PER_HOUR": "0"})
    yield base
    stop_server(proc)
