"""Work the server does on its own schedule, started and stopped by the app's lifespan:
ticket delivery (kb/tickets/outbox.py) and the gap board's refresh, whether or not anyone
opens a page."""

from __future__ import annotations

import asyncio
import logging
import time

from anyio import to_thread
from litestar import Litestar

from kb.insight import gaps
from kb.serving.desk import Desk
from kb.settings import Settings
from kb.storage.database import Database
from kb.storage.locks import held
from kb.tickets.outbox import run_outbox

log = logging.getLogger("kb.background")


def start(app: Litestar) -> list[asyncio.Task[None]]:
    """Start the outbox and, unless gap_refresh_minutes is 0, the gap refresh; return the tasks."""
    state, settings = app.state, app.state["settings"]
    tasks = [asyncio.create_task(run_outbox(state["db"], settings), name="kb-outbox")]
    if settings.gap_refresh_minutes > 0:
        tasks.append(asyncio.create_task(refresh_gaps(state["db"], settings, state["desk"]), name="kb-gaps"))
    return tasks


async def refresh_gaps(db: Database, settings: Settings, desk: Desk) -> None:
    """Recompute the gaps whenever the last refresh is gap_refresh_minutes old (at once if never)."""
    period = settings.gap_refresh_minutes * 60
    while True:
        try:
            summary = await to_thread.run_sync(refresh_if_due, db, settings, desk, abandon_on_cancel=True)
            if summary is not None:
                log.info("gap board refreshed: %(misses)s misses, %(gaps)s gaps in %(seconds)ss", summary)
            last = await to_thread.run_sync(gaps.last_refresh, db)
            wait = period if last is None else last + period - time.time()
        except Exception:  # keep the schedule alive; the board shows when it last refreshed
            log.exception("gap refresh failed")
            wait = period
        await asyncio.sleep(max(wait, 1.0))


def refresh_if_due(db: Database, settings: Settings, desk: Desk, now: float | None = None) -> dict | None:
    """Refresh the gaps if the last refresh (by any replica) is a period old; the summary, or None.

    Replicas share the schedule through the database and wake together: the check and the refresh
    run under one lock, so the first one refreshes and the others then find it done, rather than
    each refreshing in turn.
    """
    with held(db, "gap-schedule"):  # not "gap-refresh", which refresh_gaps holds inside
        last = gaps.last_refresh(db)
        if last is not None and last + settings.gap_refresh_minutes * 60 > (now or time.time()):
            return None
        return gaps.refresh_gaps(db, settings, desk)
