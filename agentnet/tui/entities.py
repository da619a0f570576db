"""What the dashboard knows about each thing it shows: processes, agents, channels, cursors, WAL
entries with their per-recipient delivery marks, log lines and diagram arrows. Plain dataclasses,
updated by the model (`agentnet.tui.model`), read by the panes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from agentnet.protocol.events import ChannelView, EnvelopeView
from agentnet.protocol.ids import parse_time
from agentnet.protocol.vocab import RUNNING_STATES, CloseCode

from .series import RateCounter, SeriesSampler

CONNECTED = "connected"
DISCONNECTED = "disconnected"
SUPERSEDED = "superseded"
HISTORY_CAP = 24  # entries of one mark's history (the first is always kept)


@dataclass(slots=True, eq=False)
class ProcessInfo:
    """One supervised process (hub or agent), as the launcher reports it."""

    name: str
    role: str = "agent"
    pid: int | None = None
    state: str = "pending"
    reason: str = ""
    restarts: int = 0  # automatic (the policy's count)
    operator_restarts: int = 0  # asked for by the operator
    fault_restarts: int = 0  # made by a scenario's fault
    started_at: float | None = None
    last_restart_at: float | None = None
    exit_code: int | None = None
    state_since: float | None = None
    down_since: float | None = None  # when it last went from running to down
    cpu: float | None = None
    rss: float | None = None

    def uptime(self, now: float) -> float | None:
        if self.state not in RUNNING_STATES or self.started_at is None:
            return None
        return max(0.0, now - self.started_at)


class _PassportMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    via: StrictStr | None = None


class _PassportVia(BaseModel):
    """The part of a passport the dashboard reads: `meta.via`, the adapter an agent came through."""

    model_config = ConfigDict(extra="ignore")
    meta: _PassportMeta = _PassportMeta()


@dataclass(slots=True, eq=False)
class AgentInfo:
    """One agent identity on the hub and its current connection."""

    name: str
    agent_id: str | None = None
    role: str = "agent"
    connected: bool = False
    session_id: str | None = None
    passport: dict[str, Any] | None = None
    latency_ms: float | None = None
    connected_at: float | None = None
    disconnected_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    replaying: int | None = None
    seen_connected: bool = False  # this dashboard saw it connect (a later connect is a reconnect)
    registered_in: str | None = None  # the session in which it last registered (again: a passport update)

    @property
    def via(self) -> str | None:
        """The protocol adapter it came through (`passport.meta["via"]`: "ag2", "autogen"), None if native."""
        try:
            via = _PassportVia.model_validate(self.passport).meta.via
        except ValidationError:  # no passport, or one whose meta is not a mapping
            return None
        return via or None

    @property
    def connection(self) -> str:
        if self.connected:
            return CONNECTED
        if self.close_code == CloseCode.SUPERSEDED:
            return SUPERSEDED
        return DISCONNECTED


@dataclass(slots=True, eq=False)
class ChannelInfo:
    channel_id: str
    type: str = "?"
    topic: str | None = None
    creator: str | None = None
    participants: list[str] = field(default_factory=list)
    state: str = "open"
    head_seq: int = 0
    created_at: float | None = None
    closed_at: float | None = None
    close_reason: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)
    rate: RateCounter = field(default_factory=RateCounter)

    def update(self, channel: ChannelView) -> None:
        self.type = channel.type
        self.topic = channel.topic
        self.creator = channel.creator
        self.participants = list(channel.participants or self.participants)
        self.state = channel.state
        self.head_seq = max(self.head_seq, channel.head_seq)
        self.created_at = parse_time(channel.created_at) or self.created_at
        self.closed_at = parse_time(channel.closed_at) or self.closed_at
        self.close_reason = channel.close_reason
        self.knobs = dict(channel.knobs or self.knobs)


@dataclass(slots=True, eq=False)
class CursorInfo:
    """Per (recipient, channel): the hub's numbers plus what the feed lets us derive."""

    recipient: str
    channel_id: str
    ack_floor: int = 0
    delivered_seq: int = 0
    inflight: int = 0
    lag: int = 0
    redelivered: int = 0
    dead: int = 0
    since: dict[int, float] = field(default_factory=dict)  # seq -> first delivery time, for unacked ones
    snapshot_oldest_at: float | None = None
    last_ack_at: float | None = None
    last_nack: tuple[float, int, str] | None = None  # (at, seq, reason)
    updated_at: float | None = None
    lag_series: SeriesSampler = field(default_factory=SeriesSampler)

    @property
    def key(self) -> tuple[str, str]:
        return (self.recipient, self.channel_id)

    def oldest_inflight(self) -> tuple[int | None, float | None]:
        """(seq, first-delivery time) of the oldest unacked delivery we know of."""
        if self.since:
            seq = min(self.since)
            return seq, self.since[seq]
        if self.inflight and self.snapshot_oldest_at is not None:
            return None, self.snapshot_oldest_at
        return None, None

    def oldest_age(self, now: float) -> float | None:
        _, at = self.oldest_inflight()
        return None if at is None else max(0.0, now - at)


