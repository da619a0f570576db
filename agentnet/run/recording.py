"""Recordings: every feed item the dashboard (or the launcher) saw, as JSON lines.

Format, version 1::

    {"kind": "recording", "version": 1, "created_at": "2026-11-20T10:00:00.000Z", ...meta}
    {"t": 0.0, "kind": "snapshot", "data": {...}}
    {"t": 0.012, "kind": "event", "data": {"kind": "event", "event_seq": 1, ...}}
    {"t": 0.020, "kind": "process", "data": {"kind": "process", "name": "bob", ...}}

``t`` is seconds since the recording started (monotonic clock); ``kind``/``data`` is the feed item
(see :data:`agentnet.run.items.FEED_KINDS`). A truncated last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from agentnet.protocol.events import EnvelopeView, EventError, WalAppend, decode_event
from agentnet.run.items import FeedItem

RECORDING_VERSION = 1


class RecordingError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class RecordedItem:
    index: int
    t: float
    kind: str
    data: dict[str, Any]

    @property
    def item(self) -> FeedItem:
        return (self.kind, self.data)


class RecordingWriter:
    """Append feed items to a recording. Thread-unsafe; call from one task.

    Lines are buffered and flushed at most every ``flush_interval`` seconds (and on close), so
    recording thousands of events per second costs little.
    """

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None, *, flush_interval: float = 0.5):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = self.path.open("wb")
        self._start = time.monotonic()
        self._flush_interval = flush_interval
        self._last_flush = self._start
        self.count = 0
        header = {
            "kind": "recording",
            "version": RECORDING_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **(meta or {}),
        }
        self._file.write(orjson.dumps(header) + b"\n")

    def write(self, kind: str, data: dict[str, Any], t: float | None = None) -> None:
        """Record one item; ``t`` defaults to the time since the writer was created."""
        if self._file is None:
            raise RecordingError(f"recording {self.path} is closed")
        now = time.monotonic()
        if t is None:
            t = now - self._start
        line = orjson.dumps({"t": round(t, 6), "kind": kind, "data": data}, option=orjson.OPT_NON_STR_KEYS)
        self._file.write(line + b"\n")
        self.count += 1
        if now - self._last_flush >= self._flush_interval:
            self._file.flush()
            self._last_flush = now

    def write_item(self, item: FeedItem, t: float | None = None) -> None:
        self.write(item[0], item[1], t)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Header(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["recording"]
    version: Any = None


class _Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    t: float = 0.0
    kind: str
    data: Any


class RecordingReader:
    """A recording loaded in memory, with seeks by index, time and channel seq."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header: dict[str, Any] = {}
        self.items: list[RecordedItem] = []
        self.truncated = False
        with self.path.open("rb") as handle:
            first = handle.readline()
            try:
                header = orjson.loads(first)
            except orjson.JSONDecodeError as exc:
                raise RecordingError(f"{self.path}: not a recording (bad header)") from exc
            try:
                head = _Header.model_validate(header)
            except ValidationError:
                raise RecordingError(f"{self.path}: not a recording (no header line)") from None
            if head.version != RECORDING_VERSION:
                raise RecordingError(f"{self.path}: unsupported recording version {head.version}")
            self.header = header
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    line = _Line.model_validate_json(raw)
                except ValidationError as exc:
                    if exc.errors()[0]["type"] != "json_invalid":
                        raise RecordingError(
                            f"{self.path}: line {len(self.items) + 2} is not a recorded item"
                        ) from None
                    self.truncated = True  # only the last line can be cut short; stop there
                    break
                self.items.append(RecordedItem(len(self.items), line.t, line.kind, line.data))
        self._times = [item.t for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[RecordedItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> RecordedItem:
        return self.items[index]

    @property
    def duration(self) -> float:
        return self._times[-1] if self._times else 0.0

    def seek_index(self, index: int) -> int:
        """Clamp an item index to the recording (``len`` = after the last item)."""
        return max(0, min(index, len(self.items)))

    def seek_time(self, t: float) -> int:
        """The number of items with ``item.t <= t`` (i.e. the position just after time ``t``)."""
        return bisect.bisect_right(self._times, t)

    def seek_seq(self, seq: int, channel_id: str | None = None) -> int | None:
        """The position just after the ``wal.append`` of ``seq`` (in ``channel_id`` if given)."""
        for item in self.items:
            if item.kind != "event":
                continue
            with contextlib.suppress(EventError):
                match decode_event(item.data):
                    case WalAppend(envelope=EnvelopeView(seq=found, channel_id=channel)) if found == seq:
                        if channel_id is None or channel == channel_id:
                            return item.index + 1
        return None
