"""The launcher's live view of the hub, from its observer feed (RunModel: expect, status, summary),
and exact counts read from the hub's store beside it (StoreCounts)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentnet.protocol.events import (
    Ack,
    AgentConnected,
    AgentDisconnected,
    AnyEvent,
    ChannelClosed,
    ChannelOpened,
    ChannelView,
    CursorMoved,
    CursorView,
    DeadLetter,
    Deliver,
    EnvelopeView,
    EventError,
    ObserverLagged,
    Snapshot,
    WalAppend,
    decode_event,
    decode_snapshot,
    recipients_of,
)
from agentnet.protocol.vocab import TURN_TYPES

from .storeview import StoreView

HubItem = Snapshot | AnyEvent


class RunModel:
    """The launcher's view of the hub, from its observer feed: enough for expect, status, summary."""

    def __init__(self) -> None:
        self.channels: dict[str, ChannelView] = {}
        self.heads: defaultdict[str, int] = defaultdict(int)  # channel_id -> highest seq seen
        self.cursors: dict[tuple[str, str], CursorView | CursorMoved] = {}
        self.texts: dict[str, list[tuple[int, str, str]]] = {}  # channel_id -> [(seq, sender, text)]
        self.counts = {"posted": 0, "delivered": 0, "acked": 0, "redelivered": 0, "dead_lettered": 0}
        self.acked: set[tuple[str, str, int]] = set()
        self.addressed: defaultdict[tuple[str, str], int] = defaultdict(
            int
        )  # (recipient, channel_id) -> highest seq addressed
        self.connected: dict[str, bool] = {}
        self.snapshots = 0
        self.lost_events = 0
        self.bad_events = 0
        self.last_event_seq: int | None = None

    def apply(self, kind: str, data: dict[str, Any], decoded: HubItem | None = None) -> HubItem | None:
        """Apply a feed item; returns the snapshot or event it decoded (None for launcher items)."""
        if decoded is None:
            decoded = self.decode(kind, data)
        if isinstance(decoded, Snapshot):
            self.apply_snapshot(decoded)
        elif decoded is not None:
            self.apply_event(decoded)
        return decoded

    def decode(self, kind: str, data: dict[str, Any]) -> HubItem | None:
        try:
            if kind == "snapshot":
                return decode_snapshot(data)
            if kind == "event":
                return decode_event(data)
        except EventError:
            self.bad_events += 1
        return None

    def apply_snapshot(self, snap: Snapshot) -> None:
        self.snapshots += 1
        self.last_event_seq = snap.hub.event_seq
        for ch in snap.channels:
            self.channel(ch)
        for agent in snap.agents:
            self.connected[agent.name] = agent.connected
        for cur in snap.cursors:
            self.cursors[(cur.recipient, cur.channel_id)] = cur

    def apply_event(self, ev: AnyEvent) -> None:
        seq = ev.event_seq
        if seq is not None and self.last_event_seq is not None and seq > self.last_event_seq + 1:
            self.lost_events += seq - self.last_event_seq - 1
        if seq is not None:
            self.last_event_seq = seq
        c = self.counts
        match ev:
            case WalAppend(envelope=EnvelopeView() as env):
                ch = env.channel_id
                c["posted"] += 1
                self.heads[ch] = max(self.heads[ch], env.seq)
                known = self.channels.get(ch)
                for recipient in recipients_of(env, known.participants if known else ()):
                    self.addressed[(recipient, ch)] = max(self.addressed[(recipient, ch)], env.seq)
                text = env.text
                if env.type in TURN_TYPES and text is not None:
                    self.texts.setdefault(ch, []).append((env.seq, env.sender, text))
            case Deliver(attempt=attempt):
                c["delivered"] += 1
                if attempt > 1:
                    c["redelivered"] += 1
            case Ack(recipient=recipient, channel_id=channel_id, seq=seq):
                c["acked"] += 1
                self.acked.add((recipient, channel_id, seq))
            case DeadLetter():
                c["dead_lettered"] += 1
            case ChannelOpened(channel=channel) | ChannelClosed(channel=channel):
                self.channel(channel)
            case CursorMoved(recipient=recipient, channel_id=channel_id):
                self.cursors[(recipient, channel_id)] = ev
            case AgentConnected(name=name):
                self.connected[name] = True
            case AgentDisconnected(name=name):
                self.connected[name] = False
            case ObserverLagged(dropped=dropped):
                self.lost_events += dropped

    def channel(self, info: ChannelView) -> None:
        if info.channel_id:
            self.channels[info.channel_id] = info
            self.heads[info.channel_id] = max(self.heads[info.channel_id], info.head_seq)

    def channel_state(self, channel_id: str | None) -> str | None:
        info = self.channels.get(channel_id or "")
        return info.state if info is not None else None

    def settled(self) -> bool:
        """Every recipient has acked (or dead-lettered) everything addressed to it, nothing in flight."""
        if not self.addressed:
            return False
        for key, last in self.addressed.items():
            cur = self.cursors.get(key)
            if cur is None or cur.ack_floor < last or cur.inflight:
                return False
        return True

    def lagging(self) -> list[str]:
        out = []
        for (recipient, ch), last in self.addressed.items():
            cur = self.cursors.get((recipient, ch))
            floor = cur.ack_floor if cur is not None else 0
            if floor < last or (cur is not None and cur.inflight):
                out.append(f"{recipient} at {floor}/{last}")
        return out


class StoreCounts:
    """Exact counts from the hub's SQLite store, read-only beside the running hub (`StoreView`).

    `expected` (envelope x recipient pairs) is kept up to date incrementally, by rowid."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._view: StoreView | None = None
        self._rowid = 0
        self._participants: dict[str, tuple[str, ...]] = {}
        self.expected = 0

    url: str | None = None  # a PostgreSQL store instead of the sqlite file (read with `_read_pg`)

    def _read_pg(self) -> dict[str, int] | None:
        import psycopg

        assert self.url is not None
        try:
            with psycopg.connect(self.url, connect_timeout=1, autocommit=True) as db:
                view = StoreView(db)
                posted, acked, dead, redelivered = view.totals()
                expected = view.expected_pg()
        except psycopg.Error:
            return None
        counts = {"posted": posted, "acked": acked, "dead_lettered": dead, "redelivered": int(redelivered)}
        return {**counts, "expected": int(expected)}

    def read(self) -> dict[str, int] | None:
        if self.url is not None:
            return self._read_pg()
        if self.path is None or not self.path.exists():
            return None
        try:
            if self._view is None:
                self._view = StoreView.sqlite(self.path, timeout=1)
            view = self._view
            posted, acked, dead, redelivered = view.totals()
            for env in view.envelopes(after_rowid=self._rowid, bodies=False):
                if env.channel_id not in self._participants and env.audience is None:
                    self._participants[env.channel_id] = view.participants(env.channel_id)
                self.expected += len(recipients_of(env, self._participants.get(env.channel_id, ())))
                self._rowid = env.rowid
        except (sqlite3.Error, ValueError):
            self.close()
            return None
        return {
            "posted": posted,
            "acked": acked,
            "dead_lettered": dead,
            "redelivered": redelivered,
            "expected": self.expected,
        }

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
