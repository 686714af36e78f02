"""End to end: `python -m kb serve` as a subprocess on a free port, called over real HTTP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 120


def wait_healthy(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kb serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/api/v1/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"kb serve was not healthy within {STARTUP_SECONDS}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path, indexed_dir):
    """A real `kb serve` on the bundled articles, stopped after the test."""
    data = tmp_path / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "KB_LOG_LEVEL": "warning", "KB_CONFIG": str(tmp_path / "none.toml")}
    command = [sys.executable, "-m", "kb", "serve", "--port", str(port), "--data", str(data),
               "--articles", str(ROOT / "articles")]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_kb_serve_answers_over_real_http(server):
    with httpx.Client(base_url=server, timeout=30, headers={"accept": "text/html"}) as http:
        home = http.get("/")
        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        assert 'action="/search"' in home.text and "kb_session=" in home.headers["set-cookie"]

        api = http.get("/api/v1/suggest", params={"q": "vpn"}, headers={"accept": "application/json"})
        assert api.status_code == 200
        body = api.json()
        assert body["answered"] is True and body["suggestions"]
        assert body["request_id"].startswith("r_")

        results = http.get("/search", params={"q": "how do I reset my password"})
        assert results.status_code == 200 and "/go?r=r_" in results.text and "<mark>" in results.text

        missing = http.get("/articles/no-such-article")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")

        css = http.get("/static/portal.css")
        assert css.status_code == 200 and "max-age=300" in css.headers["cache-control"]

        schema = http.get("/schema/openapi.json", headers={"accept": "application/json"})
        assert schema.status_code == 200
        assert schema.json()["openapi"].startswith("3.") and "/api/v1/suggest" in schema.json()["paths"]
