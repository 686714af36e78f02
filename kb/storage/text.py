"""User text as kb stores it: control characters other than tab and newline removed.

Applied once, where rows of typed text are written (kb/storage/database.py `record_*`), so a
query, a feedback comment or an event's data can never carry a terminal escape sequence into a
staff member's terminal, log or export, whichever way it is shown later. Ticket fields are
refused instead (kb/tickets/intake.py): a person is there to correct the form.
"""

from __future__ import annotations

import re
from typing import Any

# Unicode category Cc: C0, DEL and C1 (U+009B is a CSI to some terminals), but not \t and \n.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """`text` with line breaks as \\n and every other control character but \\t removed."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean(value: Any) -> Any:
    """strip_controls applied to every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
