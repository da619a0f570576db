"""Id minting and the contract's timestamp format."""

from __future__ import annotations

import math
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

_counter = 0
_random = random.Random(os.urandom(16))  # seeded once per process; a syscall per id cost ~2 µs
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def new_id(prefix: str) -> str:
    """A unique, roughly time-ordered id: prefix, 12 hex digits of ms time, 8 random hex digits.

    Time first so ids sort by creation in logs and SQLite indexes; the random part keeps ids
    unique across processes and hub restarts without coordination.
    """
    global _counter
    _counter = (_counter + 1) & 0xFFFF
    return f"{prefix}-{int(time.time() * 1000):012x}{_counter:04x}{_random.getrandbits(32):08x}"


_second: int | None = None
_second_text = ""


def utc_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a Z suffix, e.g. 2026-11-20T10:00:00.123Z.

    The date and time up to the second are formatted once per second (this runs twice per envelope).
    """
    global _second, _second_text
    t = time.time() if ts is None else ts
    second = math.floor(t)
    micros = round((t - second) * 1_000_000)  # rounded like datetime.fromtimestamp
    if micros >= 1_000_000:
        second, micros = second + 1, 0
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _second = second
    return f"{_second_text}{micros // 1000:03d}Z"


def parse_time(value: Any) -> float | None:
    """A contract timestamp (``2026-11-20T10:00:00.123Z``) or epoch seconds as epoch seconds; None if
    absent or unreadable (a naive time is taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
