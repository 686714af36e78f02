"""`kb bench --replicas 1,2,3`: suggest throughput through HAProxy with 1, 2 and 3 replicas on one
PostgreSQL database, and where the CPU goes.

Each run starts the deployment docs/deploy.md describes (kb/measure/cluster.py: a throwaway
PostgreSQL, kb servers configured from deploy/*.env, HAProxy from deploy/haproxy.cfg) over one
synthetic KB indexed once, drives the balancer with closed-loop keep-alive clients typing the
bench workload, and reads every process's CPU time from /proc before and after: the kb servers,
PostgreSQL (postmaster and backends), HAProxy, and the load generator itself, which shares the
machine. CPU per request is what capacity planning needs: on a box with more cores each added
core adds about 1 / (kb CPU per request) suggests per second, until the database's or the
balancer's share of a core runs out.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kb.measure.bench import BenchOptions, load, machine
from kb.measure.benchdata import Workload, write_corpus
from kb.measure.cluster import PUBLIC_HOST, Deployment, PostgresServer, cpu_seconds
from kb.settings import Settings


@dataclass(frozen=True)
class Run:
    """What one replica count measured."""

    replicas: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    errors: int
    cpu_s: dict[str, float]  # per part: each kb server, "postgres", "haproxy", "load"

    def per_request_ms(self, part: str) -> float:
        return round(1000 * self.cpu_s[part] / max(self.requests, 1), 3)

    def as_dict(self) -> dict[str, Any]:
        kb = sum(v for k, v in self.cpu_s.items() if k.startswith("kb"))
        total = sum(self.cpu_s.values())
        return {
            "replicas": self.replicas, "requests": self.requests, "seconds": round(self.seconds, 1), "rps": self.rps,
            "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "errors": self.errors,
            "cpu_s": {k: round(v, 2) for k, v in self.cpu_s.items()},
            "cpu_ms_per_request": {
                "kb": round(1000 * kb / max(self.requests, 1), 3),
                "kb_per_replica": {k: self.per_request_ms(k) for k in self.cpu_s if k.startswith("kb")},
                "postgres": self.per_request_ms("postgres"), "haproxy": self.per_request_ms("haproxy"),
                "load": self.per_request_ms("load"),
            },
            "share": {part: round(v / max(total, 1e-9), 3) for part, v in
                      {"kb": kb, "postgres": self.cpu_s["postgres"], "haproxy": self.cpu_s["haproxy"],
                       "load": self.cpu_s["load"]}.items()},
            "machine_busy": round(total / (self.seconds * (os.cpu_count() or 1)), 2),
        }


def measure(deployment: Deployment, pg: PostgresServer, queries: list[str], clients: int, limit: int,
            seconds: float) -> Run:
    """Closed-loop suggests through the balancer; latency, throughput and every part's CPU."""
    parts: dict[str, Callable[[], list[int]]] = {s.name: s.pids for s in deployment.servers}
    parts |= {"postgres": pg.pids, "haproxy": deployment.balancer.pids}
    before = {name: cpu_seconds(pids()) for name, pids in parts.items()}
    load_before = _own_cpu()
    result = load(deployment.balancer.port, queries, clients, limit, seconds, host=PUBLIC_HOST)
    used = {name: cpu_seconds(pids()) - before[name] for name, pids in parts.items()}
    used["load"] = _own_cpu() - load_before
    wall = result["n"] / max(result["rps"], 1e-9)
    return Run(len(deployment.servers), result["n"], wall, result["rps"], result["p50"], result["p95"],
               result["errors"], used)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(counts: tuple[int, ...], options: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Index one synthetic KB, then measure each replica count in its own fresh deployment."""
    from kb.content.indexer import index_directory
    from search.embed import SentenceTransformerEmbedder

    n = options.sizes[0]
    report: dict[str, Any] = {"machine": machine(), "articles": n, "clients": options.clients,
                              "seconds_per_run": options.seconds, "runs": []}
    pg = PostgresServer()
    try:
        with tempfile.TemporaryDirectory(prefix="kb-bench-replicas-", dir=options.workdir) as tmp:
            root = Path(tmp)
            settings = Settings.load(environ={}, articles=root / "articles", data=root / "indexed",
                                     model=options.model, backend=options.backend)
            write_corpus(n, settings.articles, seed=options.seed)
            log(f"bench --replicas: indexing {n} articles once ...")
            embedder = SentenceTransformerEmbedder(options.model, backend=options.backend, threads=options.threads)
            index_directory(settings, embedder)
            work = Workload.build(settings, options.requests, seed=options.seed)
            env = {"KB_RATE_SUGGEST_PER_MINUTE": "1000000", "KB_MODEL": options.model, "KB_BACKEND": options.backend,
                   "KB_ENCODE_THREADS": str(options.threads), "KB_LOG_LEVEL": "warning", "KB_GAP_REFRESH_MINUTES": "0"}
            for count in counts:
                log(f"bench --replicas: {count} replica(s) behind HAProxy ...")
                deployment = Deployment.start(root / f"run-{count}", pg.new_database(), settings.data,
                                              settings.articles, replicas=count, extra=env)
                try:
                    _load_warm(deployment, work.typing)
                    measured = measure(deployment, pg, work.typing_other, options.clients, options.requests * 50,
                                       options.seconds)
                finally:
                    deployment.stop()
                report["runs"].append(measured.as_dict())
    finally:
        pg.stop()
    report["projection"] = projection(report["runs"])
    report["machine"]["loadavg_end"] = os.getloadavg()
    return report


def _load_warm(deployment: Deployment, queries: list[str]) -> None:
    """A few seconds of traffic first: every replica's caches and connections are warm."""
    load(deployment.balancer.port, queries, 4, 200, 5.0, host=PUBLIC_HOST)


def projection(runs: list[dict[str, Any]]) -> dict[str, float]:
    """What one more core buys, from the best measured run's CPU per request."""
    best = max(runs, key=lambda r: r["rps"])
    cost = best["cpu_ms_per_request"]
    server_side = cost["kb"] + cost["postgres"] + cost["haproxy"]
    return {
        "kb_cpu_ms_per_request": cost["kb"],
        "server_side_cpu_ms_per_request": round(server_side, 3),
        "rps_per_added_core": round(1000 / max(cost["kb"], 1e-9), 1),
        "postgres_core_saturates_at_rps": round(1000 / max(cost["postgres"], 1e-9)),
        "haproxy_core_saturates_at_rps": round(1000 / max(cost["haproxy"], 1e-9)),
    }


def table(report: dict[str, Any]) -> str:
    """One row per replica count, then the projection."""
    header = ["replicas", "req/s", "p50/p95 ms", "errors", "kb CPU ms/req", "CPU-s per replica", "postgres ms/req (share)",
              "haproxy ms/req (share)", "load gen share", "machine busy"]
    rows = []
    for r in report["runs"]:
        c, s = r["cpu_ms_per_request"], r["share"]
        per_replica = ", ".join(str(v) for k, v in r["cpu_s"].items() if k.startswith("kb"))
        rows.append([str(r["replicas"]), str(r["rps"]), f"{r['p50_ms']} / {r['p95_ms']}", str(r["errors"]),
                     str(c["kb"]), per_replica,
                     f"{c['postgres']} ({s['postgres']:.0%})", f"{c['haproxy']} ({s['haproxy']:.0%})",
                     f"{s['load']:.0%}", f"{r['machine_busy']:.0%}"])
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    p = report["projection"]
    return "\n".join([
        f"{report['articles']} articles, {report['clients']} closed-loop clients, {report['seconds_per_run']:.0f} s per run,"
        f" {report['machine']['cores']} cores ({report['machine']['cpu']})",
        line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows),
        f"kb CPU per suggest {p['kb_cpu_ms_per_request']} ms (with database and balancer {p['server_side_cpu_ms_per_request']} ms):"
        f" each added core ≈ {p['rps_per_added_core']} suggests/s; PostgreSQL would fill one core at"
        f" ≈ {p['postgres_core_saturates_at_rps']} req/s, HAProxy at ≈ {p['haproxy_core_saturates_at_rps']} req/s.",
    ])
