"""A real several-box desk on loopback for tests/deploy: the session's PostgreSQL, three `kb serve`
processes configured from deploy/*.env (kb1 publishes the index from a copy of the articles, kb2
and kb3 pull it) and HAProxy from deploy/haproxy.cfg, with a webhook receiver for the tickets.

In CI a missing HAProxy or PostgreSQL fails these tests; locally they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kb.measure.bench import free_port
from kb.measure.cluster import BalancerUnavailable, Deployment

ROOT = Path(__file__).resolve().parents[2]
HOOK_SECRET = "deploy-hook-secret"


class Hook:
    """The desk's ticket system: counts every delivery per Idempotency-Key (duplicates too)."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.tickets: dict[str, str] = {}  # ticket id -> idempotency key
        lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with lock:
                    hook.deliveries[key] += 1
                    hook.tickets[body["ticket"]["id"]] = key
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kb"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def duplicates(self) -> dict[str, int]:
        return {key: n for key, n in self.deliveries.items() if n > 1}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, indexed_dir, postgres, hook):
    """kb1 (publisher) + kb2 + kb3 on one PostgreSQL database, behind HAProxy."""
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        reason = "HAProxy is not installed (apt-get install haproxy)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: the deployment tests must run in CI, not be skipped")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("deploy")
    articles = root / "articles"
    shutil.copytree(ROOT / "articles", articles)
    url = postgres.new_database()
    try:
        desk = Deployment.start(root, url, indexed_dir, articles, replicas=3,
                                values={"WEBHOOK_URL": hook.url, "WEBHOOK_SECRET": HOOK_SECRET},
                                extra={"KB_INDEX_POLL_SECONDS": "1", "KB_OUTBOX_BACKOFF_SECONDS": "0.5"})
    except BalancerUnavailable as exc:
        pytest.fail(str(exc))
    yield desk
    desk.stop()
    postgres.drop_database(url)


@pytest.fixture
def desk(deployment, postgres):
    """The deployment with every part running: a test that killed something and failed midway
    does not leave the next one a smaller desk."""
    if not postgres.pids():
        postgres.start()
    for server in deployment.servers:
        if not server.running:
            server.start()
            server.ready()
        deployment.balancer.wait_for(server.name, "UP")
    return deployment
