"""POST /api/v1/tickets: store a ticket (committed before the 201) for delivery through the outbox."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, post
from litestar.datastructures import State
from litestar.params import Body

from kb.tickets.intake import create_ticket
from kb.web.api import PROBLEMS
from kb.web.client import client_ip, session_id


class TicketIn(msgspec.Struct, forbid_unknown_fields=False):
    """Loosely typed on purpose: kb.tickets.intake.validate reports every bad field at once (422)."""

    name: Any = None
    email: Any = None
    subject: Any = None
    body: Any = None
    category: Any = None
    locale: Any = None
    session: Any = None  # a token from POST /api/v1/session; anything else attaches no transcript
    request_id: Any = None  # one of the session's own requests, or ignored
    website: Any = None  # honeypot: people never see it, bots fill it


class TicketOut(msgspec.Struct):
    """Only the ticket's own id, status and creation time: nothing the sender did not type is echoed."""

    id: str
    status: str
    created: str


@post("/tickets", responses=PROBLEMS, sync_to_thread=True, status_code=201)
def submit_ticket(request: Request, state: State, data: Annotated[TicketIn, Body(title="Ticket")]) -> TicketOut:
    """Create a ticket with the session's transcript; 422 lists every invalid field, 429 past the limit."""
    fields = {f: getattr(data, f) for f in data.__struct_fields__}
    if data.session is None or isinstance(data.session, str):  # anything else: a 422 from validate
        fields["session"] = session_id(state["db"], state["settings"], data.session)
    ticket = create_ticket(state["db"], state["settings"], fields, client_ip(request), limiter=state["limiter"])
    return TicketOut(ticket["id"], ticket["status"], ticket["created"])


ROUTES = [Router(path="/api/v1", route_handlers=[submit_ticket])]
