"""The hub's in-memory records and the unit of durable work (a Batch) that the core hands to a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from agentnet.protocol.events import ChannelView

from .effects import AfterCommit, Send

# ----------------------------------------------------------------------------- rows a commit writes
# Named tuples: the stores write them positionally (in column order), readers use the names.


class ChannelRow(NamedTuple):
    channel_id: str
    type: str
    topic: str | None
    creator: str
    participants_json: str
    created_at: str
    knobs_json: str
    state: str
    closed_at: str | None
    close_reason: str | None
    rule_state_json: str


class AgentRow(NamedTuple):
    name: str
    agent_id: str
    role: str
    passport_json: str
    registered_at: str


class CursorRow(NamedTuple):
    recipient: str
    channel_id: str
    ack_floor: int
    delivered_seq: int
    redelivered: int
    dead: int


_new_tuple = tuple.__new__


class PruneRow(NamedTuple):
    recipient: str
    channel_id: str
    ack_floor: int


# ----------------------------------------------------------------------------- records


@dataclass(slots=True)
class EnvRecord:
    """One WAL entry as the hub keeps it: indexed fields plus the envelope's JSON, encoded once."""

    channel_id: str
    seq: int
    envelope_id: str
    sender: str
    audience: tuple[str, ...] | None  # None = every participant but the sender
    type: str
    causation_id: str | None
    idempotency_key: str | None
    created_at: str
    json: bytes  # the whole envelope object, as sent in notify frames and read_wal pages
    text: str | None = None  # data["text"], kept for channel rules and the checker

    def addressed_to(self, name: str, participants: tuple[str, ...]) -> bool:
        """Its audience, or else every participant but the sender: `protocol.events.addressed_to`,
        inlined (called per delivery; tests/core/test_events.py checks they agree)."""
        audience = self.audience
        if audience is not None:
            return name in audience
        return name != self.sender and name in participants


@dataclass(slots=True)
class ChannelRecord:
    channel_id: str
    type: str
    topic: str | None
    creator: str
    participants: tuple[str, ...]
    created_at: str
    knobs: dict[str, Any]
    state: str = "open"
    head_seq: int = 0  # last seq assigned (may not be durable yet)
    committed_seq: int = 0  # last seq durable in the store: nothing above it is delivered or read
    closed_at: str | None = None
    close_reason: str | None = None
    closed_seq: int = 0  # seq of its channel.closed envelope; "closed" is shown once that is durable
    rule_state: dict[str, Any] = field(default_factory=dict)  # owned by the channel's rules
    cache: dict[int, EnvRecord] = field(default_factory=dict)  # recent envelopes; older ones paged in
    cache_bytes: int = 0  # JSON bytes of the envelopes in `cache`

    @property
    def visible_state(self) -> str:
        """What readers are told: a channel is closed once its channel.closed envelope is committed."""
        if self.state == "closed" and self.committed_seq >= self.closed_seq:
            return "closed"
        return "open"

    def view(self) -> ChannelView:
        """The channel object for observers (the same fields and values as `info()`)."""
        closed = self.visible_state == "closed"
        return ChannelView(
            self.channel_id,
            self.type,
            self.topic,
            self.creator,
            self.participants,
            "closed" if closed else "open",
            self.committed_seq,
            self.created_at,
            self.closed_at if closed else None,
            self.close_reason if closed else None,
            self.knobs,
        )

    def info(self, head_seq: int | None = None) -> dict[str, Any]:
        closed = self.visible_state == "closed"
        return {
            "channel_id": self.channel_id,
            "type": self.type,
            "topic": self.topic,
            "creator": self.creator,
            "participants": list(self.participants),
            "state": "closed" if closed else "open",
            "head_seq": self.committed_seq if head_seq is None else head_seq,
            "created_at": self.created_at,
            "closed_at": self.closed_at if closed else None,
            "close_reason": self.close_reason if closed else None,
            "knobs": self.knobs,
        }


class InflightState(Enum):
    SENT = "sent"  # on the wire to the current session, waiting for a receipt until the deadline
    BACKOFF = "backoff"  # nacked; resend when the deadline passes
    READY = "ready"  # to be resent as soon as the recipient is connected and the pump runs


@dataclass(slots=True)
class Inflight:
    """An envelope delivered (at least once) to a recipient and not yet acked or dead-lettered."""

    seq: int
    envelope_id: str
    attempt: int  # deliveries so far
    state: InflightState
    deadline: float | None  # SENT: ack_wait expiry; BACKOFF: when to resend
    since: float  # when it was first delivered (oldest-in-flight age)
    reason: str = "first"  # why the next send happens: replay | nack | ack_wait
    courtesy: bool = False  # re-sent because hello asked `since`; was already acked
    size: int = 0  # bytes of the envelope: counted against the recipient's window_bytes


