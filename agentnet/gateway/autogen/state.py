"""The gateway's state and its pure helpers: workers, agent types, pending calls, subscription keys,
and how AutoGen names and messages map to agentnet's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentnet.client.connection import HubClient

from .protos import agent_worker_pb2 as pb

log = logging.getLogger("agentnet.gateway.autogen")


READABLE_LIMIT = 2000  # characters of a JSON payload copied into the envelope's readable `text`


_NAME_OK = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def identity_for(agent_type: str) -> str:
    """The agentnet name of an AutoGen agent type: `ag-<type>` when that is a valid name, else a
    slug plus a hash of the exact type (so two types never share an identity)."""
    plain = "ag-" + agent_type
    if _NAME_OK.match(plain):
        return plain
    slug = re.sub(r"[^a-z0-9_.-]+", "-", agent_type.lower()).strip("-._")[:48]
    digest = hashlib.sha1(agent_type.encode()).hexdigest()[:8]
    return f"ag-{slug}-{digest}" if slug else f"ag-{digest}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _readable(data_type: str, content_type: str, data: bytes) -> str:
    if content_type.endswith("json"):
        try:
            text = data[: READABLE_LIMIT + 1].decode()
        except UnicodeDecodeError:
            text = f"<{len(data)} bytes>"
        if len(data) > READABLE_LIMIT:
            text = text[:READABLE_LIMIT] + f"... ({len(data)} bytes)"
        return f"{data_type} {text}"
    return f"{data_type} <{len(data)} bytes of {content_type or 'data'}>"


def request_data(msg: pb.Message, caller: str, caller_request_id: str, deadline: float) -> dict[str, Any]:
    """An `ag.rpc.request` envelope's data: the message (its request id the gateway's), readable."""
    req = msg.request
    payload = req.payload
    data: dict[str, Any] = {
        "text": _readable(payload.data_type, payload.data_content_type, payload.data),
        "request_id": req.request_id,
        "caller": caller,
        "caller_request_id": caller_request_id,
        "target": {"type": req.target.type, "key": req.target.key},
        "expires_at": time.time() + deadline,
        "pb": _b64(msg.SerializeToString()),
    }
    if req.HasField("source"):
        data["source"] = {"type": req.source.type, "key": req.source.key}
    return data


def response_data(resp: pb.RpcResponse, gw_id: str, stored: str | None) -> dict[str, Any]:
    """An `ag.rpc.response` record's data (`stored`: the message as the worker sent it, base64)."""
    payload = resp.payload
    data: dict[str, Any] = {
        "text": ("error: " + resp.error[:500])
        if resp.error
        else _readable(payload.data_type, payload.data_content_type, payload.data),
        "request_id": gw_id,
        "pb": stored,
    }
    if resp.error:
        data["error"] = resp.error[:2000]
    return data


def event_data(msg: pb.Message, recipients: list[str]) -> dict[str, Any]:
    """An `ag.event` envelope's data: the CloudEvent, its topic and the types it is stored for."""
    ev = msg.cloudEvent
    attrs = ev.attributes
    schema = attrs["dataschema"].ce_string if "dataschema" in attrs else ""
    content = attrs["datacontenttype"].ce_string if "datacontenttype" in attrs else ""
    body = ev.binary_data if ev.WhichOneof("data") == "binary_data" else ev.text_data.encode()
    data: dict[str, Any] = {
        "text": _readable(schema, content, body),
        "event_id": ev.id,
        "topic": {"type": ev.type, "source": ev.source},
        "recipients": recipients,
        "pb": _b64(msg.SerializeToString()),
    }
    if "agagentsendertype" in attrs:
        data["sender"] = {
            "type": attrs["agagentsendertype"].ce_string,
            "key": attrs["agagentsenderkey"].ce_string if "agagentsenderkey" in attrs else "",
        }
    return data


def message_from(data: dict[str, Any]) -> pb.Message:
    """The protobuf message an `ag.*` envelope carries (stored losslessly as base64)."""
    return pb.Message.FromString(base64.b64decode(data["pb"]))


WORKER_CLOSED = "its worker closed its gRPC stream"


class GatewayError(Exception):
    """The gateway cannot start (its port, another gateway on its hub): one line for the user."""


@dataclass(eq=False, slots=True)
class Fan:
    """One event as a worker got it: the types it fanned it out to, and the other types' copies,
    acked once this one is on the worker's stream (before that, a crash loses it for them too)."""

    types: frozenset[str]
    written: bool = False
    copies: list[tuple[Any, dict]] = field(default_factory=list)  # (hub client, envelope) to ack


