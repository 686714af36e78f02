"""A several-box desk on one machine, for `kb bench --replicas` and tests/deploy: a throwaway
PostgreSQL cluster (Debian's binaries), kb servers on loopback ports configured from the files in
deploy/ (one publisher holding the articles, the others pulling its index), and HAProxy in front
from deploy/haproxy.cfg. What runs here is what docs/deploy.md tells an operator to run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kb.errors import KbError
from kb.measure.bench import free_port, stop_process

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The desk's public name: clients send it through the balancer (which listens on 127.0.0.1), and
# HAProxy's health checks too; kb refuses other names (KB_ALLOWED_HOSTS, deploy/kb.env).
PUBLIC_HOST = "help.kb.test"
TICK = os.sysconf("SC_CLK_TCK")
_names = itertools.count()


class ClusterError(KbError):
    """A part of the deployment cannot run here (the reason is the message)."""


class PostgresUnavailable(ClusterError):
    """PostgreSQL cannot be started here."""


class BalancerUnavailable(ClusterError):
    """HAProxy is not installed or does not start."""


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICK


def children(pid: int) -> list[int]:
    """The processes whose parent is pid."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


class PostgresServer:
    """One running cluster in a temporary directory, reachable only through a unix socket there;
    `new_database()` gives each user an empty database of its own.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the unprivileged
    `postgres` user (Debian's package creates it) and its commands run through `runuser`.
    """

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise PostgresUnavailable(f"PostgreSQL is not installed ({PG_BIN}/initdb missing: apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and runuser is missing")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(PG_BIN / program), *args], capture_output=True, text=True,
                                cwd=self.root, timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{program} failed: {result.stderr.strip()[-500:]}")

    def start(self) -> None:
        """Start the server (again, after `halt`)."""
        options = f"-c listen_addresses='' -c unix_socket_directories={self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def halt(self) -> None:
        """Stop the server as a restart does (fast: open connections are cut); `start` brings it back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and every backend and worker process (for CPU accounting)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *children(postmaster)]

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL (as an operator would write it) for one database."""
        return f"postgresql://postgres@/{database}?host={self.root}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        name = f"kb_test_{os.getpid()}_{next(_names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("/")[-1].split("?")[0]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def env_file(name: str, values: dict[str, str]) -> dict[str, str]:
    """The KB_* variables of deploy/<name> with its ${...} placeholders filled in (each one must be)."""
    out = {}
    for number, line in enumerate((DEPLOY / name).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ClusterError(f"deploy/{name}:{number}: not KEY=VALUE")
        try:
            out[key.strip()] = string.Template(value.strip()).substitute(values)
        except KeyError as exc:
            raise ClusterError(f"deploy/{name}:{number}: no value for {exc}") from exc
    return out


@dataclass
class Server:
    """One `kb serve` process on a loopback port."""

    name: str
    data: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    def start(self) -> None:
        """Start it (again); `ready` waits for its health check."""
        inherited = {k: v for k, v in dict(os.environ).items() if not k.startswith("KB_")}  # only deploy/*.env
        env = {**inherited, **self.env, "KB_DATA": str(self.data)}
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "kb", "serve"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=str(DEPLOY.parent))

    def ready(self, timeout: float = 300) -> dict:
        """Wait until it answers its health check; the answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ClusterError(f"{self.name} exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                response = httpx.get(self.url + "/api/v1/healthz", timeout=2)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ClusterError(f"{self.name} did not answer its health check within {timeout:.0f} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)] if self.running else []  # type: ignore[union-attr]


@dataclass
class Balancer:
    """HAProxy from deploy/haproxy.cfg in the foreground, with its addresses in the environment."""

    servers: list[Server]
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise BalancerUnavailable("HAProxy is not installed (apt-get install haproxy)")
        env = {**os.environ, "KB_BALANCER": f"127.0.0.1:{self.port}", "KB_HAPROXY_STATS": f"127.0.0.1:{self.stats_port}",
               "KB_PUBLIC_HOST": PUBLIC_HOST}
        for n, server in enumerate(self.servers, 1):
            env["KB_PUBLISHER" if n == 1 else f"KB_REPLICA_{n}"] = f"127.0.0.1:{server.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(DEPLOY / "haproxy.cfg")], env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BalancerUnavailable(f"haproxy exited: {log.read_text(errors='replace')[-1500:]}")
            if self.states().get("kb1") == "UP":
                return
            time.sleep(0.2)
        raise BalancerUnavailable("haproxy did not see its first server up within 30 s")

    def states(self) -> dict[str, str]:
        """Each replica's state as the balancer sees it ('UP', 'DOWN', ...), from its stats page."""
        try:
            csv = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text
        except httpx.HTTPError:
            return {}
        rows = [line.split(",") for line in csv.splitlines() if line.startswith("replicas,")]
        return {row[1]: row[17].split(" ")[0] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}

    def wait_for(self, name: str, state: str, timeout: float = 30) -> float:
        """Wait until the balancer sees replica `name` in `state`; the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.states().get(name) == state:
                return time.monotonic() - started
            time.sleep(0.1)
        raise ClusterError(f"the balancer did not see {name} {state} within {timeout:.0f} s: {self.states()}")

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@dataclass
class Deployment:
    """A publisher, replicas pulling its index, one database and HAProxy in front: deploy/ as written."""

    root: Path
    servers: list[Server]
    balancer: Balancer
    database_url: str
    articles: Path

    @classmethod
    def start(cls, root: Path, database_url: str, index_data: Path, articles: Path, replicas: int = 3,
              values: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> "Deployment":
        """Start `replicas` kb servers (the first publishes, from a copy of `index_data`) and HAProxy."""
        root.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(replicas)]
        balancer = Balancer([])
        common = {"DATABASE_URL": database_url, "LISTEN_HOST": "127.0.0.1", "BALANCER_ADDRESS": "127.0.0.1",
                  "PUBLIC_HOST": PUBLIC_HOST, "PUBLIC_URL": f"http://{PUBLIC_HOST}:{balancer.port}",
                  "SECURE_COOKIES": "false", "WEBHOOK_URL": "", "WEBHOOK_SECRET": "",
                  "ARTICLES": str(articles), "PUBLISHER_URL": f"http://127.0.0.1:{ports[0]}", **(values or {})}

        def make(n: int) -> Server:
            filled = {**common, "LISTEN_PORT": str(ports[n - 1])}
            role = env_file("publisher.env" if n == 1 else "replica.env", filled)
            return Server(f"kb{n}", root / f"kb{n}" / "data", ports[n - 1],
                          {**env_file("kb.env", filled), **role, **(extra or {})})

        servers = [make(n) for n in range(1, replicas + 1)]
        publisher = servers[0]
        shutil.copytree(index_data, publisher.data, symlinks=True, ignore=shutil.ignore_patterns("kb.db*", "*.lock"))
        balancer.servers = servers
        deployment = cls(root, servers, balancer, database_url, articles)
        try:
            publisher.start()
            publisher.ready()  # first: it migrates the database and holds the index the others pull
            for server in servers[1:]:
                server.start()
            for server in servers[1:]:
                server.ready()
            balancer.start(root / "haproxy.log")
            for server in servers:
                balancer.wait_for(server.name, "UP")
        except BaseException:
            deployment.stop()
            raise
        return deployment

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def stop(self) -> None:
        self.balancer.stop()
        for server in self.servers:
            server.stop()


__all__ = ["Balancer", "BalancerUnavailable", "ClusterError", "Deployment", "PUBLIC_HOST", "PostgresServer",
           "PostgresUnavailable", "Server", "cpu_seconds", "env_file"]
