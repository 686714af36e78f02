"""Shared fixtures: the real model (loaded once), the bundled KB indexed once, a test client."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from postgres import PostgresServer, PostgresUnavailable
from servers import TEST_HOST, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "articles"
EVAL_DIR = ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def embedder():
    """The real embedding model, loaded once per test session."""
    from kb.content.indexer import make_embedder
    from kb.settings import Settings

    return make_embedder(Settings.load(environ={}))


@pytest.fixture(scope="session")
def indexed_dir(tmp_path_factory, embedder) -> Path:
    """A data directory with the bundled articles indexed (shared, treat as read-only)."""
    from kb.content.indexer import index_directory
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

    # no background gap refresh racing the test (tests/test_background.py covers it)
    return Settings.load(environ={}, articles=ARTICLES, data=data_dir, cors_origins=("http://allowed.example",),
                         gap_refresh_minutes=0, allowed_hosts=(TEST_HOST,))


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


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, indexed_dir):
    """A real `kb serve` subprocess over a private copy of the indexed bundled KB."""
    data = tmp_path_factory.mktemp("live") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    proc, base = start_server(data, {"KB_RATE_SUGGEST_PER_MINUTE": "0", "KB_RATE_TICKETS_PER_HOUR": "0"})
    yield base
    stop_server(proc)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 server in a temporary directory: fails in CI when it cannot start, skips
    locally saying why."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: the PostgreSQL tests must run in CI, not be skipped")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database on each engine: a SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kb.db'}"
        return
    server = request.getfixturevalue("postgres")
    url = server.new_database()
    yield url
    server.drop_database(url)
