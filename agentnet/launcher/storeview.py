"""A read-only view of a run's hub store: the one place outside the hub that reads its tables.

The checker reads everything once, after the run (`agentnet check`); the launcher's live counts
read the totals and the new envelopes every half second beside the running hub (SQLite in WAL mode
lets a reader in while the hub writes). The same queries serve SQLite and PostgreSQL (any DB-API
connection whose tables the hub created).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple


class StoredEnvelope(NamedTuple):
    rowid: int
    channel_id: str
    seq: int
    envelope_id: str
    sender: str
    audience: list[str] | None
    type: str
    body: bytes | None


class StoredReceipt(NamedTuple):
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str
    status: str  # acked | dead
    attempts: int
    reason: str | None


class StoredCursor(NamedTuple):
    recipient: str
    channel_id: str
    ack_floor: int
    redelivered: int


class StoreView:
    """Queries over an open connection to a hub store (`StoreView.sqlite(path)` opens one read-only)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    @classmethod
    def sqlite(cls, path: Path, timeout: float = 5.0) -> StoreView:
        return cls(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout))

    def channels(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(channel_id, participants) of every channel."""
        for channel_id, participants in self.db.execute("SELECT channel_id, participants FROM channels"):
            yield channel_id, tuple(json.loads(participants))

    def participants(self, channel_id: str) -> tuple[str, ...]:
        found = self.db.execute("SELECT participants FROM channels WHERE channel_id=?", (channel_id,)).fetchone()
        return tuple(json.loads(found[0])) if found else ()

    def envelopes(self, *, after_rowid: int | None = None, bodies: bool = True) -> Iterator[StoredEnvelope]:
        """Every envelope (in rowid order from `after_rowid` on, when given; without bodies if not wanted)."""
        body = "body" if bodies else "NULL"
        query = f"SELECT rowid, channel_id, seq, envelope_id, sender, audience, type, {body} FROM envelopes"
        rows = (
            self.db.execute(query + " WHERE rowid > ? ORDER BY rowid", (after_rowid,))
            if after_rowid is not None
            else self.db.execute(query.replace("rowid, ", "0, ", 1))  # PostgreSQL has no rowid
        )
        for rowid, channel_id, seq, envelope_id, sender, audience, typ, data in rows:
            audience_list = json.loads(audience) if audience is not None else None
            yield StoredEnvelope(rowid, channel_id, seq, envelope_id, sender, audience_list, typ, data)

    def receipts(self) -> Iterator[StoredReceipt]:
        query = "SELECT recipient, channel_id, seq, envelope_id, status, attempts, reason FROM receipts"
        for row in self.db.execute(query):
            yield StoredReceipt(*row)

    def cursors(self) -> Iterator[StoredCursor]:
        for row in self.db.execute("SELECT recipient, channel_id, ack_floor, redelivered FROM cursors"):
            yield StoredCursor(*row)

    def totals(self) -> tuple[int, int, int, int]:
        """(envelopes, acked receipts, dead-letter receipts, redeliveries)."""
        receipts = Counter(dict(self.db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()))
        posted = self.db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
        redelivered = self.db.execute("SELECT COALESCE(SUM(redelivered), 0) FROM cursors").fetchone()[0]
        return posted, receipts["acked"], receipts["dead"], redelivered

    def expected_pg(self) -> int:
        """Envelope x recipient pairs, counted by PostgreSQL itself (its JSON functions)."""
        return self.db.execute(
            "SELECT COALESCE(SUM(CASE WHEN e.audience IS NOT NULL THEN json_array_length(e.audience::json)"
            " ELSE json_array_length(c.participants::json)"
            " - CASE WHEN c.participants::jsonb ? e.sender THEN 1 ELSE 0 END END), 0)"
            " FROM envelopes e JOIN channels c ON c.channel_id = e.channel_id"
        ).fetchone()[0]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
