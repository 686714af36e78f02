"""`kb bench`: synthetic KBs, index build and suggest latency through kb's real code paths.

Every figure comes from the code `kb index` and `kb serve` run: `index_directory` for builds,
`Desk.suggest` in process, and a real `python -m kb serve` subprocess over loopback HTTP.
The synthetic corpora and query workloads are in kb/benchdata.py.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from search.modelfiles import DEFAULT_MODEL

from kb.measure.benchdata import Workload, fts5_baseline, percentiles, tantivy_baseline, write_corpus
from kb.settings import Settings

TARGETS = {  # figure: (target, "<=" or ">="), at 10,000 articles
    "http1_p95_ms": (20.0, "<="), "http16_rps": (150.0, ">="), "http16_errors": (0, "<="),
    "http1_p50_over_floor": (1.5, "<="), "build_passages_per_s": (150.0, ">="),
    "reindex_one_s": (1.0, "<="), "server_rss_mb": (1200.0, "<="), "cold_start_s": (10.0, "<="),
}


@dataclass(frozen=True)
class BenchOptions:
    """What to run: sizes, backend and server shape, and how many requests per phase."""

    sizes: tuple[int, ...] = (1000, 10000)
    model: str = DEFAULT_MODEL
    backend: str = "onnx"
    threads: int = 1  # as KB_ENCODE_THREADS defaults
    workers: int = 1
    dense_kind: str = "auto"
    requests: int = 400  # per phase, also bounded by `seconds`
    seconds: float = 60.0
    clients: int = 16
    seed: int = 7
    workdir: Path | None = None


def machine() -> dict:
    """The machine and library versions the figures were measured on."""
    import faiss
    import onnxruntime
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem / 1024 / 1024, 1),
            "avx512_vnni": "avx512_vnni" in _read("/proc/cpuinfo"), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "faiss": faiss.__version__,
            "loadavg_start": os.getloadavg()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


class TimedEmbedder:
    """Wraps an embedder to measure the seconds the build spends embedding documents."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts, progress=None):
        started = time.perf_counter()
        try:
            return self.inner.encode_documents(texts, progress=progress)
        finally:
            self.seconds += time.perf_counter() - started


def measure_build(settings: Settings, embedder, dense_kind: str = "auto") -> dict:
    """A full build and the re-index of one changed article, through index_directory."""
    from kb.content.indexer import index_directory

    timed = TimedEmbedder(embedder)
    calls = embedder.calls
    wall, cpu = time.perf_counter(), time.process_time()
    summary = index_directory(settings, timed, dense_kind=dense_kind)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    encoded = embedder.calls - calls
    counts = json.loads((Path(summary.path) / "manifest.json").read_text())["counts"]
    first = sorted(settings.articles.glob("*.md"))[0]
    first.write_text(first.read_text() + "\n\nUpdated: restart the device after the change.\n")
    started = time.perf_counter()
    again = index_directory(settings, embedder, dense_kind=dense_kind)
    return {
        "articles": summary.articles, "passages": summary.passages, "chunks": counts["chunks"],
        "distinct_vectors": counts["vectors"], "encoded": encoded,
        "encoded_per_s": round(encoded / max(timed.seconds, 1e-9), 1),
        "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "embed_seconds": round(timed.seconds, 2),
        "passages_per_s": round(summary.passages / wall, 1),
        "passages_per_cpu_s": round(summary.passages / max(cpu, 1e-9), 1),
        "reindex_one_s": round(time.perf_counter() - started, 3), "reindex_embedded": again.embedded_articles,
    }


