"""The request ops of the delivery core: one method per op of the contract, and the `OPS` table
(the op's params model, its handler, the roles that may call it). `HubCore` (`core.py`) dispatches
through the table; these methods are part of it (a mixin), reading and writing its state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from agentnet.protocol import events
from agentnet.protocol.codec import check_value
from agentnet.protocol.errors import CloseCode, ErrorCode, ProtocolError
from agentnet.protocol.frames import (
    OP_PARAMS,
    ChannelParams,
    CloseChannelParams,
    DisconnectParams,
    FindByCausationParams,
    OpenChannelParams,
    PageParams,
    PostParams,
    ReadWalParams,
    RegisterParams,
    WireModel,
)
from agentnet.protocol.vocab import HUB_SENDER, TURN_TYPES

from . import rules
from .effects import AnnounceChannel, Close, RespondChannel, Send, Session, Subscribe, _response
from .records import AgentRecord, ChannelRecord, Cursor, EnvRecord

if TYPE_CHECKING:
    from .core import HubCore

Fragment = orjson.Fragment


class Ops:
    """The ops of `HubCore` (mixed into it)."""

    def _actor(self, session: Session, params: Any) -> str:
        acting_as = getattr(params, "as_agent", None)
        if acting_as is None:
            return session.name
        if acting_as not in self.agents:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown agent {acting_as!r}")
        return acting_as

    def _channel_for(self, session: Session, channel_id: str, *, actor: str | None = None) -> ChannelRecord:
        ch = self.channels.get(channel_id)
        if ch is None:
            ch = self._channel(channel_id)  # forgotten: paged in from the store
        if ch is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no channel {channel_id!r}")
        who = actor or session.name
        if (session.role == "agent" or actor is not None) and who not in ch.participants:
            raise ProtocolError(ErrorCode.ACCESS_DENIED, f"{who} is not a participant of {channel_id}")
        return ch

    def _op_register(self, session: Session, p: RegisterParams, request_id: str, now: float) -> dict:
        agent = self.agents[session.name]
        passport = p.passport.model_dump()
        check_value(passport, "passport")
        agent.passport = passport
        self.batch.agents[agent.name] = agent
        if self.observed:
            self._emit(events.AgentRegistered(agent.name, agent.agent_id, passport))
        return {"agent_id": agent.agent_id}

    # ------------------------------------------------------------------ paged listings

    def _agent_info(self, a: AgentRecord, full: bool) -> dict[str, Any]:
        info = {
            "name": a.name,
            "agent_id": a.agent_id,
            "role": a.role,
            "connected": a.conn is not None,
            "passport": a.passport,
        }
        if full:  # what observers see
            info["session_id"] = a.session_id if a.conn is not None else None
            info["latency_ms"] = self.latency_ms(a.conn) if a.conn is not None else None
            # the current session's replay, for an observer that attached after replay.start went out
            info["replayed"] = a.session_replayed if a.conn is not None else None
            info["replaying"] = a.conn is not None and a.replay_count > 0
        return info

    def _agent_page(self, after: str, limit: int, budget: int, full: bool) -> tuple[list[dict], str | None]:
        names = heapq.nsmallest(limit + 1, (n for n in self.agents if n > after))
        out: list[dict] = []
        size = 0
        for name in names[:limit]:
            info = self._agent_info(self.agents[name], full)
            size += len(orjson.dumps(info)) + 1
            if out and size > budget:
                return out, out[-1]["name"]
            out.append(info)
        return out, (out[-1]["name"] if len(names) > limit else None)

    def _channel_page(
        self, after: str, limit: int, member: str | None, budget: int, cursors: bool, now: float
    ) -> tuple[list[dict], list[dict], str | None]:
        """Channels above `after` in id order: the store's (forgotten ones too) under the resident
        ones (newer), within `limit` and `budget` bytes; with `cursors`, the page's resident cursors."""
        found = {ch.channel_id: ch for ch in self.source.list_channels(after, limit + 1, member)}
        resident = (
            cid for cid, ch in self.channels.items() if cid > after and (member is None or member in ch.participants)
        )
        for cid in heapq.nsmallest(limit + 1, resident):
            found[cid] = self.channels[cid]
        ids = sorted(found)[: limit + 1]
        infos: list[dict] = []
        curs: list[dict] = []
        size = 0
        for cid in ids[:limit]:
            ch = found[cid]
            info = ch.info()
            more = [
                self.cursor_info(cur, now)
                for name in ch.participants
                if cursors and (cur := self.cursors.get(name, {}).get(cid)) is not None
            ]
            size += len(orjson.dumps(info)) + 1 + (len(orjson.dumps(more)) if more else 0)
            if infos and size > budget:
                return infos, curs, infos[-1]["channel_id"]
            infos.append(info)
            curs += more
        return infos, curs, (infos[-1]["channel_id"] if len(ids) > limit else None)

    def _op_list_agents(self, session: Session, p: PageParams, request_id: str, now: float) -> dict:
        full = session.role != "agent"
        agents, nxt = self._agent_page(p.after or "", p.limit, self.config.page_bytes, full)
        return {"agents": agents, "next": nxt, "total": len(self.agents)}

    def _op_list_channels(self, session: Session, p: PageParams, request_id: str, now: float) -> dict:
        member = session.name if session.role == "agent" else None
        cursors = p.cursors and member is None
        infos, curs, nxt = self._channel_page(p.after or "", p.limit, member, self.config.page_bytes, cursors, now)
        result: dict[str, Any] = {"channels": infos, "next": nxt}
        if member is None:
            result["total"] = self.channel_total
        if cursors:
            result["cursors"] = curs
        return result

    def _op_get_channel(self, session: Session, p: ChannelParams, request_id: str, now: float) -> dict:
        return self._channel_for(session, p.channel_id).info()

    def _op_open_channel(self, session: Session, p: OpenChannelParams, request_id: str, now: float) -> None:
        creator = self._actor(session, p)
        others: list[str] = []
        for name in p.participants:
            if name != creator and name not in others:
                others.append(name)
        if not others:
            raise ProtocolError(ErrorCode.INVALID, "a channel needs at least one participant besides its creator")
        unknown = [n for n in others if n not in self.agents]
        if unknown:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown agent(s): {', '.join(unknown)}")
        check_value(p.knobs, "knobs")
        knobs = rules.validate_knobs(p.type, p.knobs)
        ch = ChannelRecord(
            channel_id="ch-" + self.mint("x")[-12:],
            type=p.type,
            topic=p.topic,
            creator=creator,
            participants=(creator, *others),
            created_at=self.wall(),
            knobs=knobs,
        )
        ch.rule_state = rules.init_state(ch)
        self.channels[ch.channel_id] = ch
        self.channel_total += 1
        for name in ch.participants:
            self._cursor(name, ch.channel_id)
        text = f"{creator} opened a {p.type} channel with {', '.join(others)}"
        opened = orjson.dumps({"text": text, "topic": p.topic})
        self._append(ch, HUB_SENDER, "channel.opened", opened, text, None, None, None)
        self.batch.channels[ch.channel_id] = ch
        self.batch.after_commit.append(AnnounceChannel(ch.channel_id, opened=True))
        self.batch.after_commit.append(RespondChannel(session.conn, request_id, ch.channel_id))

    def _op_close_channel(self, session: Session, p: CloseChannelParams, request_id: str, now: float) -> Any:
        actor = self._actor(session, p)
        ch = self._channel_for(session, p.channel_id, actor=actor)
        if ch.state == "closed":
            return ch.info()
        self._close_channel(ch, p.reason or f"closed by {actor}")
        self.batch.after_commit.append(RespondChannel(session.conn, request_id, ch.channel_id))
        return None

    def _close_channel(self, ch: ChannelRecord, reason: str) -> None:
        ch.state, ch.closed_at, ch.close_reason = "closed", self.wall(), reason
        ch.rule_state["next"] = []
        ch.closed_seq = ch.head_seq + 1  # the channel.closed envelope appended next
        text = f"closed: {reason}"
        closed = orjson.dumps({"text": text, "reason": reason})
        self._append(ch, HUB_SENDER, "channel.closed", closed, text, None, None, None)
        self.batch.channels[ch.channel_id] = ch
        self.batch.after_commit.append(AnnounceChannel(ch.channel_id, opened=False))

    def _op_post(self, session: Session, p: PostParams, request_id: str, now: float) -> Any:
        sender = self._actor(session, p)
        if p.idempotency_key is not None:
            known = self.idempotency.get((sender, p.idempotency_key))
            if known is None and not self._idempotency_complete:
                known = self.source.find_idempotent(sender, p.idempotency_key)
            if known is not None:
                channel_id, envelope_id, seq = known
                result = {"envelope_id": envelope_id, "seq": seq, "duplicate": True}
                ch = self.channels.get(channel_id)
                if ch is not None and seq > ch.committed_seq:  # the original is still in a pending commit
                    self.batch.after_commit.append(Send(session.conn, _response(request_id, result)))
                    self.batch.posts.append((session.conn, request_id))
                    return None
                return result
        ch = self._channel_for(session, p.channel_id, actor=sender)
        if ch.state == "closed":
            raise ProtocolError(ErrorCode.CLOSED, f"channel {ch.channel_id} is closed ({ch.close_reason})")
        audience: tuple[str, ...] | None = None
        if p.audience is not None:
            bad = [n for n in p.audience if n not in ch.participants or n == sender]
            if bad:
                raise ProtocolError(
                    ErrorCode.INVALID,
                    f"audience must be other participants of {ch.channel_id}: {', '.join(bad)}",
                )
            audience = tuple(dict.fromkeys(p.audience))
        # `data` needs no check_value of its own: the shell only hands the core frames that passed
        # decode_client_frame, whose check counts depth from the frame's root (stricter than from data).
        data = orjson.dumps(p.data)  # encoded once: measured here, spliced into the envelope below
        if len(data) > self.config.max_data_bytes:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"data is {len(data)} bytes; the limit is {self.config.max_data_bytes}"
            )
        rules.check_post(ch, sender, p.type, p.causation_id)
        text = p.data.get("text")
        text = text if isinstance(text, str) else None
        rec = self._append(ch, sender, p.type, data, text, audience, p.causation_id, p.idempotency_key)
        if p.idempotency_key is not None:
            self.idempotency[(sender, p.idempotency_key)] = (ch.channel_id, rec.envelope_id, rec.seq)
            if len(self.idempotency) > 100_000:
                self.idempotency.popitem(last=False)
                self._idempotency_complete = False
        result = {"envelope_id": rec.envelope_id, "seq": rec.seq}
        self.batch.after_commit.append(Send(session.conn, _response(request_id, result)))
        self.batch.posts.append((session.conn, request_id))
        self.stats["posted"] += 1
        return None

    def _append(
        self,
        ch: ChannelRecord,
        sender: str,
        env_type: str,
        data: bytes,
        text: str | None,
        audience: tuple[str, ...] | None,
        causation_id: str | None,
        idempotency_key: str | None,
    ) -> EnvRecord:
        seq = ch.head_seq + 1
        envelope_id = self.mint("e")
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "channel_id": ch.channel_id,
            "seq": seq,
            "sender": sender,
            "audience": list(audience) if audience is not None else None,
            "type": env_type,
            "data": Fragment(data),
            "causation_id": causation_id,
            "idempotency_key": idempotency_key,
            "created_at": self.wall(),
        }
        close_reason = None
        if sender != HUB_SENDER and env_type in TURN_TYPES:
            envelope["turn"], close_reason = rules.after_turn(ch, sender, env_type, envelope_id, seq)
            self.batch.channels[ch.channel_id] = ch
        if sender == HUB_SENDER:
            envelope["audience"] = list(ch.participants)
            audience = ch.participants
        # A copy of exactly its length: orjson returns bytes that keep a ~4 KiB buffer whatever their
        # length, and records live long (channel caches, the memory store): ~4.1 KB -> ~0.6 KB each.
        encoded = bytes(memoryview(orjson.dumps(envelope)))
        rec = EnvRecord(
            ch.channel_id,
            seq,
            envelope_id,
            sender,
            audience,
            env_type,
            causation_id,
            idempotency_key,
            envelope["created_at"],
            encoded,
            text,
        )
        ch.head_seq = seq
        ch.cache[seq] = rec
        self._cached(ch, len(encoded), resident=True)
        self.batch.envelopes.append(rec)
        if close_reason:
            self._close_channel(ch, close_reason)
        return rec

    def _op_read_wal(self, session: Session, p: ReadWalParams, request_id: str, now: float) -> None:
        ch = self._channel_for(session, p.channel_id)
        out: list[Fragment] = []
        # a page stays below the peer's own limit too (its envelopes plus the frame around them)
        budget = min(self.config.read_page_bytes, session.max_size - 4096)
        size, seq = 0, p.after_seq + 1
        while seq <= ch.committed_seq and len(out) < p.limit:
            rec = self._envelope(ch, seq)
            if rec is None:  # pragma: no cover - a committed seq is always in the store
                break
            if out and size + len(rec.json) > budget:
                break
            out.append(Fragment(rec.json))
            size += len(rec.json) + 1
            seq += 1
        result = {"envelopes": out, "head_seq": ch.committed_seq, "has_more": seq <= ch.committed_seq}
        self._out.append(Send(session.conn, _response(request_id, result)))
        return None

    def _op_find_by_causation(self, session: Session, p: FindByCausationParams, request_id: str, now: float) -> dict:
        ch = self._channel_for(session, p.channel_id)
        for rec in ch.cache.values():
            matches = rec.causation_id == p.causation_id and (p.sender is None or rec.sender == p.sender)
            if matches and rec.seq <= ch.committed_seq:
                return {"envelope": Fragment(rec.json)}
        rec = self.source.find_by_causation(ch.channel_id, p.causation_id, p.sender)
        return {"envelope": Fragment(rec.json) if rec is not None else None}

    def _op_pending_turns(self, session: Session, p: Any, request_id: str, now: float) -> dict:
        turns = []
        for channel_id in self.cursors.get(session.name, {}):
            ch = self.channels[channel_id]
            seq = rules.owed_turn(ch, session.name)
            if seq is not None and seq <= ch.committed_seq:
                turns.append({"channel_id": channel_id, "after_seq": seq - 1})
        return {"turns": turns}

    def _op_observe(self, session: Session, p: PageParams, request_id: str, now: float) -> None:
        self._out.append(Send(session.conn, _response(request_id, self.snapshot(now, p.limit))))
        self._out.append(Subscribe(session.conn))
        return None

    def _op_disconnect(self, session: Session, p: DisconnectParams, request_id: str, now: float) -> dict:
        agent = self.agents.get(p.name)
        if agent is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown agent {p.name!r}")
        if agent.conn is None:
            raise ProtocolError(ErrorCode.CONFLICT, f"{p.name} is not connected")
        self._out.append(Close(agent.conn, CloseCode.DISCONNECTED, f"disconnected by {session.name}"))
        return {}

    # ------------------------------------------------------------------ observers

    def cursor_info(self, cur: Cursor, now: float) -> dict[str, Any]:
        ch = self.channels[cur.channel_id]
        oldest = min((inf.since for inf in cur.inflight.values()), default=None)
        return {
            "recipient": cur.recipient,
            "channel_id": cur.channel_id,
            "ack_floor": cur.ack_floor,
            "delivered_seq": cur.delivered_seq,
            "inflight": len(cur.inflight),
            "oldest_inflight_age": None if oldest is None else round(now - oldest, 3),
            "redelivered": cur.redelivered,
            "dead": cur.dead,
            "lag": ch.committed_seq - cur.ack_floor,
        }

    def snapshot(self, now: float, limit: int = 1000) -> dict[str, Any]:
        """The first page of everything: agents, channels (and their cursors) in key order, with
        `next` (where each listing continues: list_agents / list_channels `after`) and `total`."""
        budget = self.config.page_bytes // 3
        agents, next_agent = self._agent_page("", limit, budget, True)
        channels, cursors, next_channel = self._channel_page("", limit, None, budget * 2, True, now)
        return {
            "hub": {
                "hub_id": self.hub_id,
                "started_at": self.started_at,
                "store": self.store_name,
                "event_seq": self.event_seq(),
            },
            "agents": agents,
            "channels": channels,
            "cursors": cursors,
            "next": {"agents": next_agent, "channels": next_channel},
            "total": {"agents": len(self.agents), "channels": self.channel_total},
        }


