"""A throwaway PostgreSQL server for the tests: Debian's PostgreSQL 15 binaries, a cluster in a
temporary directory, reachable only through a unix socket in that directory.

The class lives in kb/measure/cluster.py, where `kb bench --replicas` starts one too.
"""

from __future__ import annotations

from kb.measure.cluster import PostgresServer, PostgresUnavailable

__all__ = ["PostgresServer", "PostgresUnavailable"]
