"""Id minting and the contract's timestamp format."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_counter = 0


def new_id(prefix: str) -> str:
    """A unique, roughly time-ordered id: prefix, 12 hex digits of ms time, 8 random hex digits.

    Time first so ids sort by creation in logs and SQLite indexes; the random part keeps ids
    unique across processes and hub restarts without coordination.
    """
    global _counter
    _counter = (_counter + 1) & 0xFFFF
    return f"{prefix}-{int(time.time() * 1000):012x}{_counter:04x}{os.urandom(4).hex()}"


def utc_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a Z suffix, e.g. 2026-11-20T10:00:00.123Z."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
