"""The dashboard's state, free of Textual: feed items in, plain Python objects out (the projection).

The parts it projects into live beside it: `entities.py` (what is known about each process, agent,
channel, cursor and envelope), `series.py` (rates and sampled values per second), `selection.py`
(filtered views the panes index into) and `format.py` (how times and sizes are written).

Everything the panes show is computed here from the observer feed (hub snapshot + events) and the
launcher's process events, so it can be tested without a terminal and replayed deterministically:
rates, ages and "stuck cursor" explanations are computed from event times, and every query that needs
the present takes ``now`` as an argument (the live app passes the wall clock, playback and tests pass
``model.clock``, the time of the latest item applied).

Memory is bounded: envelopes, log lines and diagram arrows live in ring buffers; per-envelope
delivery histories and per-cursor series are capped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from agentnet.protocol.events import (
    Ack,
    AgentConnected,
    AgentDisconnected,
    AgentLatency,
    AgentRegistered,
    AgentView,
    AnyEvent,
    ChannelClosed,
    ChannelOpened,
    ChannelView,
    CursorMoved,
    CursorView,
    DeadLetter,
    Deliver,
    EnvelopeView,
    Event,
    HubView,
    Nack,
    ObserverLagged,
    ReceiptIgnored,
    ReplayEnd,
    ReplayStart,
    Snapshot,
    SnapshotTotal,
    WalAppend,
    decode_event,
    decode_snapshot,
    recipients_of,
)
from agentnet.protocol.ids import parse_time
from agentnet.protocol.vocab import DOWN_STATES, HUB_SENDER, RUNNING_STATES, CloseCode
from agentnet.run.control import VERBS as CONTROL_VERBS
from agentnet.run.items import (
    ITEM_CLASSES,
    Caption,
    ControlItem,
    FaultItem,
    FeedItem,
    FeedStatus,
    LauncherItem,
    ProcessItem,
    StatsItem,
    decode_item,
)

from .entities import (
    CONNECTED,
    DISCONNECTED,
    SUPERSEDED,
    AgentInfo,
    Arrow,
    ChannelInfo,
    CursorInfo,
    EnvelopeRow,
    LogLine,
    Mark,
    ProcessInfo,
)
from .format import (
    format_age,
    format_bytes,
    format_clock,
    format_duration,
    format_t,
    plural,
    sparkline_text,
    waits,
)
from .selection import Selection, WalFilter
from .series import RateCounter, SeriesSampler

__all__ = [  # the model's parts, importable from here as before the split
    "CONNECTED",
    "DISCONNECTED",
    "SUPERSEDED",
    "AgentInfo",
    "Arrow",
    "ChannelInfo",
    "CursorInfo",
    "DashboardModel",
    "EnvelopeRow",
    "FeedItem",
    "LogLine",
    "Mark",
    "ProcessInfo",
    "RateCounter",
    "Selection",
    "SeriesSampler",
    "WalFilter",
    "format_age",
    "format_bytes",
    "format_clock",
    "format_duration",
    "format_t",
    "parse_time",
    "plural",
    "sparkline_text",
    "waits",
]

DEFAULT_WINDOW = 256

# --------------------------------------------------------------------------------------------- the model


class DashboardModel:
    """Everything the dashboard knows, updated by ``apply*`` and read by the panes."""

    def __init__(
        self,
        *,
        max_envelopes: int = 50_000,
        max_log: int = 5_000,
        max_arrows: int = 50_000,
        stuck_after: float = 5.0,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.stuck_after = stuck_after
        self.window = window
        self.hub = HubView()
        self.processes: dict[str, ProcessInfo] = {}
        self.agents: dict[str, AgentInfo] = {}
        self.channels: dict[str, ChannelInfo] = {}
        self.cursors: dict[tuple[str, str], CursorInfo] = {}
        self.envelopes: deque[EnvelopeRow] = deque(maxlen=max_envelopes)
        self.log: deque[LogLine] = deque(maxlen=max_log)
        self.arrows: deque[Arrow] = deque(maxlen=max_arrows)
        self.lanes: list[str] = ["hub"]
        self._lane_names: set[str] = {"hub"}  # the same names: a membership test per event stays O(1)
        self.captions: list[tuple[float | None, str]] = []
        self.t0: float | None = None  # the scenario's t = 0 (event time), when the launcher says so
        self.schedule: list[tuple[float, str]] = []  # the scenario's faults: (t, "kill bob")
        self._by_key: dict[tuple[str, int], EnvelopeRow] = {}
        self._by_id: dict[str, EnvelopeRow] = {}
        self._serial = 0
        self.clock: float = 0.0  # time of the latest item applied
        self.started_at: float | None = None  # time of the first item applied
        self.version = 0  # bumps on every change; panes redraw when it moves
        self.event_seq: int | None = None
        self.events_total = 0
        self.items_total = 0
        self.dropped_total = 0
        self.missed_total = 0
        self.bad_items = 0
        self.snapshots = 0
        self.hub_total = SnapshotTotal()  # the snapshot's `total` (agents, channels), when it says
        self.feed_state = "waiting"
        self.feed_detail = ""
        self.event_rate = RateCounter()
        self.wal_rate = RateCounter()
        self.longest_sender = 0  # the WAL stream sizes its sender column to it (8 to 12 cells)

    # ------------------------------------------------------------------ dispatch

    def apply(self, item: FeedItem) -> None:
        """Apply one feed item; malformed items are counted and logged, never raised."""
        kind, payload = item
        self.items_total += 1
        try:
            if kind == "event":
                self.apply_event(payload)
            elif kind == "snapshot":
                self.apply_snapshot(payload)
            elif kind in ITEM_CLASSES:
                self.apply_item(decode_item(kind, payload))
            else:
                self.bad_items += 1
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # EventError is a ValueError
            self.bad_items += 1
            self._log(self.clock or None, "error", f"malformed {kind} item ignored: {exc!r}")

    def _tick(self, at: float | None) -> float | None:
        if at is not None:
            if self.started_at is None:
                self.started_at = at
            if at > self.clock:
                self.clock = at
        self.version += 1
        return at

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _log(self, at: float | None, level: str, text: str, envelope_id: str | None = None) -> None:
        self.log.append(LogLine(self._next_serial(), at, level, text, envelope_id))

    def _lane(self, name: str | None) -> None:
        if name and name not in self._lane_names:
            self._lane_names.add(name)
            self.lanes.append(name)

    # ------------------------------------------------------------------ snapshot

    def apply_snapshot(self, snapshot: Snapshot | dict[str, Any], at: float | None = None) -> None:
        """Replace hub-side state (agents, channels, cursors) with a fresh snapshot.

        The WAL ring, the log and the diagram keep what they had: a re-snapshot after
        ``observer.lagged`` leaves a gap in them, which the log records.
        """
        snap = snapshot if isinstance(snapshot, Snapshot) else decode_snapshot(snapshot)
        self.hub_total = snap.total or SnapshotTotal()
        at = self._tick(at if at is not None else parse_time(snap.at))
        when = at if at is not None else (self.clock or None)
        self.snapshots += 1
        if self.feed_state == "waiting":
            self.feed_state = "connected"
        elif self.feed_state == "reconnecting":  # the hub is back (said by the observer's new snapshot)
            self.feed_state, self.feed_detail = "connected", ""
            self._log(when, "info", "feed connected again")
        resync = self.snapshots > 1  # a re-snapshot: after a reconnect (a hub restart) or lost events
        restarted = resync and bool(snap.hub.started_at) and snap.hub.started_at != self.hub.started_at
        self.hub = snap.hub
        self.event_seq = snap.hub.event_seq
        agents: dict[str, AgentInfo] = {}
        came: list[tuple[AgentInfo, AgentView]] = []
        went: list[AgentInfo] = []
        for entry in snap.agents:
            name = entry.name
            agent = self.agents.get(name) or AgentInfo(name)
            agent.agent_id = entry.agent_id or agent.agent_id
            agent.role = entry.role or agent.role
            was_connected, old_session = agent.connected, agent.session_id
            if resync and entry.connected and (not was_connected or entry.session_id != old_session):
                came.append((agent, entry))
            elif resync and was_connected and not entry.connected:
                went.append(agent)
            agent.connected = entry.connected
            agent.session_id = entry.session_id
            agent.passport = entry.passport if entry.passport is not None else agent.passport
            agent.latency_ms = entry.latency_ms
            if entry.replayed is not None:  # a hub that says how its sessions' replays stand
                agent.replaying = entry.replayed if entry.replaying else None
            if agent.connected and not was_connected:
                agent.connected_at = agent.connected_at or when
            if agent.connected and not resync:
                agent.seen_connected = True
            if not agent.connected and agent.disconnected_at is None:
                agent.disconnected_at = when
            agents[name] = agent
            self._lane(name)
        self.agents = agents
        channels: dict[str, ChannelInfo] = {}
        for view in snap.channels:
            channel = self.channels.get(view.channel_id) or ChannelInfo(view.channel_id)
            channel.update(view)
            channels[channel.channel_id] = channel
        self.channels = channels
        cursors: dict[tuple[str, str], CursorInfo] = {}
        for entry in snap.cursors:
            key = (entry.recipient, entry.channel_id)
            cursor = self.cursors.get(key) or CursorInfo(*key)
            self._update_cursor(cursor, entry, when)
            cursor.redelivered = entry.redelivered
            cursor.dead = entry.dead
            age = entry.oldest_inflight_age
            cursor.snapshot_oldest_at = (when - age) if (age is not None and when is not None) else None
            if not cursor.inflight:
                cursor.since.clear()
            cursors[key] = cursor
        self.cursors = cursors
        self._log(
            when,
            "info",
            f"snapshot: {plural(len(agents), 'agent')}, {plural(len(channels), 'channel')}, "
            f"{plural(len(cursors), 'cursor')} (event_seq {self.event_seq})"
            + (" after the hub restarted" if restarted else ""),
        )
        self._unseen_connections(when, came, went)

    def _unseen_connections(
        self, at: float | None, came: list[tuple[AgentInfo, AgentView]], went: list[AgentInfo]
    ) -> None:
        """Connections that changed while the dashboard was away (it reconnects after a hub restart
        too, and the hub emits nothing while nobody observes): said from the snapshot, not skipped."""
        for agent, entry in came:
            again = agent.seen_connected
            agent.seen_connected = True
            inflight = sum(c.inflight for c in self.cursors.values() if c.recipient == agent.name)
            if entry.replayed is None:  # a hub that does not say
                replay = "its replay, if any, came before this snapshot"
            elif entry.replaying:
                replay = f"replaying {plural(entry.replayed, 'envelope')} to it"
            elif entry.replayed:
                replay = f"{plural(entry.replayed, 'envelope')} replayed to it"
            else:
                replay = "nothing to replay"
            self._log(
                at,
                "replay",
                f"{agent.name} {'reconnected' if again else 'connected'} (session {agent.session_id}) before "
                f"the dashboard re-attached: {replay}; {plural(inflight, 'envelope')} in flight to it now",
            )
            self._arrow(at, "connect", agent.name, "hub", "", 0, None, detail="reconnected" if again else "connected")
        for agent in went:
            self._log(at, "warn", f"{agent.name} disconnected while the dashboard was away")
            self._arrow(at, "disconnect", agent.name, "hub", "", 0, None)

    @property
    def total_channels(self) -> int:
        """The hub's channel count: its snapshot's `total` (which counts channels paged out of its
        memory) or, if more, the channels known here (opened since)."""
        return max(self.hub_total.channels, len(self.channels))

    @property
    def total_agents(self) -> int:
        return max(self.hub_total.agents, len(self.agents))

    # ------------------------------------------------------------------ hub events

    def apply_event(self, event: AnyEvent | dict[str, Any]) -> None:
        ev = event if isinstance(event, Event) else decode_event(event)
        at = self._tick(parse_time(ev.at))
        self.events_total += 1
        if at is not None:
            self.event_rate.add(at)
        seq = ev.event_seq
        if seq is not None:
            if self.event_seq is not None and seq > self.event_seq + 1:
                missed = seq - self.event_seq - 1
                self.missed_total += missed
                self._log(at, "warn", f"feed gap: {plural(missed, 'event')} missing before event {seq}")
            if self.event_seq is None or seq > self.event_seq:
                self.event_seq = seq
        match ev:
            case AgentConnected():
                self._on_agent_connected(ev, at)
            case AgentDisconnected():
                self._on_agent_disconnected(ev, at)
            case AgentRegistered():
                self._on_agent_registered(ev, at)
            case ChannelOpened(channel=view) | ChannelClosed(channel=view):
                self._on_channel(view, isinstance(ev, ChannelClosed), at)
            case WalAppend(envelope=EnvelopeView() as envelope):
                self._on_wal_append(envelope, at)
            case Deliver():
                self._on_deliver(ev, at)
            case Ack():
                self._on_ack(ev, at)
            case Nack():
                self._on_nack(ev, at)
            case CursorMoved():
                self._update_cursor(self._cursor(ev.recipient, ev.channel_id), ev, at)
            case ReplayStart() | ReplayEnd():
                self._on_replay(ev, at)
            case DeadLetter():
                self._on_dead_letter(ev, at)
            case ReceiptIgnored():
                self._on_receipt_ignored(ev, at)
            case ObserverLagged():
                self._on_observer_lagged(ev, at)
            case AgentLatency():
                self._on_agent_latency(ev, at)

    def _agent(self, name: str) -> AgentInfo:
        agent = self.agents.get(name)
        if agent is None:
            agent = self.agents[name] = AgentInfo(name)
            self._lane(name)
        return agent

    def _on_agent_connected(self, event: AgentConnected, at: float | None) -> None:
        name = event.name
        agent = self._agent(name)
        previous = agent.session_id if agent.connected else None
        agent.connected = True
        agent.session_id = event.session_id
        agent.agent_id = event.agent_id or agent.agent_id
        agent.role = event.role or agent.role
        agent.connected_at = at
        agent.close_code = None
        agent.close_reason = None
        again = agent.seen_connected
        agent.seen_connected = True
        if previous and previous != agent.session_id:
            self._log(at, "warn", f"{name} connected again: session {agent.session_id} supersedes {previous}")
        else:
            self._log(at, "info", f"{name} {'reconnected' if again else 'connected'} (session {agent.session_id})")
        self._arrow(at, "connect", name, "hub", "", 0, None, detail="reconnected" if again else "connected")

    def _on_agent_disconnected(self, event: AgentDisconnected, at: float | None) -> None:
        name = event.name
        agent = self._agent(name)
        session = event.session_id
        code = event.code
        reason = event.reason
        why = f"code {code}" + (f", {reason}" if reason else "")
        if session is not None and agent.session_id is not None and session != agent.session_id:
            self._log(at, "info", f"{name}: old session {session} closed ({why}), superseded")
            return
        agent.connected = False
        agent.disconnected_at = at
        agent.close_code = code
        agent.close_reason = reason
        agent.latency_ms = None
        agent.replaying = None
        self._log(at, "warn", f"{name} disconnected ({why})")
        self._arrow(at, "disconnect", name, "hub", "", 0, None, detail=str(code) if code is not None else "")

    def _on_agent_registered(self, event: AgentRegistered, at: float | None) -> None:
        agent = self._agent(event.name)
        agent.agent_id = event.agent_id or agent.agent_id
        agent.passport = event.passport if event.passport is not None else agent.passport
        # A second register in the same session changes the passport (an AutoGen worker's types, say)
        again = agent.connected and agent.session_id is not None and agent.registered_in == agent.session_id
        agent.registered_in = agent.session_id if agent.connected else None
        what = "updated its passport" if again else "registered"
        self._log(at, "info", f"{agent.name} {what}" + (f" (via {agent.via})" if agent.via else ""))

    def _on_agent_latency(self, event: AgentLatency, at: float | None) -> None:
        """The hub's keepalive round trips, every 2 s: ``latency_ms: {name: ms}``."""
        for name, ms in event.latency_ms.items():
            if name in self.agents:
                self.agents[name].latency_ms = ms

    def _on_channel(self, data: ChannelView, closed: bool, at: float | None) -> None:
        channel = self._channel(data.channel_id)
        channel.update(data)
        for name in channel.participants:
            self._lane(name)
        if closed:
            channel.state = "closed"
            reason = f": {channel.close_reason}" if channel.close_reason else ""
            self._log(at, "info", f"channel {channel.channel_id} closed{reason}")
        else:
            who = ", ".join(channel.participants)
            topic = f" “{channel.topic}”" if channel.topic else ""
            self._log(at, "info", f"channel {channel.channel_id} opened ({channel.type}{topic}; {who})")

    def _on_wal_append(self, envelope: EnvelopeView, at: float | None) -> None:
        channel_id = envelope.channel_id
        channel = self._channel(channel_id)
        seq = envelope.seq
        if seq > channel.head_seq:
            channel.head_seq = seq
        if at is not None:
            channel.rate.add(at)
            self.wal_rate.add(at)
        sender = envelope.sender
        if len(sender) > self.longest_sender:
            self.longest_sender = len(sender)
        recipients = list(recipients_of(envelope, channel.participants))
        if len(self.envelopes) == self.envelopes.maxlen:
            old = self.envelopes[0]
            self._by_key.pop((old.channel_id, old.seq), None)
            self._by_id.pop(old.envelope_id, None)
        for name in recipients:  # the hub says nothing of a cursor that does not move (its agent is away)
            cursor = self.cursors.get((name, channel_id))
            if cursor is not None and seq - cursor.ack_floor > cursor.lag:
                cursor.lag = seq - cursor.ack_floor
                if at is not None:
                    cursor.lag_series.add(at, cursor.lag)
        row = EnvelopeRow.of(self._next_serial(), envelope, at, recipients)
        self.envelopes.append(row)
        self._by_key[(channel_id, seq)] = row
        if row.envelope_id:
            self._by_id[row.envelope_id] = row
        if sender != HUB_SENDER:
            self._lane(sender)
            self._arrow(at, "post", sender, "hub", channel_id, seq, row.envelope_id, detail=row.type)

    def _arrow(
        self,
        at: float | None,
        kind: str,
        src: str,
        dst: str,
        channel_id: str,
        seq: int,
        envelope_id: str | None,
        attempt: int = 1,
        detail: str = "",
    ) -> None:
        self.arrows.append(
            Arrow(self._next_serial(), at, kind, src, dst, channel_id, seq, envelope_id, attempt, detail)
        )

    def _marker(self, at: float | None, what: str, target: str | None) -> None:
        """A fault or control on the sequence diagram: a row across every lane, at its time."""
        self._arrow(at, "fault", target or "hub", target or "hub", "", 0, None, detail=what)

    def _channel(self, channel_id: str) -> ChannelInfo:
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self.channels[channel_id] = ChannelInfo(channel_id)
        return channel

    def _cursor(self, recipient: str, channel_id: str) -> CursorInfo:
        key = (recipient, channel_id)
        cursor = self.cursors.get(key)
        if cursor is None:
            cursor = self.cursors[key] = CursorInfo(recipient, channel_id)
        return cursor

    def _mark(self, channel_id: str, seq: int, recipient: str) -> Mark | None:
        """`recipient`'s delivery mark on the envelope at (channel, seq), if the dashboard holds that row."""
        row = self._by_key.get((channel_id, seq))
        return row.mark(recipient) if row is not None else None

    def _on_deliver(self, event: Deliver, at: float | None) -> None:
        recipient, channel_id, seq, attempt = event.recipient, event.channel_id, event.seq, event.attempt
        reason = event.reason or ("first" if attempt == 1 else "")
        row = self._by_key.get((channel_id, seq))
        envelope_id = event.envelope_id or (row.envelope_id if row else None)
        if row is not None:
            mark = row.mark(recipient)
            mark.attempts = max(mark.attempts + 1, attempt)
            if mark.state not in ("acked", "settled"):
                mark.state = "delivered"
            mark.note(at, "redelivered" if attempt > 1 else "delivered", f"attempt {attempt}, {reason}")
        cursor = self._cursor(recipient, channel_id)
        if at is not None and seq > cursor.ack_floor:
            cursor.since.setdefault(seq, at)
        if seq > cursor.delivered_seq:
            cursor.delivered_seq = seq
        if attempt > 1:
            cursor.redelivered += 1
        self._lane(recipient)
        kind = "redeliver" if attempt > 1 else "deliver"
        self._arrow(at, kind, "hub", recipient, channel_id, seq, envelope_id, attempt, reason)

    def _on_ack(self, event: Ack, at: float | None) -> None:
        recipient, channel_id, seq = event.recipient, event.channel_id, event.seq
        mark = self._mark(channel_id, seq, recipient)
        if mark is not None:
            mark.state = "settled" if event.reason else "acked"
            mark.note(at, "acked", event.reason)
        cursor = self._cursor(recipient, channel_id)
        cursor.since.pop(seq, None)
        cursor.last_ack_at = at
        self._arrow(at, "ack", recipient, "hub", channel_id, seq, event.envelope_id, detail=event.reason)
        if event.reason:
            text = f"{recipient} settled {channel_id} #{seq} unhandled: {event.reason}"
            self._log(at, "info", text, event.envelope_id)

    def _on_nack(self, event: Nack, at: float | None) -> None:
        recipient, channel_id, seq, reason = event.recipient, event.channel_id, event.seq, event.reason
        mark = self._mark(channel_id, seq, recipient)
        if mark is not None:
            if mark.state not in ("acked", "settled"):
                mark.state = "nacked"
            mark.note(at, "nacked", reason)
        cursor = self._cursor(recipient, channel_id)
        if at is not None:
            cursor.last_nack = (at, seq, reason)
        self._arrow(at, "nack", recipient, "hub", channel_id, seq, event.envelope_id, detail=reason)
        suffix = f" after attempt {event.attempt}" if event.attempt else ""
        self._log(at, "warn", f"{recipient} nacked {channel_id} #{seq}{suffix}: {reason}", event.envelope_id)

    def _update_cursor(self, cursor: CursorInfo, data: CursorView | CursorMoved, at: float | None) -> None:
        cursor.ack_floor = data.ack_floor
        if data.delivered_seq is not None:
            cursor.delivered_seq = data.delivered_seq
        if data.inflight is not None:
            cursor.inflight = data.inflight
        lag = data.lag
        if lag is None:
            channel = self.channels.get(cursor.channel_id)
            lag = max(0, channel.head_seq - cursor.ack_floor) if channel else 0
        cursor.lag = lag
        cursor.updated_at = at
        if at is not None:
            cursor.lag_series.add(at, cursor.lag)
        floor = cursor.ack_floor
        if cursor.since:
            for seq in [s for s in cursor.since if s <= floor]:
                del cursor.since[seq]
        if cursor.inflight == 0:
            cursor.since.clear()
            cursor.snapshot_oldest_at = None

    def _on_replay(self, event: ReplayStart | ReplayEnd, at: float | None) -> None:
        recipient, count = event.recipient, event.count
        agent = self._agent(recipient)
        if isinstance(event, ReplayStart):
            agent.replaying = count
            self._log(at, "replay", f"replaying {plural(count, 'envelope')} to {recipient}")
        else:
            agent.replaying = None
            self._log(at, "replay", f"replay to {recipient} done ({plural(count, 'envelope')})")

    def _on_dead_letter(self, event: DeadLetter, at: float | None) -> None:
        recipient, channel_id, seq, reason = event.recipient, event.channel_id, event.seq, event.reason
        attempts = event.attempts
        mark = self._mark(channel_id, seq, recipient)
        if mark is not None:
            mark.state = "dead"
            mark.note(at, "dead-lettered", f"after {attempts} attempts: {reason}")
        cursor = self._cursor(recipient, channel_id)
        cursor.dead += 1
        cursor.since.pop(seq, None)
        self._arrow(at, "dead", "hub", recipient, channel_id, seq, event.envelope_id, detail=reason)
        self._log(
            at,
            "error",
            f"dead letter: {channel_id} #{seq} for {recipient} after {attempts} attempts ({reason})",
            event.envelope_id,
        )

    def _on_receipt_ignored(self, event: ReceiptIgnored, at: float | None) -> None:
        name, seq = event.name, event.seq
        row = self._by_key.get((event.channel_id, seq))
        if row is not None and name in row.marks:
            row.mark(name).note(at, "receipt ignored", event.reason)
        self._log(
            at,
            "warn",
            f"ignored receipt from {name} for {event.channel_id} #{seq}: {event.reason}",
            event.envelope_id,
        )

    def _on_observer_lagged(self, event: ObserverLagged, at: float | None) -> None:
        dropped = event.dropped
        self.dropped_total += dropped
        self._log(at, "warn", f"dashboard lagged: hub dropped {plural(dropped, 'event')}; re-snapshotting")
        # the next event_seq after a fresh snapshot is not a gap
        self.event_seq = None

    # ------------------------------------------------------------------ launcher items

    def apply_item(self, item: LauncherItem) -> None:
        match item:
            case ProcessItem():
                self._on_process(item)
            case Caption(text=text, at=at, t0=t0, faults=faults):
                when = self._tick(parse_time(at))
                if t0 and when is not None:  # the launcher's t = 0, with the scenario's fault timeline
                    self.t0 = when
                    self.schedule = [(f.at, " ".join(p for p in (f.action, f.target) if p)) for f in faults]
                self.captions.append((when, text))
                if len(self.captions) > 200:
                    del self.captions[0]
                self._log(when, "caption", text)
                if text.startswith("failover:"):  # a standby hub took over (the launcher says so): a diagram row
                    detail = text.removeprefix("failover:").strip()
                    self._arrow(when, "takeover", "hub", "hub", "", 0, None, detail=detail)
            case FaultItem(action=action, target=target, caption=caption, at=at):
                target_text = f" {target}" if target else ""
                caption_text = f" — {caption}" if caption else ""
                when = self._tick(parse_time(at))
                self._log(when, "fault", f"fault: {action}{target_text}{caption_text}")
                self._marker(when, f"{action}{target_text}", target)
            case StatsItem(procs=procs, at=at):
                self._tick(parse_time(at))
                for name, stats in procs.items():
                    proc = self.processes.get(name)
                    if proc is not None:
                        proc.cpu, proc.rss = stats.cpu, stats.rss
                    if stats.latency_ms is not None and name in self.agents:
                        self.agents[name].latency_ms = stats.latency_ms
            case FeedStatus(state=state, detail=detail, at=at):
                when = self._tick(parse_time(at))
                if state != self.feed_state or detail != self.feed_detail:
                    self._log(when, "info", f"feed {state}" + (f": {detail}" if detail else ""))
                self.feed_state, self.feed_detail = state, detail
            case ControlItem(verb=verb, target=target, message=message, error=error, at=at):
                target_text = f" {target}" if target else ""
                level = "error" if error else "control"
                when = self._tick(parse_time(at))
                self._log(when, level, f"control {verb}{target_text}: {message}")
                if not error and verb in CONTROL_VERBS:  # what an operator did is on the diagram like a fault
                    self._marker(when, f"{verb}{target_text} (you)", target)

    def _on_process(self, item: ProcessItem) -> None:
        at = self._tick(parse_time(item.at))
        name = item.name
        proc = self.processes.get(name)
        if proc is None:
            proc = self.processes[name] = ProcessInfo(name, item.role or "agent")
            if proc.role != "hub":
                self._lane(name)
        old_state = proc.state
        proc.role = item.role or proc.role
        proc.pid = item.pid
        proc.state = item.state
        proc.reason = item.reason
        proc.restarts = item.restarts
        proc.operator_restarts = item.operator_restarts
        proc.fault_restarts = item.fault_restarts
        proc.started_at = parse_time(item.started_at)
        proc.last_restart_at = parse_time(item.last_restart_at)
        proc.exit_code = item.exit_code
        if proc.state in DOWN_STATES and old_state not in DOWN_STATES:
            proc.down_since = at
        elif proc.state in RUNNING_STATES:
            proc.down_since = None
        if proc.state != old_state or proc.state_since is None:
            proc.state_since = at
            if proc.state != old_state:
                level = "error" if proc.state in ("crashed", "killed") else "process"
                why = f" ({proc.reason})" if proc.reason else ""
                code = f", exit {proc.exit_code}" if proc.exit_code is not None else ""
                self._log(at, level, f"{name}: {old_state} → {proc.state}{why}{code}")
        if proc.state not in RUNNING_STATES:
            proc.cpu = None
            proc.rss = None

    # ------------------------------------------------------------------ queries

    def scenario_t(self, now: float) -> float | None:
        """Seconds since the scenario's t = 0 (None before it, or when not under a launcher)."""
        return None if self.t0 is None else now - self.t0

    def next_fault(self, now: float) -> tuple[float, str] | None:
        """The scenario's next fault after `now`: (t, what)."""
        t = self.scenario_t(now)
        if t is None:
            return None
        return next(((at, what) for at, what in self.schedule if at > t), None)

    def envelope(self, envelope_id: str | None = None, *, channel_id: str | None = None, seq: int | None = None):
        """The row of an envelope still in the ring, by id or by (channel, seq)."""
        if envelope_id:
            row = self._by_id.get(envelope_id)
            if row is not None:
                return row
        if channel_id is not None and seq is not None:
            return self._by_key.get((channel_id, seq))
        return None

    def select_wal(self, channel_id: str | None = None, wal_filter: WalFilter | None = None) -> Selection:
        predicate: Callable[[EnvelopeRow], bool] | None
        if channel_id is None and (wal_filter is None or wal_filter.empty):
            predicate = None
        elif wal_filter is None or wal_filter.empty:

            def predicate(row: EnvelopeRow) -> bool:
                return row.channel_id == channel_id

        elif channel_id is None:
            predicate = wal_filter
        else:

            def predicate(row: EnvelopeRow) -> bool:
                return row.channel_id == channel_id and wal_filter(row)

        selection = Selection(self.envelopes, predicate)
        selection.sync()
        return selection

    def select_arrows(self, channel_id: str | None = None) -> Selection:
        """The diagram's rows: every arrow, or one channel's plus the markers that concern it (faults
        and takeovers always; a connection marker when the agent is in the channel)."""
        predicate: Callable[[Arrow], bool] | None = None
        if channel_id is not None:

            def predicate(arrow: Arrow) -> bool:
                if arrow.channel_id == channel_id or arrow.kind in ("takeover", "fault"):
                    return True
                if arrow.kind not in ("connect", "disconnect"):
                    return False
                channel = self.channels.get(channel_id)
                return channel is not None and arrow.src in channel.participants

        selection = Selection(self.arrows, predicate)
        selection.sync()
        return selection

    def select_log(self) -> Selection:
        selection = Selection(self.log, None)
        selection.sync()
        return selection

    def process_names(self) -> list[str]:
        """Rows of the processes pane: hub processes first, then every process or agent known."""
        names = [name for name, proc in self.processes.items() if proc.role == "hub"]
        names += [name for name in dict.fromkeys([*self.processes, *self.agents]) if name not in names]
        return names

    def channel_rate(self, channel_id: str, now: float, n: int = 30) -> list[int]:
        channel = self.channels.get(channel_id)
        return channel.rate.series(now, n) if channel else [0] * n

    def lag_series(self, key: tuple[str, str], now: float, n: int = 30) -> list[float]:
        cursor = self.cursors.get(key)
        return cursor.lag_series.series(now, n) if cursor else [0.0] * n

    def explain_cursor(self, key: tuple[str, str], now: float) -> str | None:
        """Why this cursor is not moving, in words; None if it is healthy (or idle)."""
        cursor = self.cursors.get(key)
        if cursor is None:
            return None
        name = cursor.recipient
        pending = cursor.inflight or len(cursor.since)
        waiting = max(0, cursor.lag - pending)
        if not pending and not cursor.lag:
            return None
        agent = self.agents.get(name)
        proc = self.processes.get(name)
        will_redeliver = f"{plural(pending, 'envelope')} will be redelivered when it reconnects"
        also_waiting = f"; {waiting} more {'waits' if waiting == 1 else 'wait'} for it" if waiting else ""
        if proc is not None and proc.state in DOWN_STATES and proc.role != "hub":
            since = proc.down_since if proc.down_since is not None else proc.state_since
            ago = format_age(now - since) if since is not None else "a while"
            head = {
                "exited": f"{name}'s process exited {ago} ago",
                "crashed": f"{name}'s process crashed {ago} ago",
                "killed": f"{name}'s process was killed {ago} ago",
                "backoff": f"{name}'s process has been down for {ago} and restarts after a backoff",
            }[proc.state]
            if pending:
                return f"{head}; {will_redeliver}{also_waiting}"
            return f"{head}; {waits(cursor.lag)}"
        if agent is not None and not agent.connected:
            ago = format_age(now - agent.disconnected_at) if agent.disconnected_at is not None else "some time"
            how = "was superseded" if agent.close_code == CloseCode.SUPERSEDED else "disconnected"
            if pending:
                return f"{name} {how} {ago} ago; {will_redeliver}{also_waiting}"
            return f"{name} {how} {ago} ago; {waits(cursor.lag)}"
        oldest_seq, oldest_at = cursor.oldest_inflight()
        age = None if oldest_at is None else max(0.0, now - oldest_at)
        which = f"#{oldest_seq}" if oldest_seq is not None else "its oldest delivery"
        if proc is not None and proc.state == "paused":
            since = format_age(now - proc.state_since) if proc.state_since is not None else "a while"
            return (
                f"{name} is paused (SIGSTOP) for {since}; {plural(pending, 'envelope')} in flight"
                f"{f', the oldest {format_age(age)} old' if age is not None else ''}; "
                "they are redelivered after ack_wait or when it resumes"
            )
        if pending >= self.window:
            return f"{name}'s window is full ({pending} unacked): the hub holds the rest until it acks"
        if cursor.last_nack is not None and now - cursor.last_nack[0] < self.stuck_after and pending:
            _, seq, reason = cursor.last_nack
            return f"{name} nacked #{seq} ({reason or 'no reason'}); the hub redelivers it after a backoff"
        if pending and age is not None and age >= self.stuck_after:
            return (
                f"{name} is connected but has not acked {which} for {format_age(age)}; "
                f"{plural(pending, 'envelope')} in flight (redelivered after ack_wait)"
            )
        return None

    def stuck_cursors(self, now: float) -> list[tuple[tuple[str, str], str]]:
        out = []
        for key in self.cursors:
            why = self.explain_cursor(key, now)
            if why is not None:
                out.append((key, why))
        return out

    def connection_label(self, name: str) -> str:
        agent = self.agents.get(name)
        if agent is None:
            return "—"
        if agent.connected and agent.replaying:
            return f"replay {agent.replaying}"
        return agent.connection

    @property
    def origin(self) -> float | None:
        """Event time of the dashboard's t = 0: the scenario's t = 0 when the launcher has said it,
        else the first item seen (an attached dashboard counts from when it attached)."""
        return self.t0 if self.t0 is not None else self.started_at

    def t_of(self, at: float | None) -> float | None:
        """``at`` (event time) on the dashboard's one clock: seconds since :attr:`origin`."""
        origin = self.origin
        if at is None or origin is None:
            return None
        return at - origin

    def format_at(self, at: float | None) -> str:
        """``at`` as every pane writes it: ``t+12.34s`` (see :func:`format_t`)."""
        return format_t(self.t_of(at))
