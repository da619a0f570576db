"""ag2's hub protocol on agentnet's hub: an unmodified ag2 1.2.1 `HubClient(WsLink(url))` connects here.

One model, many doors. Every ag2 identity a connection registers (or attaches) becomes a core session
of its own, on a virtual connection id: the registry, the channels, their WAL, cursors, windows,
redelivery, dead letters and observer events are the native ones. This module only translates:

    ag2 request  --(validate, map names/ids/types)-->  native request on the identity's session
    native response / notify / welcome  --(map back, exact ag2 key sets)-->  ag2 frame on the socket
    ag2 receipt (envelope_id)  --(envelope_id -> seq of that delivery)-->  native receipt

so an ag2 receipt moves the contiguous ack floor, an ag2 client that reconnects (`hello`) gets what it
has not acked, and native agents and ag2 agents talk in the same channels (`text` <-> `ag2.msg.text`).
Reads of the registry (get_agent, names_for, can_send, read_wal, ...) are answered from the core's
state directly; everything that changes state goes through the core's own request path.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ValidationError

from agentnet.protocol import events, ids
from agentnet.protocol.codec import FrameError, check_value, describe_validation_error
from agentnet.protocol.errors import CloseCode, ProtocolError
from agentnet.protocol.frames import Hello as NativeHello
from agentnet.protocol.frames import Receipt as NativeReceipt
from agentnet.protocol.frames import Request as NativeRequest
from agentnet.protocol.models import NAME_PATTERN
from agentnet.protocol.vocab import HUB_SENDER

from .. import rules
from ..records import AgentRecord, ChannelRecord
from . import records as r

if TYPE_CHECKING:
    from ..server import Hub, Peer

log = logging.getLogger("agentnet.hub.ag2")

PATHS = ("/", "/ag2")
READ_WAL_BUDGET = 768 * 1024  # a read_wal response stays well below the ag2 client's 1 MiB max_size
LIST_BUDGET = 768 * 1024  # list_agents / list_channels answers too
CHANNEL_EXTRAS = 10_000  # ag2 knobs/labels remembered (most recent channels); others answer {}
DELIVERED_MEMORY = 8192  # per identity: envelope_id -> seq of recent deliveries, to map receipts
CONVERSATION_TURNS = 1_000_000  # ag2 conversations and discussions end by close_channel, not by a count
VIA = "ag2"

_ids = itertools.count(1)


class Ag2Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _frame(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"kind": kind, **fields})


def _response(request_id: str, result: Any) -> bytes:
    return _frame("response", request_id=request_id, ok=True, result=result, error_code="", error_message="")


def _error_response(request_id: str, code: str, message: str) -> bytes:
    return _frame("response", request_id=request_id, ok=False, result=None, error_code=code, error_message=message)


def _error_frame(code: str, message: str, envelope_id: str | None = None) -> bytes:
    return _frame("error", code=code, message=message, envelope_id=envelope_id)


def _params(model: type[BaseModel], params: dict[str, Any], op: str) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise Ag2Error(r.PROTOCOL_ERROR, f"{op}: {describe_validation_error(exc)}") from None


@dataclass(eq=False)
class Identity:
    """One ag2 identity held by a connection: a core session on its own virtual connection id."""

    session: Session
    conn: int
    name: str
    agent_id: str = ""
    greeted: bool = False
    hold: list[bytes] | None = None  # notifies held back until the register response is out
    hello_error: tuple[str, str] | None = None  # why the core refused this identity's hello
    delivered: OrderedDict[str, int] = field(default_factory=OrderedDict)
    observer: bool = False  # what the hub's dispatcher asks of a peer

    @property
    def ws(self) -> Any:
        return self.session.peer.ws

    def push(self, data: bytes) -> None:
        """A native frame the core sent this identity's session: translate it for the ag2 socket."""
        self.session.endpoint.from_core(self, data)

    def close(self, code: int, reason: str) -> None:
        self.session.endpoint.identity_closed(self, code, reason)


@dataclass(eq=False)
class Session:
    """One ag2 WebSocket connection and the identities it holds."""

    endpoint: Ag2Endpoint
    conn: int
    peer: Peer
    identities: dict[str, Identity] = field(default_factory=dict)  # agent_id -> identity
    closed: bool = False

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.peer.push(data)

    def holding(self, agent_id: str) -> Identity:
        ident = self.identities.get(agent_id)
        if ident is None:
            raise Ag2Error(r.ACCESS_DENIED, f"agent {agent_id!r} is not bound to this connection")
        return ident


