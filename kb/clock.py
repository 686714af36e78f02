"""Time as kb stores it (seconds since the epoch) and shows it (ISO 8601 in UTC, with a Z): one
format for the API, the pages, e-mails and the CLI."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now() -> float:
    """Seconds since the epoch."""
    return time.time()


def iso(ts: float | None) -> str | None:
    """`2026-11-28T22:40:38Z` for a timestamp; None for None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
