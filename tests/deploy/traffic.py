"""Mixed traffic through the balancer as people make it: each client on its own loopback address
(127.N.x.y, never 127.0.0.1, the balancer's), typing suggests with pauses, opening suggestions,
answering "Was this helpful?", now and then filing a ticket or opening a page.

Every request is recorded with when it started and ended, its status, the replica the balancer
sent it to (X-KB-Replica) and what it created, so a test can count exactly what failed, where,
and whether it was in flight when something was killed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from kb.measure.cluster import PUBLIC_HOST

QUERIES = ["vpn keeps dropping", "outlook asks for my password again", "reset my password", "printer is offline",
           "new laptop for a new starter", "mfa code does not arrive", "wifi certificate error", "сброс пароля",
           "не работает впн", "доступ к общему ящику", "lost my expense card", "office access card stopped working"]
PAGES = ["/", "/articles/vpn-connect", "/search?q=printer"]
MIX = {"suggest": 70, "event": 14, "feedback": 8, "ticket": 4, "page": 4}


@dataclass
class Outcome:
    """One request as the client saw it."""

    kind: str
    client: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all
    replica: str = ""
    created: str = ""  # the ticket id (201) or the suggest's request id (200)
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 400


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    def tickets(self) -> list[str]:
        """Ticket ids the desk acknowledged (201)."""
        return [o.created for o in self.outcomes if o.kind == "ticket" and o.status == 201]

    def request_ids(self) -> list[str]:
        """Request ids of the suggests that were answered."""
        return [o.created for o in self.outcomes if o.kind == "suggest" and o.status == 200]

    def summary(self) -> str:
        by_kind = Counter(o.kind for o in self.outcomes)
        by_replica = Counter(o.replica for o in self.outcomes)
        failed = Counter(f"{o.kind}:{o.status}@{o.replica or '-'}" for o in self.failures())
        latencies = sorted(o.ended - o.started for o in self.outcomes) or [0.0]
        return (f"{len(self.outcomes)} requests in {self.seconds:.0f} s ({len(self.outcomes) / max(self.seconds, 1e-9):.1f}/s),"
                f" p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms;"
                f" by kind {dict(by_kind)}; by replica {dict(by_replica)}; failed {dict(failed) or 0}")


async def _client(base: str, host: str, address: str, n: int, deadline: float, rng: random.Random,
                  out: list[Outcome]) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=address, retries=0)
    session = f"s-{address}-{n}"
    last = {"request_id": "", "slug": "vpn-connect"}
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=60, headers={"Host": host}) as client:
        while time.monotonic() < deadline:
            kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
            started = time.monotonic()
            outcome = Outcome(kind, address, started, started, 0)
            try:
                response = await _send(client, kind, session, last, rng)
                outcome.status = response.status_code
                outcome.replica = response.headers.get("x-kb-replica", "")
                if outcome.failed:
                    outcome.detail = response.text[:300]
                elif kind == "suggest":
                    body = response.json()
                    outcome.created = last["request_id"] = body["request_id"]
                    if body["suggestions"]:
                        last["slug"] = body["suggestions"][0]["slug"]
                elif kind == "ticket":
                    outcome.created = response.json()["id"]
            except httpx.HTTPError as exc:
                outcome.detail = f"{type(exc).__name__}: {exc}"
            outcome.ended = time.monotonic()
            out.append(outcome)
            await asyncio.sleep(rng.uniform(0.15, 0.45))  # a person typing, reading, clicking


async def _send(client: httpx.AsyncClient, kind: str, session: str, last: dict, rng: random.Random) -> httpx.Response:
    if kind == "suggest":
        query = rng.choice(QUERIES)
        return await client.get("/api/v1/suggest", params={"q": query[: rng.randint(5, len(query))], "session": session})
    if kind == "event":
        return await client.post("/api/v1/events", json={"session": session, "type": "suggestion_opened",
                                                          "data": {"request_id": last["request_id"], "slug": last["slug"]}})
    if kind == "feedback":
        return await client.post("/api/v1/feedback", json={"slug": last["slug"], "helpful": rng.random() < 0.7,
                                                            "request_id": last["request_id"], "session": session})
    if kind == "ticket":
        return await client.post("/api/v1/tickets", json={
            "name": "Anna Load", "email": "anna.load@example.com", "subject": f"Still stuck ({session})",
            "body": "The suggestions did not help, please call me.", "session": session,
            "request_id": last["request_id"]})
    return await client.get(rng.choice(PAGES), headers={"accept": "text/html"})


def run(base: str, clients: int, seconds: float, network: int, seed: int = 7, host: str = PUBLIC_HOST) -> Report:
    """`clients` people on addresses 127.<network>.x.y for `seconds`, naming the desk's public
    host (the balancer listens on 127.0.0.1); everything they saw."""
    if not 1 <= network <= 254:
        raise ValueError("network is the second octet of the clients' loopback addresses (1-254)")
    rng = random.Random(seed)
    out: list[Outcome] = []
    deadline = time.monotonic() + seconds

    async def everyone() -> None:
        await asyncio.gather(*(_client(base, host, f"127.{network}.{n // 200}.{n % 200 + 2}", n, deadline,
                                       random.Random(rng.random()), out) for n in range(clients)))

    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # its own thread: the browser tests leave an event loop in this one
        pool.submit(asyncio.run, everyone()).result()
    return Report(out, time.monotonic() - started)
