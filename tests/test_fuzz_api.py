"""Schemathesis over kb's own OpenAPI schema: no 5xx, and responses conform to the schema; then
bodies and path segments no schema describes (nested 1,000 deep, invalid UTF-8, NUL and CR/LF,
overflowing numbers) against every operation: a 4xx problem each, never a 5xx.

CI runs a bounded number of examples per operation; a longer run:
    KB_FUZZ_EXAMPLES=500 python -m pytest tests/test_fuzz_api.py
"""

from __future__ import annotations

import os
import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

EXAMPLES = int(os.environ.get("KB_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def api_schema(live_server):
    return schemathesis.openapi.from_url(live_server + "/schema/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_fails(case):
    # Tickets are validated beyond what a schema can say (email syntax, control characters in a
    # subject), reporting every bad field at once with 422: a schema-valid ticket may be refused.
    lenient = [positive_data_acceptance] if case.path == "/api/v1/tickets" else []
    case.call_and_validate(excluded_checks=lenient)


# Bodies and paths no schema describes (issue 17, finding 5): each is a 4xx problem, never a 5xx.
DEEP = b"[" * 1000 + b"]" * 1000
HOSTILE_BODIES = [
    DEEP, b'{"a": ' + DEEP + b"}", b'{"a": ' * 1000 + b"1" + b"}" * 1000, b'{"name": "a\xff\xfeb"}', b"\xff\xfe",
    b'{"comment": "\xed\xa0\x80"}', b'{"session": "\\ud800"}', b"", b"null", b"[]", b'"text"', b"1e999999",
    b'{"helpful": 1e999999, "slug": 99999999999999999999999999999}', b'{"a": NaN}', b'{"a": 1, "a": 2}',
    b"{" + b'"k": "v", ' * 20000 + b'"k": "v"}', b'{"session": "' + b"s" * 250_000 + b'"}', b"\x00" * 64,
]
HOSTILE_SEGMENTS = ["%00", "%0d%0a", "%1b[2J", "99999999999999999999999", "-1", "..%2f..%2fetc", "%5C%5Cevil.invalid",
                    "%ff%fe", "a" * 5000, "%E2%80%AE"]


@pytest.fixture(scope="module")
def operations(live_server):
    spec = httpx.get(live_server + "/schema/openapi.json", timeout=30).json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post")]


def test_hostile_bodies_never_fail(live_server, operations):
    posts = [path for method, path in operations if method == "POST"]
    assert {"/api/v1/tickets", "/api/v1/events", "/api/v1/feedback", "/api/v1/session"} <= set(posts)
    with httpx.Client(base_url=live_server, timeout=60) as c:
        for path in posts:
            for body in HOSTILE_BODIES:
                r = c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code < 500, (path, body[:40], r.status_code, r.text[:200])
                if r.status_code >= 400:
                    assert r.json()["detail"], (path, body[:40])


def test_hostile_path_segments_never_fail(live_server, operations):
    with httpx.Client(base_url=live_server, timeout=60) as c:
        for method, path in operations:
            for segment in HOSTILE_SEGMENTS:
                url = re.sub(r"\{[^}]+\}", segment, path) if "{" in path else f"{path}/{segment}"
                r = c.request(method, url, headers={"content-type": "application/json"}, content=b"{}")
                assert r.status_code < 500, (method, url[:80], r.status_code)
                r = c.get(path.split("{")[0], params={"q": segment, "page": segment, "limit": segment, "locale": segment,
                                                     "session": segment, "since": segment})
                assert r.status_code < 500, (path, segment[:40], r.status_code)
