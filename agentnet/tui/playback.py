"""Playback of a recording, without Textual: a position in the recording and the model at it.

Stepping forward applies the next items; stepping back rebuilds a fresh model from the start of the
recording up to the new position. That is simple and obviously correct (the model at position N is
always "the first N items applied to an empty model"); rebuilding is fast (the model applies
~100k items/s) and :meth:`seek` coalesces many key presses into one rebuild.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable

from agentnet.protocol.ids import parse_time
from agentnet.run.recording import RecordingReader
from agentnet.tui.format import format_t
from agentnet.tui.model import DashboardModel

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


class PlaybackController:
    def __init__(self, reader: RecordingReader, model_factory: Callable[[], DashboardModel] = DashboardModel) -> None:
        self.reader = reader
        self._factory = model_factory
        self._ats: list[float] | None = None
        # the scenario's t = 0 as the live dashboard learnt it (the launcher's t0 caption): known from
        # the start here, so every pane shows the same t for an event as it did live
        self.t0_at = _t0_of(reader)
        self.model = self._new_model()
        self.position = 0  # items applied
        self.playing = False
        self.speed = 1.0
        self.rebuilds = 0
        self._play_t = 0.0

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.reader)

    @property
    def current_t(self) -> float:
        """Recording time of the last applied item (0 before the first)."""
        return self.reader[self.position - 1].t if self.position else 0.0

    def _new_model(self) -> DashboardModel:
        model = self._factory()
        model.t0 = self.t0_at
        return model

    @property
    def current_at(self) -> float | None:
        """Event time of the latest item applied (None before any)."""
        return self.model.clock or None

    @property
    def end_at(self) -> float | None:
        """Event time of the recording's last item that has one."""
        ats = self.item_ats()
        return ats[-1] if ats and ats[-1] > float("-inf") else None

    def item_ats(self) -> list[float]:
        """Event time of each item (an item without one takes its predecessor's), never decreasing."""
        if self._ats is None:
            ats: list[float] = []
            last = float("-inf")
            for item in self.reader:
                at = parse_time(item.data.get("at")) if isinstance(item.data, dict) else None
                if at is not None and at > last:
                    last = at
                ats.append(last)
            self._ats = ats
        return self._ats

    def seek_scenario_t(self, t: float) -> None:
        """To just after the last item at or before scenario time ``t`` (the clock the panes show)."""
        ats = self.item_ats()
        origin = self.t0_at if self.t0_at is not None else next((at for at in ats if at > float("-inf")), None)
        if origin is None:
            self.seek_time(t)
            return
        self.seek(bisect.bisect_right(ats, origin + t))

    def seek(self, position: int) -> None:
        target = self.reader.seek_index(position)
        if target < self.position:
            self.model = self._new_model()
            self.position = 0
            self.rebuilds += 1
        items = self.reader.items
        apply = self.model.apply
        for index in range(self.position, target):
            apply(items[index].item)
        self.position = target
        self._play_t = self.current_t

    def step(self, count: int = 1) -> None:
        self.seek(self.position + count)

    def seek_time(self, t: float) -> None:
        self.seek(self.reader.seek_time(t))

    def seek_seq(self, seq: int, channel_id: str | None = None) -> bool:
        position = self.reader.seek_seq(seq, channel_id)
        if position is None and channel_id is not None:
            position = self.reader.seek_seq(seq)
        if position is None:
            return False
        self.seek(position)
        return True

    def jump(self, query: str, channel_id: str | None = None) -> str:
        """Jump by a typed query: ``42`` (a seq, in the selected channel if any), ``#120`` (an item
        index), ``t+12.5s``, ``12.5s`` or ``+12.5`` (scenario t, as the panes show it), ``10:00:03`` /
        ``10:00:03.250`` (a UTC time of day of the recorded events). Returns what was done, for the
        status line."""
        query = query.strip()
        if not query:
            return "nothing to jump to"
        if query.startswith("#") and query[1:].isdigit():
            self.seek(int(query[1:]))
            return f"item {self.position}"
        match = re.fullmatch(r"t?([+-]?\d+(?:\.\d+)?)s|t?([+-]\d+(?:\.\d+)?)|t(\d+(?:\.\d+)?)", query)
        if match:
            seconds = float(next(group for group in match.groups() if group is not None))
            self.seek_scenario_t(seconds)
            return format_t(seconds)
        if re.fullmatch(r"\d{1,2}:\d{2}:\d{2}(?:\.\d+)?", query):
            return self._jump_clock(query)
        if query.isdigit():
            if self.seek_seq(int(query), channel_id):
                return f"seq {query}"
            raise ValueError(f"no envelope with seq {query} in this recording")
        raise ValueError(f"cannot read {query!r}: use 42 (seq), #120 (item), t+12.5s or 10:00:03")

    def _jump_clock(self, clock: str) -> str:
        for item in self.reader:
            at = parse_time(item.data.get("at"))
            if at is None:
                continue
            stamp = parse_time(f"{_date_of(item.data['at'])}T{clock}+00:00")
            if stamp is not None and at >= stamp:
                self.seek(item.index + 1)
                return f"time {clock}"
        raise ValueError(f"nothing recorded at or after {clock}")

    def toggle(self) -> bool:
        if self.at_end and not self.playing:
            self.seek(0)
        self.playing = not self.playing
        self._play_t = self.current_t
        return self.playing

    def faster(self) -> float:
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[min(index + 1, len(SPEEDS) - 1)]
        return self.speed

    def slower(self) -> float:
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[max(index - 1, 0)]
        return self.speed

    def advance(self, elapsed: float) -> bool:
        """While playing, move recording time on by ``elapsed`` times speed; True if items were applied."""
        if not self.playing:
            return False
        self._play_t += elapsed * self.speed
        target = self.reader.seek_time(self._play_t)
        applied = target > self.position
        if applied:
            keep = self._play_t
            self.seek(target)
            self._play_t = keep
        if self.at_end:
            self.playing = False
        return applied


def _date_of(stamp: str) -> str:
    return stamp.split("T", 1)[0] if isinstance(stamp, str) and "T" in stamp else "1970-01-01"


def _t0_of(reader: RecordingReader) -> float | None:
    """Event time of the recording's t = 0 caption (the launcher's "ready; t = 0"), if it has one."""
    for item in reader:
        if item.kind == "caption" and isinstance(item.data, dict) and item.data.get("t0"):
            return parse_time(item.data.get("at"))
    return None
