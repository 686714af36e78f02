"""In-memory per-key rate limiting (sliding window), for anonymous endpoints and logins."""

from __future__ import annotations

import threading
import time
from collections import deque

from kb.errors import RateLimitedError


class RateLimiter:
    """Counts hits per key in a window; `hit` raises RateLimitedError past the limit."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, key: str, seconds: float, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - seconds:
            hits.popleft()
        if len(self._hits) > 50_000:  # forget idle keys rather than grow without bound
            for k in [k for k, v in self._hits.items() if not v][:10_000]:
                self._hits.pop(k, None)
        return hits

    def hit(self, key: str, limit: int, seconds: float) -> None:
        """Record one hit; raise RateLimitedError if the key is over its limit."""
        if limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            hits = self._window(key, seconds, now)
            if len(hits) >= limit:
                raise RateLimitedError(retry_after=max(1, int(hits[0] + seconds - now) + 1))
            hits.append(now)

    def check(self, key: str, limit: int, seconds: float) -> None:
        """Raise if the key is over its limit, without recording a hit."""
        now = time.monotonic()
        with self._lock:
            hits = self._window(key, seconds, now)
            if limit > 0 and len(hits) >= limit:
                raise RateLimitedError(retry_after=max(1, int(hits[0] + seconds - now) + 1))

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