@dataclass(slots=True)
class Cursor:
    """Delivery state of one (recipient, channel): the ack floor and what lies above it."""

    recipient: str
    channel_id: str
    ack_floor: int = 0  # every seq <= floor addressed to the recipient is acked or dead
    next_seq: int = 1  # next seq the scanner looks at for a first delivery
    delivered_seq: int = 0  # highest seq ever delivered (survives restarts: attempt numbering)
    done: set[int] = field(default_factory=set)  # seqs above the floor that are finished
    inflight: dict[int, Inflight] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)  # heap of in-flight seqs due for redelivery
    courtesy: list[int] = field(default_factory=list)  # [next, end]: acked seqs a hello `since` asked again
    redelivered: int = 0
    dead: int = 0
    acked: int = 0

    def idle(self, committed_seq: int) -> bool:
        """Nothing in flight, nothing to resend or replay, and the scanner is past the channel's head."""
        return not self.inflight and not self.courtesy and self.next_seq > committed_seq

    def advance_floor(self) -> bool:
        floor, done = self.ack_floor, self.done
        start = floor
        while floor + 1 in done:
            floor += 1
            done.discard(floor)
        self.ack_floor = floor
        return floor != start

    def row(self) -> CursorRow:
        # tuple.__new__ directly: a NamedTuple's own __new__ is a Python function (twice per envelope)
        return _new_tuple(
            CursorRow,
            (self.recipient, self.channel_id, self.ack_floor, self.delivered_seq, self.redelivered, self.dead),
        )


@dataclass(slots=True)
class AgentRecord:
    name: str
    agent_id: str
    role: str
    passport: dict[str, Any]
    registered_at: str
    conn: int | None = None
    session_id: str | None = None
    connected_since: float | None = None
    disconnected_at: float | None = None
    unacked: int = 0  # in-flight deliveries across all channels (the window)
    unacked_bytes: int = 0  # ... and their envelopes' bytes (the window in bytes)
    replay_count: int = 0  # non-zero while a replay announced by replay.start is running
    session_replayed: int = 0  # what the current session's hello replayed (observers see it in snapshots)
    # Its cursors with anything pending (in flight, due for a resend, a courtesy replay, or committed
    # envelopes the scanner has not reached), by channel_id: the only ones a pump or hello visits.
    work: dict[str, Cursor] = field(default_factory=dict)


@dataclass(slots=True)
class AckRow:
    recipient: str
    channel_id: str
    seq: int
    envelope_id: str
    status: str  # acked | dead
    attempts: int
    at: str
    reason: str | None = None


@dataclass(slots=True)
class Batch:
    """What the core has decided since the last commit: writes, and the effects the commit releases."""

    envelopes: list[EnvRecord] = field(default_factory=list)
    channels: dict[str, ChannelRecord] = field(default_factory=dict)  # upsert (created, closed, rules)
    agents: dict[str, AgentRecord] = field(default_factory=dict)  # upsert
    cursors: dict[tuple[str, str], CursorRow] = field(default_factory=dict)
    acks: list[AckRow] = field(default_factory=list)
    after_commit: list[AfterCommit] = field(default_factory=list)  # released by the commit, in order
    posts: list[tuple[int, str]] = field(default_factory=list)  # (conn, request_id) answered by the commit
    forget: list[str] = field(default_factory=list)  # closed channels to drop from memory once this is durable

    def __bool__(self) -> bool:
        return bool(
            self.envelopes
            or self.channels
            or self.agents
            or self.cursors
            or self.acks
            or self.after_commit
            or self.forget
        )

    def can_wait(self) -> bool:
        """Nothing in it is delivered or waited on but by its own posters: cursor rows, receipts,
        and records (`audience: []`, answered once durable like any post). Its commit may wait a
        little for company; a crash inside that wait costs redeliveries and those posts' answers."""
        if not self or self.channels or self.agents or self.forget or len(self.after_commit) != len(self.posts):
            return False
        return all(rec.audience == () for rec in self.envelopes) and all(
            type(item) is Send for item in self.after_commit
        )


@dataclass(slots=True, frozen=True)
class CommitBatch:
    """A Batch flattened to plain rows on the loop thread, so a store may write it from another thread."""

    batch_id: int
    envelopes: list[EnvRecord]  # immutable once appended
    channels: list[ChannelRow]
    agents: list[AgentRow]
    cursors: list[CursorRow]
    acks: list[AckRow]
    # Acked receipts at or below each floor are dropped in this commit (the floor says all of it;
    # dead-letter receipts stay, they carry the reason). Empty: keep them all.
    prune: list[PruneRow] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.envelopes) + len(self.acks)


@dataclass(slots=True)
class LoadedState:
    """What a store gives back when the hub starts on it."""

    hub_id: str
    agents: list[AgentRecord]
    channels: list[ChannelRecord]  # head_seq = committed_seq = max seq in the store
    cursors: list[Cursor]  # floors, delivered_seq, counters and `done` from acks above the floor
    idempotency: dict[tuple[str, str], tuple[str, str, int]] = field(default_factory=dict)
    # Cursors whose delivered_seq was raised to the head (`store.base.assume_delivered`): the core
    # writes them in its first commit, so the assumption outlives a clean stop that comes next.
    assumed: list[Cursor] = field(default_factory=list)