@dataclass(slots=True, eq=False)
class Mark:
    """The delivery state of one envelope for one recipient, with its history."""

    GLYPHS: ClassVar[dict[str, str]] = {
        "pending": "·",
        "delivered": "→",
        "acked": "✓",
        "settled": "⊘",  # acked with a reason: settled without being handled (e.g. an RPC that expired)
        "nacked": "✗",
        "dead": "†",
    }

    recipient: str
    state: str = "pending"
    attempts: int = 0
    history: list[tuple[float | None, str, str]] = field(default_factory=list)

    def note(self, at: float | None, what: str, detail: str = "") -> None:
        if len(self.history) >= HISTORY_CAP:
            del self.history[1]  # keep the first entry, drop the oldest after it
        self.history.append((at, what, detail))

    @property
    def redeliveries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def glyph(self) -> str:
        extra = f"↻{self.redeliveries}" if self.redeliveries else ""
        return self.GLYPHS.get(self.state, "?") + extra


@dataclass(slots=True, eq=False)
class EnvelopeRow:
    """One WAL entry as the dashboard keeps it (`EnvelopeRow.of` makes one from an envelope)."""

    serial: int
    envelope: EnvelopeView
    envelope_id: str
    channel_id: str
    seq: int
    sender: str
    audience: list[str] | None
    type: str
    text: str
    at: float | None
    marks: dict[str, Mark]
    version: int = 0

    @classmethod
    def of(cls, serial: int, envelope: EnvelopeView, at: float | None, recipients: list[str]) -> EnvelopeRow:
        text = envelope.text
        if text is None:
            data = envelope.data
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False) if data else ""
        audience = list(envelope.audience) if envelope.audience is not None else None
        marks = {name: Mark(name) for name in recipients}
        return cls(
            serial,
            envelope,
            envelope.envelope_id,
            envelope.channel_id,
            envelope.seq,
            envelope.sender,
            audience,
            envelope.type,
            text,
            at,
            marks,
        )

    def mark(self, recipient: str) -> Mark:
        mark = self.marks.get(recipient)
        if mark is None:
            mark = self.marks[recipient] = Mark(recipient)
        self.version += 1
        return mark

    @property
    def audience_label(self) -> str:
        if self.audience is None:
            return "*"
        return ",".join(self.audience)


@dataclass(slots=True, eq=False)
class LogLine:
    serial: int
    at: float | None
    level: str
    text: str
    envelope_id: str | None


@dataclass(slots=True, eq=False)
class Arrow:
    """One arrow of the sequence diagram."""

    KINDS: ClassVar[tuple[str, ...]] = (
        *("post", "deliver", "redeliver", "ack", "nack", "dead"),  # an envelope's way
        *("takeover", "fault"),  # markers across every lane: a standby hub took over; a fault or control
        *("connect", "disconnect"),  # markers between an agent and the hub: its connection came or went
    )
    MARKERS: ClassVar[frozenset[str]] = frozenset({"takeover", "fault", "connect", "disconnect"})

    serial: int
    at: float | None
    kind: str
    src: str
    dst: str
    channel_id: str
    seq: int
    envelope_id: str | None
    attempt: int = 1
    detail: str = ""