# ----------------------------------------------------------------------------- the ops


@dataclass(frozen=True, slots=True)
class Op:
    """One request op: its params model (the wire contract's), its handler, and who may call it."""

    params: type[WireModel]
    handler: Callable[[HubCore, Session, Any, str, float], Any]  # -> the result, or None if answered later
    roles: frozenset[str]
    acting: bool = False  # the supervisor may also call it `as_agent` (the launcher's script)
    refusal: str = "{role}s cannot {op}; it is for agents"


AGENTS = frozenset({"agent"})
WATCHERS = frozenset({"observer", "supervisor"})
ANYONE = frozenset({"agent", "observer", "supervisor"})

OPS: dict[str, Op] = {
    "register": Op(OP_PARAMS["register"], Ops._op_register, AGENTS),
    "list_agents": Op(OP_PARAMS["list_agents"], Ops._op_list_agents, ANYONE),
    "open_channel": Op(OP_PARAMS["open_channel"], Ops._op_open_channel, AGENTS, acting=True),
    "post": Op(OP_PARAMS["post"], Ops._op_post, AGENTS, acting=True),
    "read_wal": Op(OP_PARAMS["read_wal"], Ops._op_read_wal, ANYONE),
    "get_channel": Op(OP_PARAMS["get_channel"], Ops._op_get_channel, ANYONE),
    "list_channels": Op(OP_PARAMS["list_channels"], Ops._op_list_channels, ANYONE),
    "close_channel": Op(OP_PARAMS["close_channel"], Ops._op_close_channel, AGENTS, acting=True),
    "find_by_causation": Op(OP_PARAMS["find_by_causation"], Ops._op_find_by_causation, AGENTS),
    "pending_turns": Op(OP_PARAMS["pending_turns"], Ops._op_pending_turns, AGENTS),
    "observe": Op(OP_PARAMS["observe"], Ops._op_observe, WATCHERS, refusal="observe is for observers"),
    "disconnect": Op(
        OP_PARAMS["disconnect"],
        Ops._op_disconnect,
        WATCHERS,
        refusal="disconnect is for observers and the supervisor",
    ),
}
