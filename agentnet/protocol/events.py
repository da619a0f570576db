"""Observer events: one frozen dataclass per event type the hub emits, how they are encoded, and
how a reader turns a received frame back into one.

The hub's core builds these (`agentnet.hub.core`), the shell's observer feed stamps each with
`event_seq` and `at` and encodes it (`encode`), and every reader (the launcher's live counts, its
headless view, the checker, the dashboard model) decodes frames with `decode_event` and matches on
the classes. Field names are the wire names (docs/protocol.md, "Observers"); this module is the only
place that reads an event's fields by string key.

`decode_event` never raises for a type it does not know: that is an `UnknownEvent` (a newer hub may
emit more). A known type with a missing or mistyped field raises `EventError`.

Also here, because every reader needs it: who an envelope is addressed to (`addressed_to`,
`recipients_of`), the one statement of that rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError

_CONFIG = ConfigDict(arbitrary_types_allowed=True)


class EventError(ValueError):
    """A frame of a known event type that lacks a field or has one of the wrong type."""


# --------------------------------------------------------------------------- addressing


class Addressed(Protocol):
    @property
    def sender(self) -> str: ...

    @property
    def audience(self) -> Iterable[str] | None: ...


def addressed_to(name: str, sender: str, audience: Iterable[str] | None, participants: Iterable[str]) -> bool:
    """The rule: an envelope goes to its audience, or else to every participant but its sender."""
    if audience is not None:
        return name in audience
    return name != sender and name in participants


def recipients_of(envelope: Addressed, participants: Iterable[str]) -> tuple[str, ...]:
    """Everyone `envelope` is addressed to (in audience or participant order)."""
    audience = envelope.audience
    if audience is not None:
        return tuple(audience)
    sender = envelope.sender
    return tuple(p for p in participants if p != sender)


# --------------------------------------------------------------------------- what events carry


@dataclass(frozen=True, slots=True)
class ChannelView:
    """The channel object of the contract (`channel.opened`/`channel.closed`, snapshots, responses).
    Field order is the wire order."""

    __pydantic_config__ = _CONFIG

    channel_id: str
    type: str = "?"
    topic: str | None = None
    creator: str | None = None
    participants: tuple[str, ...] = ()
    state: str = "open"
    head_seq: int = 0
    created_at: str | None = None
    closed_at: str | None = None
    close_reason: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnvelopeView:
    """One WAL entry as an observer receives it in `wal.append`."""

    __pydantic_config__ = _CONFIG

    envelope_id: str
    channel_id: str
    seq: int
    sender: str = "?"
    audience: tuple[str, ...] | None = None
    type: str = "?"
    data: dict[str, Any] = field(default_factory=dict)
    causation_id: str | None = None
    idempotency_key: str | None = None
    created_at: str | None = None
    turn: dict[str, Any] | None = None  # stamped by the channel's rules on turn-bearing envelopes

    @property
    def text(self) -> str | None:
        value = self.data.get("text")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        """The envelope object as on the wire (no `turn` key when it has none)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["audience"] = list(self.audience) if self.audience is not None else None
        if self.turn is None:
            del out["turn"]
        return out


@dataclass(frozen=True, slots=True)
class HubView:
    __pydantic_config__ = _CONFIG

    hub_id: str = ""
    started_at: str | None = None
    store: str | None = None
    event_seq: int | None = None


@dataclass(frozen=True, slots=True)
class AgentView:
    __pydantic_config__ = _CONFIG

    name: str
    agent_id: str | None = None
    role: str = "agent"
    connected: bool = False
    session_id: str | None = None
    passport: dict[str, Any] | None = None
    latency_ms: float | None = None
    replayed: int | None = None  # (ext) envelopes the current session's hello replayed (None: offline)
    replaying: bool = False  # (ext) that replay is still running (its replay.end is to come)

    @property
    def pid(self) -> int | None:
        """The pid the agent's process put in its passport (`meta.pid`), if any."""
        meta = (self.passport or {}).get("meta")
        pid = meta.get("pid") if isinstance(meta, dict) else None
        return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


@dataclass(frozen=True, slots=True)
class CursorView:
    """A cursor as a snapshot reports it."""

    __pydantic_config__ = _CONFIG

    recipient: str
    channel_id: str
    ack_floor: int = 0
    delivered_seq: int | None = None
    inflight: int = 0
    oldest_inflight_age: float | None = None
    redelivered: int = 0
    dead: int = 0
    lag: int | None = None


