"""Per-document JSON records that successive builds share instead of rewriting.

A record set `name` in a build directory is two files::

    name.base.json    a JSON array of records, hard-linked from build to build while it is reused
    name.patch.json   {"order": [...], "records": [...]}: record i is base[order[i]] when
                      order[i] >= 0, else records[-1 - order[i]] (the records this build added)

A re-index that changes a few documents writes a patch of a few records and links the base, so
it neither reads nor writes the whole set. The base is written anew once the patch holds more
than PATCH_SHARE of the records.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import msgspec
import numpy as np

PATCH_SHARE = 0.1
PATCH_MIN = 256


class _Patch(msgspec.Struct):
    order: list[int]
    records: list[msgspec.Raw]


class RecordSet:
    """The records `name` of one build, read lazily: the base is only read by `all`."""

    def __init__(self, path: Path, name: str) -> None:
        self.base = path / f"{name}.base.json"
        patch = msgspec.json.decode((path / f"{name}.patch.json").read_bytes(), type=_Patch)
        self.order = np.asarray(patch.order, dtype=np.int64)
        self.added = patch.records
        if not self.base.exists():
            raise FileNotFoundError(2, "missing", str(self.base))

    @staticmethod
    def files(name: str) -> tuple[str, str]:
        return f"{name}.base.json", f"{name}.patch.json"

    def __len__(self) -> int:
        return len(self.order)

    def all(self) -> list[msgspec.Raw]:
        """Every record, in order, as stored JSON."""
        base = msgspec.json.decode(self.base.read_bytes(), type=list[msgspec.Raw])
        if len(self.order) and self.order.max() >= len(base):
            raise ValueError(f"{self.base} holds {len(base)} records, fewer than its patch refers to")
        return [base[o] if o >= 0 else self.added[-1 - o] for o in self.order.tolist()]

    def decoded(self, kind: type[Any] = object) -> list[Any]:
        """Every record, decoded (as `kind`, say a dataclass, when given)."""
        return msgspec.json.decode(msgspec.json.encode(self.all()), type=list[kind])  # type: ignore[valid-type]

    @staticmethod
    def write(path: Path, name: str, rows: Sequence[bytes | int], previous: "RecordSet | None") -> None:
        """Write a record set: rows[i] is a new record (JSON bytes) or the row of `previous` it keeps."""
        order: list[int] = []
        added: list[msgspec.Raw | bytes] = []
        prev_order = previous.order.tolist() if previous is not None else []
        for row in rows:
            if isinstance(row, (int, np.integer)):
                if previous is None:
                    raise ValueError("a record is kept from a previous build, but there is none")
                at = prev_order[row]
                if at >= 0:
                    order.append(at)
                    continue
                row = previous.added[-1 - at]
            order.append(-1 - len(added))
            added.append(row)
        base_name, patch_name = RecordSet.files(name)
        if previous is None or len(added) > max(PATCH_MIN, PATCH_SHARE * len(rows)):
            carried = any(o >= 0 for o in order)  # some records come from the previous base
            base = msgspec.json.decode(previous.base.read_bytes(), type=list[msgspec.Raw]) if carried else []  # type: ignore[union-attr]
            every = [base[o] if o >= 0 else _raw(added[-1 - o]) for o in order]
            (path / base_name).write_bytes(msgspec.json.encode(every))
            order, added = list(range(len(every))), []
        else:
            try:
                os.link(previous.base, path / base_name)
            except OSError:  # another file system, or no hard links: a copy is as good
                shutil.copyfile(previous.base, path / base_name)
        patch = {"order": order, "records": [_raw(r) for r in added]}
        (path / patch_name).write_bytes(msgspec.json.encode(patch))


def _raw(record: bytes | msgspec.Raw) -> msgspec.Raw:
    return record if isinstance(record, msgspec.Raw) else msgspec.Raw(record)


__all__ = ["PATCH_MIN", "PATCH_SHARE", "RecordSet"]