Translate = Callable[[Any], Any]


class Ag2Endpoint:
    """Serves ag2's frames for a `Hub` (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: dict[str, tuple[Session, str, Translate]] = {}  # native request_id -> where the answer goes
        # ag2 knobs and labels of the channels ag2 clients created (agentnet's channels have no place for them)
        self.channel_extras: OrderedDict[str, tuple[dict[str, Any], dict[str, str]]] = OrderedDict()

    @property
    def core(self) -> Any:
        return self.hub.core  # the hub may rebuild its core after a store failure

    # ------------------------------------------------------------------ connections

    def open(self, conn: int, peer: Peer) -> Session:
        return Session(self, conn, peer)

    def closed(self, session: Session, code: int, reason: str) -> None:
        session.closed = True
        for ident in list(session.identities.values()):
            self._drop(ident, code, reason)
        # Its requests still waiting for a commit: their answers (if they come) have nowhere to go,
        # and after a failed commit they never come.
        for native_id in [k for k, (to, _, _) in self.pending.items() if to is session]:
            del self.pending[native_id]

    def _drop(self, ident: Identity, code: int, reason: str) -> None:
        session = ident.session
        session.identities.pop(ident.agent_id, None)
        if self.hub.peers.get(ident.conn) is ident:
            del self.hub.peers[ident.conn]
        if ident.greeted and self.core is not None:  # None: this hub stepped down; the core is gone
            ident.greeted = False
            self.hub._dispatch(self.core.connection_closed(ident.conn, code, reason, time.monotonic()))

    def identity_closed(self, ident: Identity, code: int, reason: str) -> None:
        """The core closes an identity's session: superseded by a newer one, refused, or dropped."""
        if code == CloseCode.SUPERSEDED or not ident.greeted:
            ident.greeted = False  # the core has detached it already
            ident.session.identities.pop(ident.agent_id, None)
            if self.hub.peers.get(ident.conn) is ident:
                del self.hub.peers[ident.conn]
            return
        # disconnect (an observer or a fault), a store failure: the ag2 client sees its socket close
        ident.session.peer.close(code, reason)

    # ------------------------------------------------------------------ frames in

    def on_message(self, session: Session, data: bytes, text: bool) -> None:
        if session.closed or session.peer.closing:
            return
        try:
            raw = orjson.loads(data) if text else None
        except orjson.JSONDecodeError as exc:
            session.send(_error_frame(r.PROTOCOL_ERROR, f"invalid JSON: {exc}"))
            return
        if not isinstance(raw, dict):
            session.send(_error_frame(r.PROTOCOL_ERROR, "a frame must be a JSON object text message"))
            return
        kind = raw.get("kind")
        try:
            check_value(raw, "frame")  # nesting and integers the store can hold, as for native frames
        except FrameError as exc:
            request_id = raw.get("request_id")
            if kind == "request" and isinstance(request_id, str) and request_id:
                session.send(_error_response(request_id[:128], r.PROTOCOL_ERROR, exc.message))
            else:
                session.send(_error_frame(r.PROTOCOL_ERROR, exc.message))
            return
        try:
            if kind == "request":
                self._request(session, raw)
            elif kind == "receipt":
                self._receipt(session, raw)
            elif kind == "hello":
                self._hello(session, raw)
            elif kind == "ping":
                session.send(_frame("pong"))
            else:
                session.send(_error_frame(r.PROTOCOL_ERROR, f"unknown frame kind {kind!r}"))
        except Exception:  # a hub bug costs one connection, never the hub
            log.exception("ag2 conn %d: internal error; closing it with 1011", session.conn)
            session.peer.close(CloseCode.INTERNAL, "internal error")

    def _request(self, session: Session, raw: dict[str, Any]) -> None:
        request_id = raw.get("request_id")
        try:
            req = r.Request.model_validate(raw)
        except ValidationError as exc:
            message = f"request frame: {describe_validation_error(exc)}"
            if isinstance(request_id, str) and request_id:
                session.send(_error_response(request_id, r.PROTOCOL_ERROR, message))
            else:
                session.send(_error_frame(r.PROTOCOL_ERROR, message))
            return
        op = req.op
        peer, settings = session.peer, self.hub.settings
        if peer.frame_bytes >= settings.outbox_bytes:  # its answers pile up unread: as for native peers
            peer.refused += 1
            if peer.refused > settings.overloaded_close_after:
                peer.drop_queued()
                peer.close(CloseCode.TRY_AGAIN_LATER, "too many unread responses; read them, then retry")
            else:
                message = f"overloaded: {peer.frame_bytes} bytes of responses are waiting to be read; retry later"
                session.send(_error_response(req.request_id, r.ERROR, message))
            return
        peer.refused = 0
        try:
            handler = getattr(self, "_op_" + op, None)
            if handler is None:
                if op in r.TASK_OPS:
                    raise Ag2Error(r.PROTOCOL_ERROR, f"{op}: ag2 task ops are not supported by agentnet's ag2 endpoint")
                raise Ag2Error(r.PROTOCOL_ERROR, f"unknown op {op!r}")
            handler(session, req.request_id, req.params)
        except Ag2Error as exc:
            session.send(_error_response(req.request_id, exc.code, exc.message))

    def _answer(self, session: Session, request_id: str, result: Any) -> None:
        session.send(_response(request_id, result))

    # ------------------------------------------------------------------ the core's side

    def _native(
        self, ident: Identity, op: str, params: dict[str, Any], session: Session, request_id: str, translate: Translate
    ) -> None:
        """Run a native request on the identity's session; its response is translated and sent to ag2."""
        native_id = f"ag2-{next(_ids)}"
        self.pending[native_id] = (session, request_id, translate)
        req = NativeRequest(kind="request", request_id=native_id, op=op, params=params)
        self.hub._dispatch(self.core.request(ident.conn, req, time.monotonic()))

    def from_core(self, ident: Identity, data: bytes) -> None:
        frame = orjson.loads(data)
        kind = frame.get("kind")
        session = ident.session
        if kind == "notify":
            env = frame["envelope"]
            ident.delivered[env["envelope_id"]] = env["seq"]
            ident.delivered.move_to_end(env["envelope_id"])
            if len(ident.delivered) > DELIVERED_MEMORY:
                ident.delivered.popitem(last=False)
            out = _frame("notify", envelope=self.envelope_out(env), recipient_id=ident.agent_id)
            if ident.hold is not None:
                ident.hold.append(out)
            else:
                session.send(out)
        elif kind == "response":
            entry = self.pending.pop(frame["request_id"], None)
            if entry is None:
                return
            to, request_id, translate = entry
            if frame.get("ok"):
                try:
                    result = translate(frame.get("result"))
                except Ag2Error as exc:
                    to.send(_error_response(request_id, exc.code, exc.message))
                    return
                if request_id:
                    to.send(_response(request_id, result))
            elif request_id:
                code = r.NATIVE_TO_AG2.get(frame.get("error_code", ""), r.ERROR)
                to.send(_error_response(request_id, code, frame.get("error_message", "")))
        elif kind == "welcome":
            ident.agent_id = frame["agent_id"]
            ident.greeted = True
        elif kind == "error":
            ident.hello_error = (frame.get("code", ""), frame.get("message", ""))

    # ------------------------------------------------------------------ identities

    def _check_auth(self, name: str, scheme: str, claim: Any) -> str | None:
        auth = self.hub.auth
        if not auth.enabled:
            return None
        if scheme != "api_key":
            return f"this hub requires the api_key auth scheme, not {scheme!r}"
        token = claim.get("token") if isinstance(claim, dict) else None
        if not isinstance(token, str) or not token:
            return "api_key auth needs claim {'token': ...}"
        return auth.check(token, name, "agent")

    def _bind(self, session: Session, name: str, *, hold: bool) -> Identity:
        """A core session for `name` on a new virtual connection (the core's hello: replay included)."""
        try:
            hello = NativeHello(kind="hello", name=name, role="agent", client="ag2")
        except ValidationError:
            raise Ag2Error(
                r.PROTOCOL_ERROR,
                f"agent name {name!r} is not allowed on agentnet (lowercase letters, digits, '_', '.', '-'; "
                f"1-64, pattern {NAME_PATTERN})",
            ) from None
        self.hub._next_conn += 1
        ident = Identity(session, self.hub._next_conn, name, hold=[] if hold else None)
        self.hub.peers[ident.conn] = ident  # type: ignore[assignment]
        self.hub._dispatch(self.core.hello(ident.conn, hello, time.monotonic()))
        if not ident.greeted:
            self.hub.peers.pop(ident.conn, None)
            code, message = ident.hello_error or ("", f"the hub refused {name!r}")
            raise Ag2Error(r.NATIVE_TO_AG2.get(code, r.PROTOCOL_ERROR), message)
        stale = session.identities.get(ident.agent_id)
        if stale is not None and stale is not ident:  # the same name bound twice on one socket
            stale.greeted = False
            self.hub.peers.pop(stale.conn, None)
        session.identities[ident.agent_id] = ident
        return ident

    def _release(self, ident: Identity) -> None:
        held, ident.hold = ident.hold or [], None
        for data in held:
            ident.session.send(data)

    def _native_passport(self, agent: AgentRecord | None, blob: dict[str, Any]) -> dict[str, Any]:
        resume = blob.get("resume") or {}
        caps = [c for c in resume.get("claimed_capabilities", []) if isinstance(c, str) and len(c) <= 128][:64]
        summary = resume.get("summary")
        meta: dict[str, Any] = {"via": VIA, "ag2": blob}
        if agent is not None:
            for key, value in agent.passport.get("meta", {}).items():
                meta.setdefault(key, value)
        return {
            "description": summary[:4000] if isinstance(summary, str) and summary else None,
            "capabilities": caps,
            "meta": meta,
        }

    def _register_native(
        self, ident: Identity, blob: dict[str, Any], session: Session, request_id: str, translate: Translate
    ) -> None:
        passport = self._native_passport(self.core.agents.get(ident.name), blob)
        self._native(ident, "register", {"passport": passport}, session, request_id, translate)

    def _op_register(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.RegisterParams, params, "register")
        name = p.passport.get("name")
        if not isinstance(name, str) or not name:
            raise Ag2Error(r.PROTOCOL_ERROR, "register: passport.name is required")
        auth = p.passport.get("auth") if isinstance(p.passport.get("auth"), dict) else {}
        problem = self._check_auth(name, auth.get("scheme", "none"), auth.get("claim"))
        if problem:
            raise Ag2Error(r.AUTH_FAILED, problem)
        known = self.core.agents.get(name)
        if known is not None and known.conn is not None:
            raise Ag2Error(r.PROTOCOL_ERROR, f"agent name {name!r} is already registered and connected")
        ident = self._bind(session, name, hold=True)
        agent = self.core.agents[name]
        passport = r.public_passport(p.passport)
        passport["agent_id"], passport["created_at"] = agent.agent_id, agent.registered_at
        blob = {
            "passport": passport,
            "resume": r.template(r.RESUME, p.resume),
            "rule": p.rule if p.rule is not None else r.template(r.RULE, None),
            "skill_md": p.skill_md,
        }
        registered: list[bool] = []

        def done(_result: Any) -> dict[str, Any]:
            registered.append(True)
            return passport

        self._register_native(ident, blob, session, request_id, done)  # answered at once (not after a commit)
        if not registered:  # the core refused the passport (its error is the answer): unbind the name again
            self._drop(ident, 1000, "register refused")
            return
        self._release(ident)

    def _hello(self, session: Session, raw: dict[str, Any]) -> None:
        try:
            hello = r.Hello.model_validate(raw)
        except ValidationError as exc:
            session.send(_error_frame(r.PROTOCOL_ERROR, f"hello frame: {describe_validation_error(exc)}"))
            return
        problem = self._check_auth(hello.name, hello.auth_scheme, hello.auth_claim)
        if problem:
            session.send(_error_frame(r.AUTH_FAILED, problem))
            return
        agent = self.core.agents.get(hello.name)
        if agent is None or agent.role != "agent":
            session.send(_error_frame(r.NOT_FOUND, f"no agent named {hello.name!r}; register it first"))
            return
        # Every since_envelope_id ("" / None / an id) gets the same: what this agent has not acked, in
        # seq order per channel, then everything new (agentnet keeps no high-water mark to skip past).
        welcome = _frame("welcome", endpoint_id=f"ag2-conn-{session.conn}", hub_time=ids.utc_iso())
        held = session.identities.get(agent.agent_id)
        if held is not None and held.greeted:
            session.send(welcome)
            return
        try:
            ident = self._bind(session, hello.name, hold=True)  # the replay waits behind the welcome
        except Ag2Error as exc:
            session.send(_error_frame(exc.code, exc.message))
            return
        session.send(welcome)
        blob = self._blob(self.core.agents[hello.name])
        self._register_native(ident, blob, session, "", lambda _result: None)  # readiness: agent.registered
        self._release(ident)

    # ------------------------------------------------------------------ registry reads

    def _blob(self, agent: AgentRecord) -> dict[str, Any]:
        """The ag2 records of an agent: as registered through ag2, or made up for a native agent."""
        meta = agent.passport.get("meta") if isinstance(agent.passport, dict) else None
        blob = meta.get("ag2") if isinstance(meta, dict) else None
        if isinstance(blob, dict):
            return blob
        passport = r.template(r.PASSPORT, {"name": agent.name, "kind": "agent"})
        passport["agent_id"], passport["created_at"] = agent.agent_id, agent.registered_at
        resume = r.template(r.RESUME, None)
        resume["claimed_capabilities"] = list(agent.passport.get("capabilities") or [])
        resume["summary"] = agent.passport.get("description") or ""
        return {"passport": passport, "resume": resume, "rule": r.template(r.RULE, None), "skill_md": None}

    def _agent(self, name_or_id: str) -> AgentRecord:
        agent = self.core.agents.get(name_or_id) or self._by_id(name_or_id)
        if agent is None or agent.role != "agent":
            raise Ag2Error(r.NOT_FOUND, f"unknown agent: {name_or_id!r}")
        return agent

    def _by_id(self, agent_id: str) -> AgentRecord | None:
        for agent in self.core.agents.values():
            if agent.agent_id == agent_id:
                return agent
        return None

    def _id_of(self, name: str) -> str:
        agent = self.core.agents.get(name)
        return agent.agent_id if agent is not None else name

    def _op_get_agent(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.NameOrId, params, "get_agent")
        self._answer(session, request_id, self._blob(self._agent(p.name_or_id))["passport"])

    def _op_find_agent_id(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.FindAgentId, params, "find_agent_id")
        agent = self.core.agents.get(p.name)
        self._answer(session, request_id, agent.agent_id if agent is not None and agent.role == "agent" else None)

    def _op_names_for(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.NamesFor, params, "names_for")
        wanted = set(p.agent_ids)
        self._answer(
            session, request_id, {a.agent_id: a.name for a in self.core.agents.values() if a.agent_id in wanted}
        )

    def _op_get_resume(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.AgentId, params, "get_resume")
        self._answer(session, request_id, self._blob(self._agent(p.agent_id))["resume"])

    def _op_get_rule(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.AgentId, params, "get_rule")
        self._answer(session, request_id, self._blob(self._agent(p.agent_id))["rule"])

    def _op_get_skill(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.AgentId, params, "get_skill")
        self._answer(session, request_id, self._blob(self._agent(p.agent_id)).get("skill_md"))

    def _op_list_agents(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.ListAgents, params, "list_agents")
        out: list[dict[str, Any]] = []
        size = 2
        for agent in self.core.agents.values():
            if agent.role != "agent":
                continue
            blob = self._blob(agent)
            if p.capability and p.capability not in blob["resume"].get("claimed_capabilities", []):
                continue
            if p.kind and (blob["passport"].get("kind") or "agent") != p.kind:
                continue
            if p.query and p.query.lower() not in (agent.name + " " + str(blob["resume"].get("summary", ""))).lower():
                continue
            size += len(orjson.dumps(blob["passport"])) + 1
            if size > LIST_BUDGET or len(out) >= p.limit:
                break
            out.append(blob["passport"])
        self._answer(session, request_id, out)

    def _update_blob(self, session: Session, request_id: str, agent_id: str, key: str, value: Any) -> None:
        ident = session.holding(agent_id)
        blob = dict(self._blob(self.core.agents[ident.name]))
        blob[key] = value
        self._register_native(ident, blob, session, request_id, lambda _result: None)

    def _op_set_resume(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.SetResume, params, "set_resume")
        resume = r.template(r.RESUME, p.resume) | {"last_updated": ids.utc_iso()}
        self._update_blob(session, request_id, p.agent_id, "resume", resume)

    def _op_set_skill(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.SetSkill, params, "set_skill")
        self._update_blob(session, request_id, p.agent_id, "skill_md", p.skill_md)

    def _op_set_rule(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.SetRule, params, "set_rule")
        self._update_blob(session, request_id, p.agent_id, "rule", p.rule)

    def _op_unregister(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        """The identity leaves this connection; agentnet keeps it in the registry (names are durable)."""
        p = _params(r.AgentId, params, "unregister")
        ident = session.holding(p.agent_id)
        self._drop(ident, 1000, "unregistered")
        self._answer(session, request_id, None)

    # ------------------------------------------------------------------ channels

    def _channel(self, channel_id: str) -> ChannelRecord:
        ch = self.core.channel(channel_id)
        if ch is None:
            raise Ag2Error(r.NOT_FOUND, f"unknown channel: {channel_id!r}")
        return ch

    def _participant(self, session: Session, ch: ChannelRecord) -> Identity:
        """An identity of this connection that takes part in the channel."""
        for ident in session.identities.values():
            if ident.name in ch.participants:
                return ident
        raise Ag2Error(r.ACCESS_DENIED, f"no agent bound to this connection is a participant of {ch.channel_id}")

    def metadata_out(self, info: dict[str, Any]) -> dict[str, Any]:
        """A native channel object as ag2's ChannelMetadata."""
        ctype = info["type"]
        creator = info["creator"]
        pair = ctype in ("consulting", "conversation")
        participants = [
            {
                "agent_id": self._id_of(name),
                "role": "initiator" if name == creator else ("respondent" if pair else "participant"),
                "order": i,
                "joined_at": info["created_at"],
            }
            for i, name in enumerate(info["participants"])
        ]
        knobs, labels = self.channel_extras.get(info["channel_id"], ({}, {}))
        closed = info["state"] == "closed"
        return {
            "channel_id": info["channel_id"],
            "manifest": r.manifest(ctype),
            "creator_id": self._id_of(creator),
            "participants": participants,
            "state": "closed" if closed else "active",
            "created_at": info["created_at"],
            "expires_at": None,
            "closed_at": info.get("closed_at") if closed else None,
            "close_reason": (info.get("close_reason") or "") if closed else "",
            "parent_channel_id": None,
            "knobs": dict(knobs),
            "labels": dict(labels),
            "required_acks": None,
            "pending_acks": [],
            "rejected_by": [],
        }

    def _op_create_channel(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.CreateChannel, params, "create_channel")
        creator = session.holding(p.creator_id)
        ctype = p.manifest_type
        if ctype == "workflow":
            raise Ag2Error(
                r.PROTOCOL_ERROR,
                "workflow channels are not supported by agentnet's ag2 endpoint (their TransitionGraph runs in "
                "ag2's own hub); use consulting, conversation or discussion",
            )
        if ctype not in r.MANIFESTS or p.manifest_version != 1:
            raise Ag2Error(r.NOT_FOUND, f"no adapter registered for {ctype!r}@v{p.manifest_version}")
        others: list[str] = []
        for agent_id in p.participants:
            agent = self._by_id(agent_id) or self.core.agents.get(agent_id)
            if agent is None:
                raise Ag2Error(r.NOT_FOUND, f"unknown participant: {agent_id!r}")
            if agent.name != creator.name and agent.name not in others:
                others.append(agent.name)
        knobs_in = dict(p.knobs or {})
        native_knobs: dict[str, Any] = {}
        if ctype in ("consulting", "conversation") and len(others) != 1:
            raise Ag2Error(r.PROTOCOL_ERROR, f"{ctype} requires exactly 2 participants, got {len(others) + 1}")
        if not others:
            raise Ag2Error(r.PROTOCOL_ERROR, f"{ctype} requires at least 2 participants")
        if ctype == "conversation":
            native_knobs["max_turns"] = CONVERSATION_TURNS
        elif ctype == "discussion":
            ordering = knobs_in.get("ordering", "round_robin")
            if ordering != "round_robin":
                raise Ag2Error(
                    r.PROTOCOL_ERROR,
                    f"discussion knobs.ordering={ordering!r} not supported; choose from ['round_robin']",
                )
            native_knobs["rounds"] = CONVERSATION_TURNS
        labels = dict(p.labels or {})
        if p.intent:
            labels["intent"] = p.intent
        params_out = {"type": ctype, "participants": others, "topic": p.intent, "knobs": native_knobs}

        def done(info: dict[str, Any]) -> dict[str, Any]:
            self.channel_extras[info["channel_id"]] = (knobs_in, labels)
            if len(self.channel_extras) > CHANNEL_EXTRAS:
                self.channel_extras.popitem(last=False)
            return self.metadata_out(info)

        self._native(creator, "open_channel", params_out, session, request_id, done)

    def _op_get_channel(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.ChannelId, params, "get_channel")
        ch = self._channel(p.channel_id)
        self._participant(session, ch)
        self._answer(session, request_id, self.metadata_out(ch.info()))

    def _op_list_channels(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.ListChannels, params, "list_channels")
        names = {session.holding(p.agent_id).name} if p.agent_id else {i.name for i in session.identities.values()}
        out: list[dict[str, Any]] = []
        size = 2
        for ch in self.core.channels.values():  # resident channels: open ones and recently closed
            if names.intersection(ch.participants):
                meta = self.metadata_out(ch.info())
                size += len(orjson.dumps(meta)) + 1
                if size > LIST_BUDGET or len(out) >= p.limit:
                    break
                out.append(meta)
        self._answer(session, request_id, out)

    def _op_close_channel(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.CloseChannel, params, "close_channel")
        ident = self._participant(session, self._channel(p.channel_id))
        native = {"channel_id": p.channel_id, "reason": p.reason or None}
        self._native(ident, "close_channel", native, session, request_id, self.metadata_out)

    def _op_post_envelope(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.PostEnvelope, params, "post_envelope")
        env = p.envelope
        ident = session.holding(env.sender_id)
        etype = env.event_type
        if etype in (r.EV_INVITE_ACK, r.EV_INVITE_REJECT):
            # agentnet opens channels at once (no invite round): an invite answer has nothing to answer
            self._answer(session, request_id, "")
            return
        if etype.startswith("ag2.channel."):
            raise Ag2Error(r.ACCESS_DENIED, f"{etype} envelopes are the hub's to send")
        ch = self._channel(env.channel_id)
        native_type = "text" if etype == r.EV_TEXT else etype
        data = dict(env.event_data)
        extras = {k: getattr(env, k) for k in r.ENVELOPE_EXTRAS if getattr(env, k) != r.ENVELOPE_DEFAULTS[k]}
        idem = env.idempotency_key
        if idem is not None and not _native_id(idem):
            extras["idempotency_key"], idem = idem, None
        if extras:
            data[r.EXTRA_KEY] = extras
        audience = None
        if env.audience is not None:
            audience = []
            for agent_id in env.audience:
                agent = self._by_id(agent_id)
                if agent is None:
                    raise Ag2Error(r.PROTOCOL_ERROR, f"audience names an unknown agent: {agent_id!r}")
                if agent.name != ident.name:
                    audience.append(agent.name)
            audience = audience or None
        causation = env.causation_id
        if causation is None and native_type == "text" and ch.type == "consulting" and ident.name != ch.creator:
            causation = ch.rule_state.get("question_id")  # ag2's reply needs no causation; agentnet's does
        native = {
            "channel_id": ch.channel_id,
            "type": native_type,
            "data": data,
            "audience": audience,
            "causation_id": causation,
            "idempotency_key": idem,
        }
        self._native(ident, "post", native, session, request_id, lambda result: result["envelope_id"])

    def _op_read_wal(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        """ag2 reads `wal[since:until]` (list indices); agentnet answers with the newest part of that slice
        that fits READ_WAL_BUDGET, so a response never exceeds the client's 1 MiB frame limit."""
        p = _params(r.ReadWal, params, "read_wal")
        ch = self._channel(p.channel_id)
        self._participant(session, ch)
        seqs = range(1, ch.committed_seq + 1)[p.since : p.until]
        out: list[bytes] = []
        size, end, full = 2, len(seqs), False
        while end > 0 and not full:  # newest first, a page of the store at a time
            start = max(0, end - 256)
            page = seqs[start:end]
            for rec in reversed(self.core.envelopes_between(ch.channel_id, page[0], page[-1])):
                encoded = orjson.dumps(self.envelope_out(orjson.loads(rec.json), ch))
                if out and size + len(encoded) + 1 > READ_WAL_BUDGET:
                    full = True
                    break
                out.append(encoded)
                size += len(encoded) + 1
            end = start
        out.reverse()
        self._answer(session, request_id, [orjson.Fragment(e) for e in out])

    def _op_find_envelope_by_causation(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.FindByCausation, params, "find_envelope_by_causation")
        ch = self._channel(p.channel_id)
        ident = self._participant(session, ch)
        sender = self._by_id(p.sender_id)
        if sender is None or not _native_id(p.causation_id):
            self._answer(session, request_id, None)
            return
        native = {"channel_id": ch.channel_id, "causation_id": p.causation_id, "sender": sender.name}

        def found(result: dict[str, Any]) -> Any:
            env = result.get("envelope")
            return self.envelope_out(env) if env is not None else None

        self._native(ident, "find_by_causation", native, session, request_id, found)

    def _op_can_send(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.CanSend, params, "can_send")
        ident = session.holding(p.sender_id)
        ch = self._channel(p.channel_id)
        self._answer(session, request_id, self._may_post(ch, ident.name, p.event_type))

    @staticmethod
    def _may_post(ch: ChannelRecord, name: str, event_type: str | None) -> bool:
        if ch.state != "open" or name not in ch.participants:
            return False
        native_type = "text" if event_type in (None, r.EV_TEXT) else event_type
        causation = None
        if ch.type == "consulting" and name != ch.creator:
            causation = ch.rule_state.get("question_id")
        try:
            rules.check_post(ch, name, native_type, causation)
        except ProtocolError:
            return False
        return True

    def _op_pending_turns_for(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.AgentId, params, "pending_turns_for")
        ident = session.holding(p.agent_id)
        out = []
        for channel_id in list(self.core.cursors.get(ident.name, {}))[:10_000]:
            ch = self.core.channel(channel_id)
            if ch is None:
                continue
            seq = rules.owed_turn(ch, ident.name)
            if seq is None or seq > ch.committed_seq:
                continue
            rec = self.core.envelope_at(channel_id, seq)
            out.append(
                {
                    "channel_id": channel_id,
                    "triggering_envelope_id": rec.envelope_id if rec else None,
                    "expected_at": rec.created_at if rec else ids.utc_iso(),
                }
            )
        self._answer(session, request_id, out)

    def _op_report_turn_failure(self, session: Session, request_id: str, params: dict[str, Any]) -> None:
        p = _params(r.ReportTurnFailure, params, "report_turn_failure")
        ident = session.holding(p.agent_id)
        log.warning(
            "ag2 agent %s: turn failed on %s in %s: %s", ident.name, p.envelope_id, p.channel_id, (p.error or "")[:300]
        )
        self._answer(session, request_id, None)

    # ------------------------------------------------------------------ receipts

    def _receipt(self, session: Session, raw: dict[str, Any]) -> None:
        try:
            rec = r.Receipt.model_validate(raw)
        except ValidationError as exc:
            session.send(_error_frame(r.PROTOCOL_ERROR, f"receipt frame: {describe_validation_error(exc)}"))
            return
        ident = session.identities.get(rec.recipient_id)
        if ident is None:
            message = f"receipt for {rec.envelope_id}: agent {rec.recipient_id!r} is not bound to this connection"
            session.send(_error_frame(r.ACCESS_DENIED, message, rec.envelope_id))
            return
        seq = ident.delivered.get(rec.envelope_id)
        if seq is None:
            message = f"receipt for {rec.envelope_id}: it was not delivered to {ident.name}"
            session.send(_error_frame(r.NOT_FOUND, message, rec.envelope_id))
            ignored = events.ReceiptIgnored(ident.name, rec.channel_id, 0, rec.envelope_id, "not delivered")
            self.hub.feed.publish(ignored)
            return
        native = NativeReceipt(
            kind="receipt",
            channel_id=rec.channel_id,
            seq=seq,
            envelope_id=rec.envelope_id,
            status=rec.status,
            reason=rec.reason[:1000].replace("\x00", "\ufffd") or None,  # stored as text: no NUL
        )
        self.hub._dispatch(self.core.receipt(ident.conn, native, time.monotonic()))

    # ------------------------------------------------------------------ envelopes

    def envelope_out(self, env: dict[str, Any], ch: ChannelRecord | None = None) -> dict[str, Any]:
        """A native envelope (dict) as ag2's Envelope record (`ch`: its channel, if the caller has it)."""
        data = env.get("data")
        data = dict(data) if isinstance(data, dict) else {}
        extras = data.pop(r.EXTRA_KEY, None)
        channel_id = env["channel_id"]
        etype = env["type"]
        sender = env["sender"]
        if sender == HUB_SENDER:
            ch = ch if ch is not None and ch.channel_id == channel_id else self.core.channel(channel_id)
            sender = ch.creator if ch is not None else sender
        if etype == "text":
            etype = r.EV_TEXT
        elif etype == "channel.opened":
            etype, data = r.EV_OPENED, {"channel_id": channel_id}
        elif etype == "channel.closed":
            etype, data = r.EV_CLOSED, {"reason": data.get("reason", ""), "channel_id": channel_id}
        out = dict(r.ENVELOPE_DEFAULTS)
        audience = env.get("audience")
        out.update(
            channel_id=channel_id,
            sender_id=self._id_of(sender),
            audience=[self._id_of(n) for n in audience] if audience is not None else None,
            event_type=etype,
            event_data=data,
            envelope_id=env["envelope_id"],
            causation_id=env.get("causation_id"),
            idempotency_key=env.get("idempotency_key"),
            created_at=env.get("created_at", ""),
        )
        if isinstance(extras, dict):
            for key in (*r.ENVELOPE_EXTRAS, "idempotency_key"):
                if key in extras:
                    out[key] = extras[key]
        return out


def _native_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "_.:-" for c in value) and value.isascii()