def measure_in_process(settings: Settings, embedder, queries: list[str], unique: list[str]) -> dict:
    """Desk.suggest latency (recording to SQLite as the server does), the floor, and the cache lever."""
    from kb.serving.desk import Desk
    from kb.storage.database import Database
    from search.dense import DenseIndex

    db = Database(settings.data / "bench-inproc.db")
    desk = Desk(settings, embedder, db)
    desk.load()
    index = desk.library.index
    # the floor's index search: faiss flat inner product over the same vectors, top 10
    flat = DenseIndex.build(np.asarray(index.vectors), np.arange(len(index.vectors)), kind="flat")
    for q in unique[:5]:
        desk.suggest(q)
    floor, cold = [], []
    for q in unique:  # interleaved, so load drift hits both alike; the cache is off for both
        embedder.clear_cache()
        started = time.perf_counter()  # the floor: encode one query and one faiss search, nothing else
        qv = embedder.encode_queries([q])
        flat.search(qv, 10)
        floor.append(time.perf_counter() - started)
        embedder.clear_cache()
        started = time.perf_counter()
        desk.suggest(q)
        cold.append(time.perf_counter() - started)
    embedder.clear_cache()
    hits0, misses0 = embedder.cache_hits, embedder.cache_misses
    warm = []
    for q in queries:  # the typing workload with the query cache on
        started = time.perf_counter()
        desk.suggest(q)
        warm.append(time.perf_counter() - started)
    hits, misses = embedder.cache_hits - hits0, embedder.cache_misses - misses0
    db.close()
    return {"suggest": percentiles(warm), "suggest_uncached": percentiles(cold), "floor": percentiles(floor),
            "cache_hit_rate": round(hits / max(hits + misses, 1), 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Ask a child process to end (SIGTERM), kill it if it has not within `timeout`, and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def suggest_path(query: str, n: int) -> str:
    return "/api/v1/suggest?" + urlencode({"q": query, "session": f"bench-{n % 97}"})


def start_server(settings: Settings, options: BenchOptions) -> tuple[subprocess.Popen, int, float]:
    """Start `python -m kb serve` on loopback; return it, its port and its cold start in seconds."""
    port = free_port()
    # The child gets its settings as KB_* variables, exactly as an operator would set them; the
    # suggest limit is one no client reaches, so the shared limiter's cost is in the figures.
    env = dict(os.environ, KB_RATE_SUGGEST_PER_MINUTE="1000000", KB_MODEL=settings.model, KB_BACKEND=settings.backend,
               KB_LOG_LEVEL="warning", KB_WORKERS=str(options.workers), KB_ENCODE_THREADS=str(options.threads))
    cmd = [sys.executable, "-m", "kb", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data", str(settings.data), "--articles", str(settings.articles)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + 180
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kb serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if _get(conn, suggest_path("password reset", 0)) == 200:
                conn.close()
                return proc, port, time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("kb serve did not answer within 180 s")


def load(port: int, queries: list[str], clients: int, limit: int, seconds: float, host: str = "127.0.0.1") -> dict:
    """Run `clients` keep-alive connections through the queries; latency, throughput, errors.

    The load generator shares the machine with the server, so it is kept lean: one asyncio loop
    writing prepared HTTP/1.1 requests on raw connections: 0.16 ms of CPU per request, where 16
    threads of http.client took 0.30 ms (and GIL hand-offs) away from the server.
    """
    with ThreadPoolExecutor(1) as pool:  # its own thread: the caller's may already run an event loop
        return pool.submit(lambda: asyncio.run(_load(port, queries, clients, limit, seconds, host))).result()


async def _load(port: int, queries: list[str], clients: int, limit: int, seconds: float, host: str) -> dict:
    lat: list[float] = []
    errors = 0
    next_i = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors, next_i
        conn = None
        while time.perf_counter() < deadline and next_i < limit:
            i, next_i = next_i, next_i + 1
            request = f"GET {suggest_path(queries[i % len(queries)], i)} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            started = time.perf_counter()
            try:
                conn = conn or await asyncio.open_connection("127.0.0.1", port)
                ok = await _exchange(*conn, request.encode()) == 200
            except (OSError, ValueError, asyncio.IncompleteReadError):
                ok = False
                if conn:
                    conn[1].close()
                conn = None
            lat.append(time.perf_counter() - started)
            errors += 0 if ok else 1
        if conn:
            conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    return {**percentiles(lat), "rps": round(len(lat) / wall, 1), "errors": errors, "clients": clients}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a keep-alive connection and read the whole response; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    if "content-length" not in fields:
        raise ValueError("response without a Content-Length")  # counted as an error
    await reader.readexactly(int(fields["content-length"]))
    return status


def peak_rss_mb(pid: int) -> float:
    """VmHWM of the server and its worker processes, summed."""
    pids = [pid] + [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _read(f"/proc/{p.name}/stat").split(") ")[-1].split()[1:2] == [str(pid)]]
    total = 0
    for p in pids:
        line = next((ln for ln in _read(f"/proc/{p}/status").splitlines() if ln.startswith("VmHWM")), "")
        total += int(line.split()[1]) if line else 0
    return round(total / 1024, 1)


def measure_http(settings: Settings, options: BenchOptions, work: Workload) -> dict:
    """Cold start, one client, many clients and peak RSS of a real `kb serve`."""
    proc, port, cold = start_server(settings, options)
    try:
        one = load(port, work.typing, 1, options.requests, options.seconds)
        many = load(port, work.typing_other, options.clients, options.requests * 4, options.seconds)
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_process(proc)
    return {"cold_start_s": round(cold, 2), "one_client": one, "many_clients": many, "server_rss_mb": rss}


def bench_size(n: int, options: BenchOptions, embedder, root: Path) -> dict:
    """Everything for one KB size."""
    articles, data = root / f"kb-{n}" / "articles", root / f"kb-{n}" / "data"
    corpus = write_corpus(n, articles, seed=options.seed)
    settings = Settings.load(environ={}, articles=articles, data=data, backend=options.backend, model=options.model)
    work = Workload.build(settings, options.requests, seed=options.seed)
    build = measure_build(settings, embedder, options.dense_kind)
    inproc = measure_in_process(settings, embedder, work.typing, work.unique)
    http = measure_http(settings, options, work)
    fts = fts5_baseline(settings.articles, work.typing)
    tan = tantivy_baseline(settings.articles, work.typing)
    floor = inproc["floor"]["p50"]
    return {
        "articles": n, "corpus": corpus, "build": build, "in_process": inproc, "http": http,
        "fts5": fts, "tantivy": tan,
        "ratios": {
            "http1_p50_over_floor": round(http["one_client"]["p50"] / floor, 2),
            "inproc_p50_over_fts5": round(inproc["suggest"]["p50"] / fts["p50"], 1),
            "http1_p50_over_fts5": round(http["one_client"]["p50"] / fts["p50"], 1),
            "inproc_p50_over_tantivy": round(inproc["suggest"]["p50"] / tan["p50"], 1) if tan else None,
        },
    }


def headline(result: dict) -> dict[str, float]:
    """The figures the targets are about, for one size."""
    h = result["http"]
    return {
        "http1_p95_ms": h["one_client"]["p95"], "http16_rps": h["many_clients"]["rps"],
        "http16_errors": h["many_clients"]["errors"], "http1_p50_over_floor": result["ratios"]["http1_p50_over_floor"],
        "build_passages_per_s": result["build"]["passages_per_s"], "reindex_one_s": result["build"]["reindex_one_s"],
        "server_rss_mb": h["server_rss_mb"], "cold_start_s": h["cold_start_s"],
    }


def run(options: BenchOptions, log=print) -> dict:
    """Run the benchmark for every size and return one JSON-able report."""
    from search.embed import SentenceTransformerEmbedder

    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(options.model, backend=options.backend, threads=options.threads)
    report: dict[str, Any] = {"machine": machine(), "options": {k: (str(v) if isinstance(v, Path) else v)
                                                for k, v in vars(options).items()},
              "model_load_s": round(time.perf_counter() - started, 2), "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="kb-bench-", dir=options.workdir) as tmp:
        for n in options.sizes:
            log(f"bench: {n} articles ...")
            result = bench_size(n, options, embedder, Path(tmp))
            result["headline"] = headline(result)
            report["sizes"][str(n)] = result
    report["machine"]["loadavg_end"] = os.getloadavg()
    return report


def table(report: dict) -> str:
    """One plain-text table: a row per figure, a column per size, and the 10k target."""
    sizes = list(report["sizes"])
    rows = [
        ("model (backend)", lambda r: f"{report['options']['model']} ({report['options']['backend']})", ""),
        ("articles / passages / chunks", lambda r: f"{r['articles']} / {r['build']['passages']} / {r['build']['chunks']}", ""),
        ("distinct chunk texts (vectors stored)", lambda r: r["build"]["distinct_vectors"], ""),
        ("encoded per second while embedding", lambda r: r["build"]["encoded_per_s"], ""),
        ("full build, passages/s (wall)", lambda r: r["build"]["passages_per_s"], "≥ 150"),
        ("full build, passages per CPU-s", lambda r: r["build"]["passages_per_cpu_s"], ""),
        ("  of which embedding, s / total s", lambda r: f"{r['build']['embed_seconds']} / {r['build']['seconds']}", ""),
        ("re-index one changed article, s", lambda r: r["build"]["reindex_one_s"], "≤ 1"),
        ("floor p50 (encode + faiss), ms", lambda r: r["in_process"]["floor"]["p50"], ""),
        ("in-process suggest p50/p95/p99, ms", lambda r: _ppp(r["in_process"]["suggest"]), ""),
        ("in-process, query cache off p50/p95, ms", lambda r: _ppp(r["in_process"]["suggest_uncached"], 2), ""),
        ("query cache hit rate (typing)", lambda r: r["in_process"]["cache_hit_rate"], ""),
        ("HTTP 1 client p50/p95/p99, ms", lambda r: _ppp(r["http"]["one_client"]), "p95 ≤ 20"),
        ("HTTP 1 client p50 / floor", lambda r: r["ratios"]["http1_p50_over_floor"], "≤ 1.5"),
        ("HTTP 16 clients p50/p95/p99, ms", lambda r: _ppp(r["http"]["many_clients"]), ""),
        ("HTTP 16 clients req/s (errors)", lambda r: f"{r['http']['many_clients']['rps']} ({r['http']['many_clients']['errors']})", "≥ 150 (0)"),
        ("server peak RSS, MB", lambda r: r["http"]["server_rss_mb"], "≤ 1200"),
        ("cold start to first suggest, s", lambda r: r["http"]["cold_start_s"], "≤ 10"),
        ("SQLite FTS5 bm25 p50/p95, ms", lambda r: _ppp(r["fts5"], 2), ""),
        ("kb in-process p50 / FTS5 p50", lambda r: r["ratios"]["inproc_p50_over_fts5"], ""),
        ("tantivy p50/p95, ms", lambda r: _ppp(r["tantivy"], 2) if r["tantivy"] else "not installed", ""),
    ]
    m = report["machine"]
    rows.append(("machine load average (1 min) start → end",
                 lambda r: f"{m['loadavg_start'][0]:.1f} → {m.get('loadavg_end', [float('nan')])[0]:.1f}", "quiet"))
    header = ["figure", *[f"{s} articles" for s in sizes], "target (10k)"]
    body = [[name, *[str(fn(report["sizes"][s])) for s in sizes], target] for name, fn, target in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def _ppp(p: dict, n: int = 3) -> str:
    return " / ".join(str(p[k]) for k in ("p50", "p95", "p99")[:n])