@dataclass(frozen=True, slots=True)
class SnapshotTotal:
    """A snapshot's `total`: how many agents and channels the hub has, in memory or not."""

    __pydantic_config__ = _CONFIG

    agents: int = 0
    channels: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What `observe` answers: the hub's state, after which events follow from `hub.event_seq`."""

    __pydantic_config__ = _CONFIG

    hub: HubView = field(default_factory=HubView)
    agents: tuple[AgentView, ...] = ()
    channels: tuple[ChannelView, ...] = ()
    cursors: tuple[CursorView, ...] = ()
    at: str | None = None
    total: SnapshotTotal | None = None  # the hub's counts, paged-out channels included (absent: older hubs)


# --------------------------------------------------------------------------- the events


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event. `event_seq` and `at` are stamped by the hub's feed, not by the core."""

    __pydantic_config__ = _CONFIG
    TYPE: ClassVar[str] = ""
    NOTE: ClassVar[str] = ""  # for the table in docs/protocol.md

    event_seq: int | None = field(default=None, kw_only=True)
    at: str | None = field(default=None, kw_only=True)

    @property
    def type(self) -> str:
        return self.TYPE


@dataclass(frozen=True, slots=True)
class AgentConnected(Event):
    TYPE: ClassVar[str] = "agent.connected"
    name: str
    agent_id: str | None = None
    session_id: str | None = None
    role: str = "agent"


@dataclass(frozen=True, slots=True)
class AgentDisconnected(Event):
    TYPE: ClassVar[str] = "agent.disconnected"
    name: str
    session_id: str | None = None
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentRegistered(Event):
    TYPE: ClassVar[str] = "agent.registered"
    NOTE: ClassVar[str] = "(ext) the passport's `meta.pid` tells the launcher the agent's process is ready"
    name: str
    agent_id: str | None = None
    passport: dict[str, Any] | None = None

    @property
    def pid(self) -> int | None:
        return AgentView(self.name, passport=self.passport).pid


@dataclass(frozen=True, slots=True)
class ChannelOpened(Event):
    TYPE: ClassVar[str] = "channel.opened"
    channel: ChannelView


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    TYPE: ClassVar[str] = "channel.closed"
    channel: ChannelView


@dataclass(frozen=True, slots=True)
class WalAppend(Event):
    """An envelope became durable. The hub passes the envelope's JSON as it stored it (a Fragment);
    a reader gets an `EnvelopeView`."""

    TYPE: ClassVar[str] = "wal.append"
    envelope: EnvelopeView | orjson.Fragment


@dataclass(frozen=True, slots=True)
class Deliver(Event):
    TYPE: ClassVar[str] = "deliver"
    NOTE: ClassVar[str] = "(ext) reason: first \\| replay \\| nack \\| ack_wait"
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str | None = None
    attempt: int = 1
    reason: str = ""  # first | replay | nack | ack_wait


@dataclass(frozen=True, slots=True)
class Ack(Event):
    TYPE: ClassVar[str] = "ack"
    NOTE: ClassVar[str] = "(ext) reason: what the recipient said with its ack, if anything (why it left it unhandled)"
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Nack(Event):
    TYPE: ClassVar[str] = "nack"
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str | None = None
    attempt: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CursorMoved(Event):
    TYPE: ClassVar[str] = "cursor"
    recipient: str
    channel_id: str
    ack_floor: int = 0
    delivered_seq: int | None = None
    inflight: int | None = None
    lag: int | None = None


@dataclass(frozen=True, slots=True)
class ReplayStart(Event):
    TYPE: ClassVar[str] = "replay.start"
    recipient: str
    count: int = 0


@dataclass(frozen=True, slots=True)
class ReplayEnd(Event):
    TYPE: ClassVar[str] = "replay.end"
    recipient: str
    count: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter(Event):
    TYPE: ClassVar[str] = "dead_letter"
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str | None = None
    attempts: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptIgnored(Event):
    TYPE: ClassVar[str] = "receipt.ignored"
    name: str = "?"
    channel_id: str = ""
    seq: int = 0
    envelope_id: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ObserverLagged(Event):
    """Emitted by the feed itself (not the core): this observer's queue overflowed."""

    TYPE: ClassVar[str] = "observer.lagged"
    NOTE: ClassVar[str] = "then `observe` again for a fresh snapshot"
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class AgentLatency(Event):
    """Emitted by the shell every 2 s while observed: keepalive round trips per connected agent."""

    TYPE: ClassVar[str] = "agent.latency"
    NOTE: ClassVar[str] = "(ext) latency_ms: {name: ms}, every 2 s"
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelsDropped(Event):
    """Emitted by the shell: the retention setting deleted closed channels from the store."""

    TYPE: ClassVar[str] = "channels.dropped"
    NOTE: ClassVar[str] = "(ext) closed before `before` (`--retain-closed`); `channel_ids`: the first 100"
    count: int = 0
    before: str = ""
    channel_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """A type this version does not know; kept whole so it can be recorded and shown."""

    name: str = "?"  # the frame's type
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.name