@dataclass(eq=False)
class Worker:
    """One `GrpcWorkerAgentRuntime` connection (its `client-id`), with its stream's writer."""

    client_id: str
    context: Any
    deadline: float
    identity: str = ""
    default_identity: str = ""  # agw-<its client id>: its name when it asks for none, or for one that is taken
    client: Any = None  # the worker's own hub identity (shown in the dashboard while it is connected)
    types: set[str] = field(default_factory=set)
    # subscriptions this worker has added in its session and holds locally by now (see SUBSCRIPTION_SETTLE),
    # and those whose AddSubscription has returned but which it may not hold yet
    subs: set[tuple[str, str, str]] = field(default_factory=set)
    settling: set[tuple[str, str, str]] = field(default_factory=set)
    # event id -> how this worker got it (an event is stored once per recipient type; the worker fans
    # the one copy it gets out to all its types subscribed to the topic)
    fanned: OrderedDict[str, Fan] = field(default_factory=OrderedDict)
    out: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = True
    gone: str = WORKER_CLOSED  # why its identities' hub sessions end: the dashboard shows it

    def send(self, msg: pb.Message, written: Callable[[], None] | None = None) -> None:
        if self.alive:
            self.out.append((msg, written))
            self.wake.set()


@dataclass(eq=False)
class TypeState:
    """An AutoGen agent type: its identity, inbox, owner (a live worker or None) and hub connection."""

    name: str
    identity: str
    channel_id: str
    owner: Worker | None = None
    client: HubClient | None = None
    # deliveries held, in the hub's order: until the owner has registered the type locally (release),
    # and behind an event whose topic the owner has not subscribed this type to yet (waiting)
    held: list[dict] | None = None
    release: asyncio.TimerHandle | None = None
    waiting: asyncio.TimerHandle | None = None  # gives up on the held event's subscription (_give_up)
    settle_by: float | None = None  # loop time: the latest release once the owner registered it locally
    wait_until: float | None = None  # loop time: the owner's last chance to subscribe (SUBSCRIPTION_WAIT)
    dropped_topics: set[str] = field(default_factory=set)  # events dropped for want of one (logged once)
    # gateway request id -> the request's envelope, as handed to the worker (None: handed on while its
    # commit was in flight, before the hub's notify brought the envelope)
    forwarded: dict[str, dict | None] = field(default_factory=dict)
    answered: dict[str, dict] = field(default_factory=dict)  # responses to those, waiting for the envelope
    queued: int = 0  # requests and events for this type read but not yet posted (none: it may be idle)


@dataclass(eq=False, slots=True)
class Call:
    caller: Worker
    caller_request_id: str
    target: str
    expires: float
    durable: bool = False  # the request is stored: a response may go to the caller
    held: pb.Message | None = None  # a response that came first, released once the request is stored
    request: pb.Message | None = None  # the request as read (the hub's notify need not be decoded again)


SubKey = tuple[str, str, str]  # ("type" | "prefix", topic type or prefix, agent type)


def subscribes(key: SubKey, topic_type: str, agent_type: str) -> bool:
    """Whether subscription `key` sends events of `topic_type` to `agent_type` (AutoGen's
    TypeSubscription: the same topic type; TypePrefixSubscription: a topic type with the prefix)."""
    kind, topic, subscriber = key
    return subscriber == agent_type and (topic == topic_type if kind == "type" else topic_type.startswith(topic))


def _sub_key(sub: pb.Subscription) -> SubKey:
    kind = sub.WhichOneof("subscription")
    if kind == "typeSubscription":
        return ("type", sub.typeSubscription.topic_type, sub.typeSubscription.agent_type)
    if kind == "typePrefixSubscription":
        return ("prefix", sub.typePrefixSubscription.topic_type_prefix, sub.typePrefixSubscription.agent_type)
    raise ValueError("the subscription has neither typeSubscription nor typePrefixSubscription")


def _sub_proto(sub_id: str, key: SubKey) -> pb.Subscription:
    kind, topic, agent_type = key
    if kind == "type":
        return pb.Subscription(id=sub_id, typeSubscription=pb.TypeSubscription(topic_type=topic, agent_type=agent_type))
    return pb.Subscription(
        id=sub_id, typePrefixSubscription=pb.TypePrefixSubscription(topic_type_prefix=topic, agent_type=agent_type)
    )
