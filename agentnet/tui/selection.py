"""Filtered, incrementally maintained views over the model's ring buffers (the WAL filter, and the
selection the panes index into)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .entities import EnvelopeRow


class WalFilter:
    """``from:alice type:text to:bob some words`` — every part optional, all must match."""

    __slots__ = ("recipient", "sender", "text", "type")

    PREFIXES = {"from": "sender", "sender": "sender", "type": "type", "to": "recipient"}

    def __init__(
        self, text: str = "", sender: str | None = None, type: str | None = None, recipient: str | None = None
    ) -> None:
        self.text = text.lower()
        self.sender = sender
        self.type = type
        self.recipient = recipient

    @classmethod
    def parse(cls, query: str) -> WalFilter:
        words: list[str] = []
        fields: dict[str, str] = {}
        for token in query.split():
            prefix, sep, value = token.partition(":")
            if sep and value and prefix.lower() in cls.PREFIXES:
                fields[cls.PREFIXES[prefix.lower()]] = value
            else:
                words.append(token)
        return cls(" ".join(words), **fields)

    @property
    def empty(self) -> bool:
        return not (self.text or self.sender or self.type or self.recipient)

    def describe(self) -> str:
        parts = []
        if self.sender:
            parts.append(f"from:{self.sender}")
        if self.type:
            parts.append(f"type:{self.type}")
        if self.recipient:
            parts.append(f"to:{self.recipient}")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def key(self) -> tuple[str, str | None, str | None, str | None]:
        return (self.text, self.sender, self.type, self.recipient)

    def __call__(self, row: EnvelopeRow) -> bool:
        if self.sender and row.sender != self.sender:
            return False
        if self.type and row.type != self.type:
            return False
        if self.recipient and self.recipient not in row.marks:
            return False
        if self.text:
            haystack = f"{row.text} {row.sender} {row.type} {row.audience_label}".lower()
            if self.text not in haystack:
                return False
        return True


class Selection:
    """An incrementally maintained, filtered, indexable view over one of the model's ring buffers.

    ``sync()`` scans only what was appended since the last call and drops what the ring evicted, so
    keeping a filtered WAL view current costs O(new items), not O(buffer).
    """

    def __init__(self, ring: deque[Any], predicate: Callable[[Any], bool] | None) -> None:
        self._ring = ring
        self._predicate = predicate
        self._rows: list[Any] = []
        self._start = 0
        self._scanned = 0  # highest serial examined
        self.dropped = 0  # rows evicted from the front by the last sync

    def sync(self) -> int:
        """Bring the view up to date; returns how many rows were added."""
        ring = self._ring
        self.dropped = 0
        if ring:
            oldest = ring[0].serial
            rows = self._rows
            start = self._start
            while start < len(rows) and rows[start].serial < oldest:
                start += 1
            self.dropped = start - self._start
            if start > 1024 and start * 2 > len(rows):
                del rows[:start]
                start = 0
            self._start = start
        else:
            self.dropped = len(self)
            self._rows.clear()
            self._start = 0
            return 0
        newest = ring[-1].serial
        if newest <= self._scanned:
            return 0
        fresh: list[Any] = []
        for item in reversed(ring):
            if item.serial <= self._scanned:
                break
            fresh.append(item)
        fresh.reverse()
        self._scanned = newest
        if self._predicate is not None:
            fresh = [item for item in fresh if self._predicate(item)]
        self._rows.extend(fresh)
        return len(fresh)

    def __len__(self) -> int:
        return len(self._rows) - self._start

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._rows[self._start + index]

    def __iter__(self) -> Iterator[Any]:
        for index in range(self._start, len(self._rows)):
            yield self._rows[index]

    def index_of_serial(self, serial: int) -> int | None:
        """Position of the row with this serial (binary search: serials increase)."""
        lo, hi = self._start, len(self._rows)
        while lo < hi:
            mid = (lo + hi) // 2
            value = self._rows[mid].serial
            if value < serial:
                lo = mid + 1
            elif value > serial:
                hi = mid
            else:
                return mid - self._start
        return None