EVENT_CLASSES: tuple[type[Event], ...] = (
    AgentConnected,
    AgentDisconnected,
    AgentRegistered,
    ChannelOpened,
    ChannelClosed,
    WalAppend,
    Deliver,
    Ack,
    Nack,
    CursorMoved,
    ReplayStart,
    ReplayEnd,
    DeadLetter,
    ReceiptIgnored,
    ObserverLagged,
    AgentLatency,
    ChannelsDropped,
)
EVENT_TYPES: tuple[str, ...] = tuple(cls.TYPE for cls in EVENT_CLASSES)
BY_TYPE: dict[str, type[Event]] = {cls.TYPE: cls for cls in EVENT_CLASSES}

AnyEvent = (
    AgentConnected
    | AgentDisconnected
    | AgentRegistered
    | ChannelOpened
    | ChannelClosed
    | WalAppend
    | Deliver
    | Ack
    | Nack
    | CursorMoved
    | ReplayStart
    | ReplayEnd
    | DeadLetter
    | ReceiptIgnored
    | ObserverLagged
    | AgentLatency
    | ChannelsDropped
    | UnknownEvent
)


def body_fields(cls: type[Event]) -> tuple[str, ...]:
    """The fields an event type carries on the wire after `kind, event_seq, at, type`, in order."""
    return cls.__match_args__  # the non-keyword-only fields: everything but the feed's stamp


# --------------------------------------------------------------------------- encoding


def encode(event: Event, event_seq: int, at: str) -> bytes:
    """The event frame: `{"kind": "event", "event_seq", "at", "type", ...fields}` (one JSON object)."""
    frame: dict[str, Any] = {"kind": "event", "event_seq": event_seq, "at": at, "type": event.type}
    if type(event) is UnknownEvent:
        frame.update(event.fields)  # type: ignore[attr-defined]
    else:
        for name in event.__match_args__:
            frame[name] = getattr(event, name)
    return orjson.dumps(frame)


# --------------------------------------------------------------------------- decoding

_ADAPTERS: dict[str, TypeAdapter[Any]] = {cls.TYPE: TypeAdapter(cls) for cls in EVENT_CLASSES}
_SNAPSHOT = TypeAdapter(Snapshot)
_CHANNEL = TypeAdapter(ChannelView)
_ENVELOPE = TypeAdapter(EnvelopeView)


def _message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "frame"
    return f"{where}: {first['msg'].lower()}"


def decode_event(frame: dict[str, Any]) -> AnyEvent:
    """An event frame (a dict as received) as its event object; `UnknownEvent` for a type not known.

    Raises EventError for a known type whose fields do not fit it."""
    if not isinstance(frame, dict):
        raise EventError(f"an event frame is an object, not {type(frame).__name__}")
    type_ = frame.get("type")
    adapter = _ADAPTERS.get(type_) if isinstance(type_, str) else None
    if adapter is None:
        rest = {k: v for k, v in frame.items() if k not in ("kind", "event_seq", "at", "type")}
        seq, at = frame.get("event_seq"), frame.get("at")
        return UnknownEvent(
            name=str(type_),
            fields=rest,
            event_seq=seq if isinstance(seq, int) else None,
            at=at if isinstance(at, str) else None,
        )
    try:
        event = adapter.validate_python(frame)
    except ValidationError as exc:
        raise EventError(f"{type_} event: {_message(exc)}") from None
    if type(event) is WalAppend and type(event.envelope) is not EnvelopeView:
        raise EventError("wal.append event: envelope: not an object")
    return event


def decode_snapshot(data: dict[str, Any]) -> Snapshot:
    """An `observe` result (or a recorded snapshot) as a Snapshot. Raises EventError if malformed."""
    try:
        return _SNAPSHOT.validate_python(data)
    except ValidationError as exc:
        raise EventError(f"snapshot: {_message(exc)}") from None


def decode_channel(data: dict[str, Any]) -> ChannelView:
    """A channel object (an `open_channel` response, say) as a ChannelView."""
    try:
        return _CHANNEL.validate_python(data)
    except ValidationError as exc:
        raise EventError(f"channel: {_message(exc)}") from None


def decode_envelope(data: dict[str, Any]) -> EnvelopeView:
    try:
        return _ENVELOPE.validate_python(data)
    except ValidationError as exc:
        raise EventError(f"envelope: {_message(exc)}") from None


# --------------------------------------------------------------------------- documentation


def doc_table() -> str:
    """The event table of docs/protocol.md ("Observers"), generated from the classes."""
    lines = ["| type | fields | notes |", "|---|---|---|"]
    for cls in EVENT_CLASSES:
        lines.append(f"| `{cls.TYPE}` | {', '.join(body_fields(cls))} | {cls.NOTE} |")
    return "\n".join(lines)
