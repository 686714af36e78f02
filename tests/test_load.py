"""A short run of the mixed load script against a real server: zero errors, p99 reported.

The full run (60 s, 32 clients) is `python tests/load_mixed.py --seconds 60 --clients 32`
against `kb serve` (see SECURITY.md).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from load_mixed import run

pytestmark = pytest.mark.slow


def test_mixed_load_has_no_errors(live_server):
    # a fresh thread: the browser tests' sync playwright may leave an event loop on this one
    with ThreadPoolExecutor(1) as pool:
        report = pool.submit(asyncio.run, run(live_server, seconds=10, clients=16, max_requests=3000)).result()
    print(report)
    assert report["requests"] >= 50
    assert report["error_count"] == 0, report["errors"]
    assert report["p99_ms"] > 0
    assert {"suggest", "page"} <= set(report["by_kind"])
