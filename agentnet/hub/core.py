"""The hub's delivery state machine: events in, effects out. No sockets, no clock, no disk.

Every public method takes `now` (monotonic seconds) and returns a list of effects (`effects.py`):
`Send(conn, bytes)`, `Close(conn, code, reason)`, `Emit(event)` for observers and
`Subscribe(conn)`. The wall-clock timestamps the contract stamps on records (`created_at`,
`hub_time`, ...) come from `wall()` and new ids from `mint(prefix)`, both given to the constructor
(`protocol.ids` by default; a test passes deterministic ones).

Writes go into a Batch; the shell commits it (`take_batch` -> store -> `batch_committed`) and only
then are post responses, notifies and `wal.append` events released. That ordering is the
durability promise: nothing is acknowledged or delivered before it is in the store.

Delivery, per (recipient, channel) cursor:
  scanner (next_seq) --first delivery--> inflight[seq] --ack--> done --> ack floor moves
                                             |  ^
                          nack / ack_wait /  |  | resend (attempt + 1) from the `ready` heap
                          reconnect          v  |
                                           ready  --attempt > max_deliver--> dead letter
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from agentnet.protocol import events, ids
from agentnet.protocol.codec import decode_params
from agentnet.protocol.errors import CloseCode, ErrorCode, ProtocolError
from agentnet.protocol.frames import (
    Hello,
    PostRequest,
    Receipt,
    Request,
)
from agentnet.protocol.vocab import HUB_SENDER

from .effects import (
    PEER_MAX_SIZE,
    AnnounceChannel,
    Close,
    Effect,
    Emit,
    RespondChannel,
    Send,
    Session,
    _error_response,
    _response,
    error_frame,
)
from .ops import OPS, Op, Ops
from .records import (
    AckRow,
    AgentRecord,
    AgentRow,
    Batch,
    ChannelRecord,
    ChannelRow,
    CommitBatch,
    Cursor,
    EnvRecord,
    Inflight,
    InflightState,
    LoadedState,
    PruneRow,
)
from .settings import DELIVERY

Fragment = orjson.Fragment

# ----------------------------------------------------------------------------- effects


@dataclass(slots=True)
class CoreConfig:
    window: int = DELIVERY.window  # unacked deliveries per recipient (defaults: agentnet.hub.settings)
    window_bytes: int = 8 * 1024 * 1024  # ... and at most this many bytes of them (one is always allowed)
    ack_wait: float = DELIVERY.ack_wait  # seconds without a receipt before redelivery
    max_deliver: int = DELIVERY.max_deliver  # attempts before dead-lettering
    nack_backoff: float = DELIVERY.nack_backoff  # first resend delay after a nack; doubles per attempt
    nack_backoff_max: float = 30.0
    max_data_bytes: int = 256 * 1024  # encoded `data` of one post
    read_page_bytes: int = 512 * 1024  # a read_wal page stays below the peer's max_size
    cache_per_channel: int = 4096  # envelopes kept in memory per channel; older ones are paged in
    cache_channel_bytes: int = 4 * 1024 * 1024  # ... and at most this many bytes of them per channel
    cache_bytes: int = 64 * 1024 * 1024  # cached envelopes of the whole hub; the least recently used go first
    page_bytes: int = 512 * 1024  # list_channels / list_agents / observe pages stay below this
    keep_receipts: bool = False  # keep acked receipts below the floor (an audit trail for `agentnet check`)


class EnvelopeSource(Protocol):
    """Read side of a store. Synchronous and fast (an index lookup); called on the loop thread."""

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]: ...

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None: ...

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None: ...

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None: ...

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]: ...


class HubCore(Ops):
    """Registry, channels, WAL heads, cursors, in-flight windows and redelivery for one hub."""

    def __init__(
        self,
        state: LoadedState,
        source: EnvelopeSource,
        config: CoreConfig | None = None,
        *,
        store_name: str = "memory",
        started_at: str | None = None,
        wall: Callable[[], str] = ids.utc_iso,
        mint: Callable[[str], str] = ids.new_id,
    ) -> None:
        self.wall, self.mint = wall, mint
        self.config = config or CoreConfig()
        self.source = source
        self.hub_id = state.hub_id
        self.store_name = store_name
        self.started_at = started_at or wall()
        self.observed = False  # set by the shell while observers are attached; no Emit otherwise
        # Facts only the shell knows, read when a snapshot is taken.
        self.event_seq: Callable[[], int] = lambda: 0
        self.latency_ms: Callable[[int], float | None] = lambda conn: None
        self.agents: dict[str, AgentRecord] = {a.name: a for a in state.agents}
        # Resident channels: open ones, and closed ones some cursor has not finished. A closed channel
        # every cursor has finished leaves memory (`_forget`); the store pages it back in on demand.
        self.channels: dict[str, ChannelRecord] = {c.channel_id: c for c in state.channels}
        self.channel_total = len(self.channels)  # resident or not
        self._cache_total = 0  # bytes cached over all resident channels
        self._cache_lru: OrderedDict[str, None] = OrderedDict()  # resident channels with a cache, least recent first
        self._lru_last: str | None = None  # the channel last moved to the LRU's end
        self._cache_count_over = self.config.cache_per_channel * 5 // 4  # trimmed once a quarter over a limit
        self._cache_bytes_over = self.config.cache_channel_bytes * 5 // 4
        self.cursors: dict[str, dict[str, Cursor]] = {}  # recipient -> channel_id -> cursor
        for cur in state.cursors:
            self.cursors.setdefault(cur.recipient, {})[cur.channel_id] = cur
        for ch in self.channels.values():
            for p in ch.participants:
                self._cursor(p, ch.channel_id)
        for recipient, per in self.cursors.items():
            agent = self.agents.get(recipient)
            if agent is not None:
                for channel_id, cur in per.items():
                    if not cur.idle(self.channels[channel_id].committed_seq):
                        agent.work[channel_id] = cur
        # Deadlines of in-flight deliveries, so a tick visits only what is due. ack_wait deadlines are
        # `now + ack_wait` and arrive in order (a FIFO); nack backoffs vary (a heap). Entries are checked
        # when popped: one whose delivery was acked, resent or replayed since is skipped.
        self._ack_deadlines: deque[tuple[float, Cursor, Inflight]] = deque()
        self._fifo_compact_at = 4096  # tick drops settled entries once the FIFO is longer
        self._backoffs: list[tuple[float, int, Cursor, Inflight]] = []
        self._backoff_count = 0
        self.idempotency: OrderedDict[tuple[str, str], tuple[str, str, int]] = OrderedDict(state.idempotency)
        # While the store holds no envelope this core did not append itself (it started empty) and the
        # map above has evicted nothing, the map knows every key the store does: a miss needs no query.
        self._idempotency_complete = not any(c.committed_seq or c.head_seq for c in state.channels)
        self.sessions: dict[int, Session] = {}
        self.batch = Batch()
        self._pending_batches: dict[int, Batch] = {}
        self._next_batch_id = 1
        self._out: list[Effect] = []
        self._dirty: set[str] = set()
        self.stats = {"posted": 0, "delivered": 0, "acked": 0, "redelivered": 0, "dead": 0, "ignored": 0}
        for cur in state.assumed:  # possibly delivered (after a crash or a failed commit): written down
            self._touch(cur)
            self.batch.forget.append(cur.channel_id)
        for channel_id in list(self.channels):  # what a previous run finished stays in the store only
            self._forget(channel_id)

    # ------------------------------------------------------------------ plumbing

    def _flush(self, now: float) -> list[Effect]:
        while self._dirty:
            name = self._dirty.pop()
            agent = self.agents.get(name)
            if agent is not None and agent.conn is not None:
                self._pump(agent, now)
        out, self._out = self._out, []
        return out

    def _emit(self, event: events.Event) -> None:
        """Queue an event for observers; callers build it only `if self.observed` (it costs ~1 us)."""
        self._out.append(Emit(event))

    def _cursor(self, recipient: str, channel_id: str) -> Cursor:
        per = self.cursors.setdefault(recipient, {})
        cur = per.get(channel_id)
        if cur is None:
            cur = per[channel_id] = Cursor(recipient, channel_id)
        return cur

    def _touch(self, cur: Cursor) -> None:
        self.batch.cursors[(cur.recipient, cur.channel_id)] = cur.row()

    def _emit_cursor(self, cur: Cursor, now: float) -> None:
        if not self.observed:
            return
        ch = self.channels[cur.channel_id]
        lag = ch.committed_seq - cur.ack_floor
        self._emit(
            events.CursorMoved(cur.recipient, cur.channel_id, cur.ack_floor, cur.delivered_seq, len(cur.inflight), lag)
        )

    def _envelope(self, ch: ChannelRecord, seq: int) -> EnvRecord | None:
        """A committed envelope, from the cache or paged in from the store."""
        rec = ch.cache.get(seq)
        if rec is not None or seq > ch.committed_seq:
            return rec
        cache, added = ch.cache, 0
        for loaded in self.source.load_envelopes(ch.channel_id, seq - 1, 256):
            if loaded.seq not in cache:
                cache[loaded.seq] = loaded
                added += len(loaded.json)
        self._cached(ch, added)
        return cache.get(seq)

    def channel(self, channel_id: str) -> ChannelRecord | None:
        """A channel by id, resident or paged in from the store (for protocol adapters, read only)."""
        return self._channel(channel_id)

    def envelope_at(self, channel_id: str, seq: int) -> EnvRecord | None:
        """A committed envelope by channel and seq, for protocol adapters that page the WAL their own way."""
        ch = self._channel(channel_id)
        return self._envelope(ch, seq) if ch is not None else None

    def envelopes_between(self, channel_id: str, first: int, last: int) -> list[EnvRecord]:
        """Committed envelopes first..last of a channel, in seq order, for protocol adapters: from the
        cache, the rest paged in from the store (one read per 256 missing, the channel read once)."""
        ch = self._channel(channel_id)
        if ch is None:
            return []
        found = (self._envelope(ch, seq) for seq in range(max(1, first), min(last, ch.committed_seq) + 1))
        return [rec for rec in found if rec is not None]

    def idle_head(self, name: str, channel_id: str) -> int | None:
        """Read only, for in-process adapters: the channel's last appended seq when everything there
        addressed to `name` has been sent to it (nothing appended, committed or not, waits for a first
        delivery; nothing waits for a resend or a replay); else None. (The in-hub AutoGen gateway
        hands a request on before its commit only then, so the order its worker sees is the hub's.)"""
        cur = self.cursors.get(name, {}).get(channel_id)
        ch = self.channels.get(channel_id)
        if cur is None or ch is None or cur.ready or cur.courtesy or len(cur.inflight) > 16:
            return None
        if any(inf.state is not InflightState.SENT for inf in cur.inflight.values()):
            return None
        if ch.head_seq - cur.next_seq >= 16:
            return None  # far behind: not idle, whatever is there
        for seq in range(cur.next_seq, ch.head_seq + 1):
            rec = ch.cache.get(seq)
            if rec is None or rec.addressed_to(name, ch.participants):
                return None
        return ch.head_seq

    def _cached(self, ch: ChannelRecord, added: int, resident: bool = False) -> None:
        """Account for `added` bytes put in a channel's cache; trim it, and the hub's, when over.
        (`resident`: the caller knows the channel is resident; on the append path, once per envelope.)"""
        ch.cache_bytes += added
        if not resident and self.channels.get(ch.channel_id) is not ch:
            return  # a forgotten channel paged in for one request: its cache goes with it
        self._cache_total += added
        lru = self._cache_lru
        channel_id = ch.channel_id
        if self._lru_last != channel_id:  # a burst into one channel moves it once
            lru[channel_id] = None
            lru.move_to_end(channel_id)
            self._lru_last = channel_id
        config = self.config
        if len(ch.cache) > self._cache_count_over or ch.cache_bytes > self._cache_bytes_over:
            self._trim_cache(ch, config.cache_per_channel, config.cache_channel_bytes)
        if self._cache_total > config.cache_bytes:
            for channel_id in list(lru):  # least recently used first
                if self._cache_total <= config.cache_bytes * 3 // 4:
                    break
                victim = self.channels.get(channel_id)
                if victim is None:
                    del lru[channel_id]
                    self._lru_last = None
                elif victim is not ch:
                    self._trim_cache(victim, 0, 0)
            if self._cache_total > config.cache_bytes:
                self._trim_cache(ch, 0, 0)

    def _trim_cache(self, ch: ChannelRecord, keep: int, keep_bytes: int) -> None:
        """Drop the oldest committed envelopes down to `keep` envelopes and `keep_bytes`, in one rebuild.

        Called once the cache is a quarter over its limit, not at every append: deleting a dict's
        keys one by one from the front leaves holes that each later `next(iter(d))` scans again.
        Envelopes not yet committed always stay (the commit releases them from here).
        """
        excess = len(ch.cache) - keep
        excess_bytes = ch.cache_bytes - keep_bytes
        committed = ch.committed_seq
        kept: dict[int, EnvRecord] = {}
        freed = 0
        for seq, rec in ch.cache.items():  # insertion order: the oldest cached first
            if (excess > 0 or excess_bytes > 0) and seq <= committed:
                excess -= 1
                excess_bytes -= len(rec.json)
                freed += len(rec.json)
                continue
            kept[seq] = rec
        ch.cache = kept
        ch.cache_bytes -= freed
        if self.channels.get(ch.channel_id) is ch:
            self._cache_total -= freed
            if not kept:
                self._cache_lru.pop(ch.channel_id, None)
                self._lru_last = None

    def _channel(self, channel_id: str) -> ChannelRecord | None:
        """A resident channel, or a forgotten one paged in from the store for this request only."""
        ch = self.channels.get(channel_id)
        if ch is None:
            loaded = self.source.load_channel(channel_id)
            if loaded is not None:
                ch = loaded[0]
        return ch

    def _readmit(self, channel_id: str) -> ChannelRecord | None:
        """Make a forgotten channel resident again, with its cursors (a hello's `since` names it)."""
        ch = self.channels.get(channel_id)
        if ch is not None:
            return ch
        loaded = self.source.load_channel(channel_id)
        if loaded is None:
            return None
        ch, cursors = loaded
        self.channels[channel_id] = ch
        for cur in cursors:
            self.cursors.setdefault(cur.recipient, {})[channel_id] = cur
        for name in ch.participants:
            self._cursor(name, channel_id)
        return ch

    def channels_dropped(self, channel_ids: list[str]) -> None:
        """The store deleted these closed, forgotten channels (the retention setting)."""
        self.channel_total -= sum(1 for cid in channel_ids if cid not in self.channels)

    def _forgettable(self, ch: ChannelRecord) -> bool:
        if ch.visible_state != "closed":
            return False
        head = ch.committed_seq
        for name in ch.participants:
            cur = self.cursors.get(name, {}).get(ch.channel_id)
            if cur is not None and (cur.ack_floor < head or not cur.idle(head)):
                return False
        return True

    def _forget(self, channel_id: str) -> None:
        """Drop a closed channel every cursor has finished: it stays in the store, read on demand.

        Only called once the rows that finished it are durable (see `_finish`), so what the store
        gives back when it is paged in is what memory held."""
        ch = self.channels.get(channel_id)
        if ch is None or not self._forgettable(ch):
            return
        pending = [self.batch, *self._pending_batches.values()]
        if any(channel_id in b.channels or any((n, channel_id) in b.cursors for n in ch.participants) for b in pending):
            return  # a later write is not durable yet; the batch that makes it so forgets it then
        del self.channels[channel_id]
        self._cache_total -= ch.cache_bytes
        self._cache_lru.pop(channel_id, None)
        self._lru_last = None
        for name in ch.participants:
            per = self.cursors.get(name)
            if per is not None:
                per.pop(channel_id, None)
                if not per:
                    del self.cursors[name]
            agent = self.agents.get(name)
            if agent is not None:
                agent.work.pop(channel_id, None)

    # ------------------------------------------------------------------ connections

    def hello(self, conn: int, hello: Hello, now: float) -> list[Effect]:
        """A connection sent a valid hello (auth already checked by the shell)."""
        # Forgotten channels its `since` pages in stay only while a courtesy replay needs them.
        paged_in = [cid for cid in hello.since or () if cid not in self.channels] if hello.role == "agent" else []
        try:
            if hello.role == "agent":
                self._hello_agent(conn, hello, now)
            else:
                session_id = self.mint("s")
                self.sessions[conn] = Session(conn, hello.name, hello.role, session_id, hello.max_size or PEER_MAX_SIZE)
                self._welcome(conn, hello.name, f"{hello.role}:{hello.name}", session_id)
        except ProtocolError as exc:
            close = exc.close or (CloseCode.CLIENT_AHEAD if exc.code == ErrorCode.CONFLICT else CloseCode.POLICY)
            self._out += [
                Send(conn, error_frame(exc.code, exc.message)),
                Close(conn, close, exc.message[:120]),
            ]
        for channel_id in paged_in:
            self._forget(channel_id)
        return self._flush(now)

    def _welcome(self, conn: int, name: str, agent_id: str, session_id: str, replay: int | None = None) -> None:
        frame: dict[str, object] = {
            "kind": "welcome",
            "session_id": session_id,
            "name": name,
            "agent_id": agent_id,
            "hub_id": self.hub_id,
            "hub_time": self.wall(),
            "protocol": 1,
        }
        if replay is not None:
            frame["replay"] = replay  # (ext) how many notifies the hub replays first; the agent logs them
        self._out.append(Send(conn, orjson.dumps(frame)))

    def _hello_agent(self, conn: int, hello: Hello, now: float) -> None:
        name = hello.name
        if name == HUB_SENDER:
            raise ProtocolError(ErrorCode.INVALID, f"the name {HUB_SENDER!r} is reserved for the hub")
        agent = self.agents.get(name)
        since = hello.since or {}
        for channel_id, seq in since.items():
            ch = self._readmit(channel_id)
            if ch is None or name not in ch.participants:
                raise ProtocolError(ErrorCode.INVALID, f"since names channel {channel_id!r}, which {name} is not in")
            if seq > ch.committed_seq:
                raise ProtocolError(
                    ErrorCode.CONFLICT,
                    f"client ahead of log: since {channel_id}={seq} but the hub's head is {ch.committed_seq}",
                )
        if agent is None:
            agent = AgentRecord(name, self.mint("a"), "agent", {}, self.wall())
            self.agents[name] = agent
            self.batch.agents[name] = agent
        elif agent.conn is not None and hello.takeover is False:
            raise ProtocolError(
                ErrorCode.CONFLICT,
                f"{name} is connected (session {agent.session_id}); another process uses this name",
                close=CloseCode.IN_USE,
            )
        elif agent.conn is not None:
            old = agent.conn
            self._out.append(Close(old, CloseCode.SUPERSEDED, "superseded by a newer session"))
            self._detach(old, CloseCode.SUPERSEDED, "superseded by a newer session", now)
        session_id = self.mint("s")
        agent.conn, agent.session_id, agent.connected_since = conn, session_id, now
        self.sessions[conn] = Session(conn, name, "agent", session_id, hello.max_size or PEER_MAX_SIZE)
        # Everything delivered and not acked goes out again, in seq order, before anything new. Only
        # the cursors with pending work are visited (and those `since` names), not every channel.
        count = 0
        for cur in agent.work.values():
            for inf in cur.inflight.values():
                if inf.state is not InflightState.READY:
                    inf.state, inf.deadline, inf.reason = InflightState.READY, None, "replay"
                    heapq.heappush(cur.ready, inf.seq)
                count += 1
            count += max(0, cur.delivered_seq - cur.next_seq + 1)  # delivered before a hub restart
        for channel_id, asked in since.items():
            cur = self._cursor(name, channel_id)
            if asked < cur.next_seq - 1:
                cur.courtesy = [asked + 1, cur.next_seq - 1]
                count += cur.next_seq - 1 - asked
                agent.work[channel_id] = cur
        # the welcome goes out before any notify (those are sent by the pump) and says how many replay
        self._welcome(conn, name, agent.agent_id, session_id, count)
        if self.observed:
            self._emit(events.AgentConnected(name, agent.agent_id, session_id, "agent"))
        agent.session_replayed = count
        if count:
            agent.replay_count = count
            if self.observed:
                self._emit(events.ReplayStart(name, count))
        self._dirty.add(name)

    def _detach(self, conn: int, code: int, reason: str, now: float) -> None:
        session = self.sessions.pop(conn, None)
        if session is None or session.role != "agent":
            return
        agent = self.agents[session.name]
        if agent.conn != conn:
            return
        agent.conn, agent.disconnected_at = None, now
        if agent.replay_count:
            agent.replay_count = 0
        if self.observed:
            self._emit(events.AgentDisconnected(agent.name, session.session_id, int(code), reason))

    def connection_closed(self, conn: int, code: int, reason: str, now: float) -> list[Effect]:
        self._detach(conn, code, reason, now)
        return self._flush(now)

    def session(self, conn: int) -> Session | None:
        return self.sessions.get(conn)

    # ------------------------------------------------------------------ requests

    def request(self, conn: int, req: Request | PostRequest, now: float) -> list[Effect]:
        session = self.sessions.get(conn)
        if session is None:  # the shell only forwards requests after hello; be safe anyway
            self._out.append(Send(conn, _error_response(req.request_id, ErrorCode.ACCESS_DENIED, "hello first")))
            return self._flush(now)
        try:
            op = OPS.get(req.op)
            params = req.params if type(req) is PostRequest else decode_params(req.op, req.params)
            assert op is not None  # decode_params refuses an unknown op
            self._authorize(session, req.op, op, params)
            result = op.handler(self, session, params, req.request_id, now)
            if result is not None:
                self._out.append(Send(conn, _response(req.request_id, result)))
        except ProtocolError as exc:
            self._out.append(Send(conn, _error_response(req.request_id, exc.code, exc.message)))
        return self._flush(now)

    @staticmethod
    def _authorize(session: Session, name: str, op: Op, params: Any) -> None:
        acting_as = getattr(params, "as_agent", None)
        if acting_as is not None and session.role != "supervisor":
            raise ProtocolError(ErrorCode.ACCESS_DENIED, "only the supervisor may act as another agent")
        if session.role in op.roles or (op.acting and session.role == "supervisor" and acting_as is not None):
            return
        raise ProtocolError(ErrorCode.ACCESS_DENIED, op.refusal.format(role=session.role, op=name))

    # ------------------------------------------------------------------ receipts

    def receipt(self, conn: int, r: Receipt, now: float) -> list[Effect]:
        session = self.sessions.get(conn)
        if session is None or session.role != "agent":
            who = session.name if session else "unknown"
            self._ignored(who, r, "stale session" if session is None else f"{session.role}s cannot ack")
            return self._flush(now)
        cur = self.cursors.get(session.name, {}).get(r.channel_id)
        inf = cur.inflight.get(r.seq) if cur is not None else None
        if cur is None or inf is None:
            delivered = cur is not None and (r.seq <= cur.ack_floor or r.seq in cur.done)
            self._ignored(session.name, r, "already acked" if delivered else "not delivered to you")
            return self._flush(now)
        if inf.envelope_id != r.envelope_id:
            self._ignored(session.name, r, "envelope_id does not match the seq")
            return self._flush(now)
        agent = self.agents[session.name]
        if r.status == "ack":
            # A pump after the ack can only send more if the ack freed the window's last slot: below
            # a full window every pump has already sent all there was (commits and timers pump too).
            if self._window_full(agent):
                self._dirty.add(agent.name)
            self._finish(agent, cur, inf, "acked", now)
            cur.acked += 1
            self.stats["acked"] += 1
            if self.observed:
                self._emit(events.Ack(cur.recipient, cur.channel_id, r.seq, r.envelope_id, r.reason or ""))
                self._emit_cursor(cur, now)
        else:
            reason = r.reason or "nacked"
            if self.observed:
                self._emit(events.Nack(cur.recipient, cur.channel_id, r.seq, r.envelope_id, inf.attempt, reason))
            if inf.attempt >= self.config.max_deliver:
                self._dead_letter(agent, cur, inf, f"nacked {inf.attempt} times; last: {reason}", now)
            else:
                backoff = min(self.config.nack_backoff * 2 ** (inf.attempt - 1), self.config.nack_backoff_max)
                inf.state, inf.deadline, inf.reason = InflightState.BACKOFF, now + backoff, "nack"
                self._backoff_count += 1
                heapq.heappush(self._backoffs, (inf.deadline, self._backoff_count, cur, inf))
            self._dirty.add(agent.name)
        return self._flush(now)

    def _ignored(self, name: str, r: Receipt, reason: str) -> None:
        self.stats["ignored"] += 1
        if self.observed:
            self._emit(events.ReceiptIgnored(name, r.channel_id, r.seq, r.envelope_id, reason))

    def _finish(
        self, agent: AgentRecord, cur: Cursor, inf: Inflight, status: str, now: float, reason: str = ""
    ) -> None:
        """An in-flight delivery is over (acked or dead): free its window slot, move the floor."""
        del cur.inflight[inf.seq]
        agent.unacked -= 1
        agent.unacked_bytes -= inf.size
        ch = self.channels[cur.channel_id]
        idle = not cur.inflight and not cur.courtesy and cur.next_seq > ch.committed_seq
        if idle:
            agent.work.pop(cur.channel_id, None)
        if inf.courtesy:
            if idle and ch.state == "closed":
                self.batch.forget.append(ch.channel_id)
            return
        cur.done.add(inf.seq)
        cur.advance_floor()
        self._touch(cur)
        if idle and ch.state == "closed" and cur.ack_floor >= ch.committed_seq:
            self.batch.forget.append(ch.channel_id)  # forgotten (if all cursors are done) once this is durable
        self.batch.acks.append(
            AckRow(
                cur.recipient,
                cur.channel_id,
                inf.seq,
                inf.envelope_id,
                status,
                inf.attempt,
                self.wall(),
                reason,
            )
        )

    def _dead_letter(self, agent: AgentRecord, cur: Cursor, inf: Inflight, reason: str, now: float) -> None:
        courtesy = inf.courtesy
        self._finish(agent, cur, inf, "dead", now, reason)
        if courtesy:
            return
        cur.dead += 1
        self.stats["dead"] += 1
        self._touch(cur)
        if self.observed:
            self._emit(events.DeadLetter(cur.recipient, cur.channel_id, inf.seq, inf.envelope_id, inf.attempt, reason))
            self._emit_cursor(cur, now)

    # ------------------------------------------------------------------ delivery

    def _pump(self, agent: AgentRecord, now: float) -> None:
        """Send what this recipient may receive now: due redeliveries first, then new envelopes."""
        assert agent.conn is not None
        work = agent.work
        if not work:
            return
        # Only the cursors with pending work are visited (commits, timers, nacks and hello add them).
        # Every due resend first (one may dead-letter and free a slot), then the replays a hello's
        # `since` asked for, up to the window: a pump that ends below a full window leaves nothing
        # undelivered, which is why an ack only needs a pump when the window was full.
        cursors = list(work.values())
        for cur in cursors:
            if cur.ready:
                self._resend_ready(agent, cur, now)
        for cur in cursors:
            if cur.courtesy:
                self._send_courtesy(agent, cur, now)
        room = self.config.window - agent.unacked
        channels = self.channels
        if room > 0 and not self._window_full(agent):
            active = [c for c in cursors if c.next_seq <= channels[c.channel_id].committed_seq]
            window_bytes = self.config.window_bytes
            while room > 0 and active:
                for cur in list(active):
                    if self._deliver_next(agent, cur, now):
                        room -= 1
                        if agent.unacked_bytes >= window_bytes:
                            room = 0  # the window is full in bytes: the next ack pumps again
                        if room == 0:
                            break
                    if cur.next_seq > self.channels[cur.channel_id].committed_seq:
                        active.remove(cur)
        for cur in cursors:
            if cur.idle(channels[cur.channel_id].committed_seq):
                work.pop(cur.channel_id, None)
        if agent.replay_count and self._replay_done(work):
            if self.observed:
                self._emit(events.ReplayEnd(agent.name, agent.replay_count))
            agent.replay_count = 0

    def _window_full(self, agent: AgentRecord) -> bool:
        """No room for another delivery: the window is full in count, or in bytes (one always fits)."""
        return agent.unacked >= self.config.window or (
            agent.unacked > 0 and agent.unacked_bytes >= self.config.window_bytes
        )

    @staticmethod
    def _replay_done(work: dict[str, Cursor]) -> bool:
        """A cursor outside `work` has nothing to replay (it is idle)."""
        return all(not c.ready and not c.courtesy and c.next_seq > c.delivered_seq for c in work.values())

    def _deliver_next(self, agent: AgentRecord, cur: Cursor, now: float) -> bool:
        """Look at the scanner's next seq; deliver it if it is addressed to this recipient."""
        seq = cur.next_seq
        cur.next_seq = seq + 1
        if seq in cur.done or seq in cur.inflight or seq <= cur.ack_floor:
            return False
        ch = self.channels[cur.channel_id]
        rec = self._envelope(ch, seq)
        if rec is None or not rec.addressed_to(agent.name, ch.participants):
            cur.done.add(seq)
            if cur.advance_floor():
                self._touch(cur)
            return False
        redelivery = seq <= cur.delivered_seq  # delivered before a hub restart, never acked
        inf = Inflight(seq, rec.envelope_id, 1 if redelivery else 0, InflightState.READY, None, now, "replay")
        inf.size = len(rec.json)
        cur.inflight[seq] = inf
        agent.unacked += 1
        agent.unacked_bytes += inf.size
        if not redelivery:
            cur.delivered_seq = seq
            self._touch(cur)
        return self._send(agent, cur, rec, inf, now)

    def _resend_ready(self, agent: AgentRecord, cur: Cursor, now: float) -> None:
        ch = self.channels[cur.channel_id]
        while cur.ready:
            seq = heapq.heappop(cur.ready)
            inf = cur.inflight.get(seq)
            if inf is None or inf.state is not InflightState.READY:
                continue
            rec = self._envelope(ch, seq)
            if rec is not None:
                self._send(agent, cur, rec, inf, now)

    def _send_courtesy(self, agent: AgentRecord, cur: Cursor, now: float) -> None:
        ch = self.channels[cur.channel_id]
        start, end = cur.courtesy
        while start <= end and not self._window_full(agent):
            seq, start = start, start + 1
            if seq in cur.inflight:
                continue
            rec = self._envelope(ch, seq)
            if rec is None or not rec.addressed_to(agent.name, ch.participants):
                continue
            inf = Inflight(seq, rec.envelope_id, 1, InflightState.READY, None, now, "replay", courtesy=True)
            inf.size = len(rec.json)
            cur.inflight[seq] = inf
            agent.unacked += 1
            agent.unacked_bytes += inf.size
            self._send(agent, cur, rec, inf, now)
        cur.courtesy = [start, end] if start <= end else []

    def _send(self, agent: AgentRecord, cur: Cursor, rec: EnvRecord, inf: Inflight, now: float) -> bool:
        if inf.attempt >= self.config.max_deliver:
            self._dead_letter(agent, cur, inf, f"no ack after {inf.attempt} deliveries", now)
            return False
        inf.attempt += 1
        inf.state, inf.deadline = InflightState.SENT, now + self.config.ack_wait
        self._ack_deadlines.append((inf.deadline, cur, inf))
        reason = "first" if inf.attempt == 1 else inf.reason
        if inf.attempt > 1:
            cur.redelivered += 1
            self.stats["redelivered"] += 1
            self._touch(cur)
        self.stats["delivered"] += 1
        frame = {
            "kind": "notify",
            "recipient": agent.name,
            "envelope": Fragment(rec.json),
            "attempt": inf.attempt,
        }
        assert agent.conn is not None
        self._out.append(Send(agent.conn, orjson.dumps(frame)))
        if self.observed:
            self._emit(events.Deliver(agent.name, cur.channel_id, rec.seq, rec.envelope_id, inf.attempt, reason))
            self._emit_cursor(cur, now)
        return True

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> list[Effect]:
        """Redeliver what waited too long for a receipt, and nacked envelopes whose backoff is over.

        Only due deadlines are visited: they are popped from the FIFO (ack_wait) and the heap (nacks).
        """
        fifo, heap = self._ack_deadlines, self._backoffs
        while fifo and fifo[0][0] <= now:
            _, cur, inf = fifo.popleft()
            self._due(cur, inf, now)
        if len(fifo) > self._fifo_compact_at:
            # Settled entries (acked, or resent with a later deadline) go, so the FIFO does not keep
            # every delivery of the last ack_wait seconds alive (memory, and GC passes). Amortized O(1).
            fifo = self._ack_deadlines = deque(
                e for e in fifo if e[2].deadline == e[0] and e[1].inflight.get(e[2].seq) is e[2]
            )
            self._fifo_compact_at = max(4096, 2 * len(fifo))
        while heap and heap[0][0] <= now:
            _, _, cur, inf = heapq.heappop(heap)
            self._due(cur, inf, now)
        return self._flush(now)

    def _due(self, cur: Cursor, inf: Inflight, now: float) -> None:
        if inf.deadline is None or inf.deadline > now or cur.inflight.get(inf.seq) is not inf:
            return  # acked, replayed or resent (with a later deadline) since this entry was queued
        agent = self.agents.get(cur.recipient)
        if agent is None or agent.conn is None:
            return  # its hello replays everything in flight
        if inf.state is InflightState.SENT:
            inf.reason = "ack_wait"
        inf.state, inf.deadline = InflightState.READY, None
        heapq.heappush(cur.ready, inf.seq)
        agent.work[cur.channel_id] = cur
        self._dirty.add(agent.name)

    # ------------------------------------------------------------------ commits

    def take_batch(self) -> CommitBatch | None:
        """Hand the writes decided since the last call to the store (None if there are none)."""
        batch = self.batch
        if not batch:
            return None
        self.batch = Batch()
        batch_id = self._next_batch_id
        self._next_batch_id += 1
        self._pending_batches[batch_id] = batch
        dumps = orjson.dumps
        return CommitBatch(
            batch_id=batch_id,
            envelopes=batch.envelopes,
            channels=[
                ChannelRow(
                    c.channel_id,
                    c.type,
                    c.topic,
                    c.creator,
                    dumps(list(c.participants)).decode(),
                    c.created_at,
                    dumps(c.knobs).decode(),
                    c.state,
                    c.closed_at,
                    c.close_reason,
                    dumps(c.rule_state).decode(),
                )
                for c in batch.channels.values()
            ],
            agents=[
                AgentRow(a.name, a.agent_id, a.role, dumps(a.passport).decode(), a.registered_at)
                for a in batch.agents.values()
            ],
            cursors=list(batch.cursors.values()),
            acks=batch.acks if self.config.keep_receipts else self._above_floor(batch),
            prune=[]
            if self.config.keep_receipts
            else [PruneRow(r.recipient, r.channel_id, r.ack_floor) for r in batch.cursors.values()],
        )

    @staticmethod
    def _above_floor(batch: Batch) -> list[AckRow]:
        """The receipts worth writing: dead letters, and acks the cursor's floor does not cover yet."""
        rows = batch.cursors
        out = []
        for ack in batch.acks:
            row = rows.get((ack.recipient, ack.channel_id))
            if ack.status != "acked" or row is None or ack.seq > row.ack_floor:
                out.append(ack)
        return out

    def batch_committed(self, batch_id: int, now: float) -> list[Effect]:
        """The store made the batch durable: release its responses, notifies and events."""
        batch = self._pending_batches.pop(batch_id)
        touched: set[str] = set()
        for rec in batch.envelopes:
            ch = self.channels[rec.channel_id]
            ch.committed_seq = max(ch.committed_seq, rec.seq)
            touched.add(rec.channel_id)
            if self.observed:
                self._out.append(Emit(events.WalAppend(Fragment(rec.json))))
        for item in batch.after_commit:
            match item:
                case Send():
                    self._out.append(item)
                case RespondChannel(conn=conn, request_id=request_id, channel_id=channel_id):
                    self._out.append(Send(conn, _response(request_id, self.channels[channel_id].info())))
                case AnnounceChannel(channel_id=channel_id, opened=opened) if self.observed:
                    view = self.channels[channel_id].view()
                    self._emit(events.ChannelOpened(view) if opened else events.ChannelClosed(view))
        agents, cursors = self.agents, self.cursors
        for channel_id in touched:
            ch = self.channels[channel_id]
            for name in ch.participants:
                agent = agents.get(name)
                if agent is not None and channel_id not in agent.work:
                    agent.work[channel_id] = cursors[name][channel_id]
            self._dirty.update(ch.participants)
        out = self._flush(now)
        for channel_id in batch.forget:
            self._forget(channel_id)
        return out

    def batch_failed(self, batch_id: int, message: str) -> list[Effect]:
        """The store refused the batch: every post in it gets a definite error. The caller must then
        rebuild the core from the store (its memory is ahead of what is durable)."""
        batch = self._pending_batches.pop(batch_id)
        self._refuse_posts(batch, message)
        out, self._out = self._out, []
        return out

    def abandon_batch(self, message: str) -> list[Effect]:
        """The shell is about to replace this core after a failed commit: the writes decided since
        (built on memory the store never got) are dropped, and their posts told so."""
        batch, self.batch = self.batch, Batch()
        self._refuse_posts(batch, message)
        out, self._out = self._out, []
        return out

    def _refuse_posts(self, batch: Batch, message: str) -> None:
        # Definite: a failed commit stored none of them, so a retry with the same key is safe.
        text = f"not stored: {message}; retry later"
        for conn, request_id in batch.posts:
            self._out.append(Send(conn, _error_response(request_id, ErrorCode.OVERLOADED, text)))
