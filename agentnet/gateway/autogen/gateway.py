"""The AutoGen gateway: the host side of AutoGen 0.7.5's gRPC worker protocol, backed by a hub.

Unmodified `GrpcWorkerAgentRuntime` workers connect here instead of to AutoGen's
`GrpcWorkerAgentRuntimeHost` (`host_address` is the only change). Every RPC request, RPC
response and published CloudEvent becomes an envelope in the hub's WAL:

* each AutoGen agent type `T` is an agentnet identity (`identity_for(T)`, e.g. `ag-echo`) with an
  inbox channel (`conversation` between `autogen-gw` and the type) in which requests
  (`ag.rpc.request`) and events (`ag.event`) wait until a worker that registers `T` takes them;
* the gateway holds one hub connection per type while a worker owns it (as that identity: the
  hub delivers the type's backlog to it and redelivers what was not acked); when the worker
  goes, the connection closes and the hub keeps the rest;
* subscriptions belong to the type and live in a registry channel (`ag.type`, `ag.subscribe`,
  `ag.unsubscribe` envelopes), so they survive worker and gateway restarts.

This module serves the gRPC side and routes what workers send; identities.py holds the hub
identities, deliveries.py hands what the hub delivers for each type to its worker, state.py the
records and pure helpers.

Hot path: a message read from a worker's stream is handled in the read loop (no task per message);
hub requests are queued with `HubClient.request_nowait` (everything queued in one loop turn goes
out in one WebSocket write) and finish in callbacks; each worker's stream has one writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agentnet.client.connection import HubClient, HubError

from .deliveries import InboxDeliveries
from .identities import HubIdentities
from .protos import agent_worker_pb2 as pb
from .protos import agent_worker_pb2_grpc as pb_grpc
from .state import (
    WORKER_CLOSED,
    Call,
    GatewayError,
    SubKey,
    TypeState,
    Worker,
    _b64,
    _sub_key,
    _sub_proto,
    event_data,
    identity_for,
    request_data,
    response_data,
    subscribes,
)

log = logging.getLogger("agentnet.gateway.autogen")

GATEWAY_NAME = "autogen-gw"
REGISTRY_NAME = "autogen-registry"
REGISTRY_TOPIC = "autogen registry"
INBOX_TOPIC = "autogen inbox: "
AUTOGEN_VERSION = "0.7.5"
DEADLINE_HINT = re.compile(r"agentnet-rpc-deadline[=/]([0-9.]+)")
WORKER_HINT = re.compile(r"agentnet-worker[=/]([a-z0-9][a-z0-9_.-]{0,63})")
SUBSCRIPTION_SETTLE = 0.05  # s after AddSubscription returns: the worker has added it locally by then
RELEASE_FALLBACK = 1.0  # s after RegisterAgent when no `T:` subscription comes (register_agent_instance)


def _inbox_topic(agent_type: str) -> str:
    """A type's inbox channel's topic (for people: the gateway finds inboxes through its registry),
    within the hub's 1,000 characters however long the type."""
    topic = INBOX_TOPIC + agent_type
    return topic if len(topic) <= 1000 else topic[:999] + "…"


def _status(exc: HubError) -> grpc.StatusCode:
    """The gRPC status for a hub's refusal: INVALID_ARGUMENT for what no retry changes (the worker's
    request itself), UNAVAILABLE for the rest (a retry may work)."""
    return grpc.StatusCode.INVALID_ARGUMENT if exc.code in ("invalid", "too_large") else grpc.StatusCode.UNAVAILABLE


def _post(client: Any, callback: Callable[[Any], None], **params: Any) -> None:
    """Post; `callback` gets the answer as a done Future (or, in the hub's process, an `Outcome`
    that reads the same, without a Future or an extra loop turn)."""
    then = getattr(client, "request_then", None)
    if then is not None:
        then("post", callback, **params)
    else:
        client.request_nowait("post", **params).add_done_callback(callback)


# --------------------------------------------------------------------------- state


@dataclass
class GatewaySettings:
    hub: str
    host: str = "127.0.0.1"
    port: int = 50051
    token: str | None = None
    rpc_deadline: float = 30.0  # s a caller waits for a response (a worker may ask for less or more)
    log_dir: Path | None = (
        None  # if set: a processed-log per identity (LOG_DIR/NAME/processed.jsonl), for `agentnet check`
    )
    max_message: int = 4 * 1024 * 1024  # gRPC messages, each way (AutoGen's default)


# --------------------------------------------------------------------------- the gateway


class AutogenGateway(HubIdentities, InboxDeliveries, pb_grpc.AgentRpcServicer):
    """`await gw.start()` ... `await gw.stop()`: serves `agents.AgentRpc` on settings.host:port."""

    def __init__(self, settings: GatewaySettings, connect: Callable[[str], Any] | None = None) -> None:
        self.settings = settings
        self._connect = connect  # name -> a client with HubClient's interface (LocalHubClient in the hub process)
        self.boot = f"{int(time.time() * 1000):x}"
        self._ids = itertools.count(1)
        self.workers: dict[str, Worker] = {}
        self.types: dict[str, TypeState] = {}
        self.subs: dict[SubKey, str] = {}  # subscription -> its canonical id
        self.aliases: dict[str, SubKey] = {}  # every id a worker used -> subscription
        self.calls: dict[str, Call] = {}  # gateway request id -> the waiting caller
        self.deadlines: list[tuple[float, str]] = []
        self._recipients: dict[str, list[str]] = {}  # topic type -> recipient agent types (cache)
        self._lock = asyncio.Lock()  # type creation and subscription changes
        self.gw: HubClient | None = None
        self.registry: HubClient | None = None
        self.registry_channel: str | None = None
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None
        self._ticker: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()
        self._watchers: set[asyncio.Task] = set()
        self._taken_back: set[str] = set()
        self.stats = {"requests": 0, "responses": 0, "events": 0, "early": 0}
        self._logs: dict[str, Any] = {}
        self._outbox: list[Callable[[], None]] = []  # see _later

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.gw = self._hub_client(GATEWAY_NAME, takeover=False)
        self.gw.on_frame = self._acker(lambda: self.gw)
        self.registry = self._hub_client(REGISTRY_NAME, takeover=False)
        self.registry.on_frame = self._acker(lambda: self.registry)
        await self._start_own(self.registry)
        await self.registry.request("register", passport=self._passport("the AutoGen gateway's registry"))
        await self._start_own(self.gw)
        await self.gw.request("register", passport=self._passport(f"AutoGen {AUTOGEN_VERSION} gRPC gateway"))
        await self._load_registry()
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.settings.max_message),
                ("grpc.max_send_message_length", self.settings.max_message),
                ("grpc.so_reuseport", 0),
            ]
        )
        pb_grpc.add_AgentRpcServicer_to_server(self, self.server)
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise GatewayError(f"cannot listen on {address}: {exc}") from None
        if not self.port:
            raise GatewayError(f"cannot listen on {address} (in use?)")
        await self.server.start()
        self._ticker = asyncio.create_task(self._expire_calls(), name="autogen-gw-deadlines")

    async def stop(self, grace: float = 2.0) -> None:
        for watch in list(self._watchers):
            watch.cancel()
        if self.server is not None:
            await self.server.stop(grace)
            self._flush_outbox()
            st = self.stats
            log.info(
                "served %d requests (%d handed on while committing), %d responses, %d events",
                st["requests"],
                st["early"],
                st["responses"],
                st["events"],
            )
        if self._ticker is not None:
            self._ticker.cancel()
        for worker in self.workers.values():
            worker.gone = "the gateway stopped"
        for ts in self.types.values():
            if ts.client is not None:
                client, ts.client = ts.client, None
                await client.close("the gateway stopped")
        for task in list(self._closers):
            with contextlib.suppress(Exception):
                await task
        for worker in list(self.workers.values()):
            if worker.client is not None:
                await worker.client.close("the gateway stopped")
        for client in (self.gw, self.registry):
            if client is not None:
                await client.close("the gateway stopped")
        for handle in self._logs.values():
            handle.close()

    def summary(self) -> str:
        return "\n".join(
            [
                f"agentnet autogen gateway listening on {self.settings.host}:{self.port} "
                f"(gRPC agents.AgentRpc, AutoGen {AUTOGEN_VERSION} workers)",
                f"  hub     {self.settings.hub} as {GATEWAY_NAME}",
                f"  state   {len(self.types)} agent types, {len(self.subs)} subscriptions restored",
                f"  rpc     callers wait up to {self.settings.rpc_deadline:g} s for a response",
                f'  workers GrpcWorkerAgentRuntime(host_address="{self.settings.host}:{self.port}")',
            ]
        )

    # ------------------------------------------------------------------ the registry (types, subscriptions)

    async def _load_registry(self) -> None:
        assert self.gw is not None and self.registry is not None
        after: str | None = None  # the registry identity's channels, page by page (the gateway has many more)
        while self.registry_channel is None:
            page = await self.registry.request("list_channels", **({"after": after} if after else {}))
            for ch in page["channels"]:
                if ch.get("topic") == REGISTRY_TOPIC and GATEWAY_NAME in ch["participants"]:
                    self.registry_channel = ch["channel_id"]
                    break
            after = page.get("next")
            if after is None:
                break
        if self.registry_channel is None:
            ch = await self.gw.request(
                "open_channel", type="conversation", participants=[REGISTRY_NAME], topic=REGISTRY_TOPIC
            )
            self.registry_channel = ch["channel_id"]
            return
        after = 0
        while True:
            page = await self.gw.request("read_wal", channel_id=self.registry_channel, after_seq=after, limit=1000)
            for env in page["envelopes"]:
                after = env["seq"]
                self._apply_registry(env["type"], env["data"])
            if not page["has_more"]:
                break

    def _apply_registry(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "ag.type":
            self.types[data["type"]] = TypeState(data["type"], data["identity"], data["channel_id"])
        elif kind == "ag.subscribe":
            key: SubKey = (data["kind"], data["topic"], data["agent_type"])
            self.subs[key] = data["id"]
            self.aliases[data["id"]] = key
        elif kind == "ag.unsubscribe":
            key = (data["kind"], data["topic"], data["agent_type"])
            self.subs.pop(key, None)
            for alias in [a for a, k in self.aliases.items() if k == key]:
                del self.aliases[alias]
        self._recipients.clear()

    async def _record(self, kind: str, data: dict[str, Any], text: str) -> None:
        assert self.gw is not None
        await self.gw.request(
            "post", channel_id=self.registry_channel, type=kind, data={**data, "text": text}, audience=[REGISTRY_NAME]
        )
        self._apply_registry(kind, data)

    async def _ensure_type(self, agent_type: str) -> TypeState:
        """The type's state, creating its identity and inbox (durably) on first sight."""
        ts = self.types.get(agent_type)
        if ts is not None:
            return ts
        async with self._lock:
            ts = self.types.get(agent_type)
            if ts is not None:
                return ts
            assert self.gw is not None
            identity = identity_for(agent_type)
            client = self._hub_client(identity)  # its hello makes the identity, which the inbox needs
            await client.start()
            try:
                await client.request("register", passport=self._type_passport(agent_type, None))
            finally:
                await client.close("agent type registered; it connects while a worker serves it")
            ch = await self.gw.request(
                "open_channel", type="conversation", participants=[identity], topic=_inbox_topic(agent_type)
            )
            data = {"type": agent_type, "identity": identity, "channel_id": ch["channel_id"]}
            await self._record("ag.type", data, f"agent type {agent_type} is {identity}, inbox {ch['channel_id']}")
            return self.types[agent_type]

    def recipients(self, topic_type: str) -> list[str]:
        """Agent types subscribed to a topic type (AutoGen's TypeSubscription/TypePrefixSubscription)."""
        cached = self._recipients.get(topic_type)
        if cached is not None:
            return cached
        found = sorted({key[2] for key in self.subs if subscribes(key, topic_type, key[2])})
        if len(self._recipients) > 10_000:
            self._recipients.clear()
        self._recipients[topic_type] = found
        return found

    # ------------------------------------------------------------------ unary RPCs

    async def _worker_for(self, context: Any) -> Worker:
        client_id = None
        for key, value in context.invocation_metadata() or ():
            if key == "client-id":
                client_id = value
        if client_id is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client-id metadata not found.")
        worker = self.workers.get(client_id)
        if worker is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"client {client_id} has no open channel: call OpenChannel first (GrpcWorkerAgentRuntime.start())",
            )
        return worker  # type: ignore[return-value]

    async def RegisterAgent(self, request: pb.RegisterAgentTypeRequest, context: Any) -> pb.RegisterAgentTypeResponse:
        worker = await self._worker_for(context)
        agent_type = request.type
        if not agent_type:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "RegisterAgent needs a type")
        try:
            ts = await self._ensure_type(agent_type)
        except HubError as exc:
            await context.abort(_status(exc), f"the hub refused agent type {agent_type}: {exc}")
        if ts.owner is not None and ts.owner is not worker:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Agent type {agent_type} already registered with client {ts.owner.client_id}",
            )
        if ts.owner is worker:
            return pb.RegisterAgentTypeResponse()
        if not worker.alive:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the worker's channel closed")
        self._setting_up(worker)
        ts.owner = worker
        ts.wait_until, ts.dropped_topics, ts.settle_by = None, set(), None
        worker.types.add(agent_type)
        if worker.client is not None:
            worker.client.request_nowait("register", passport=self._worker_passport(worker))
        ts.held = []  # the registration hold: its timer is set before the hello, so nothing releases it early
        if ts.release is not None:
            ts.release.cancel()
        ts.release = asyncio.get_running_loop().call_later(RELEASE_FALLBACK, self._release, ts)
        client = self._hub_client(ts.identity)
        client.on_frame = lambda frame, ts=ts, client=client: self._on_type_frame(ts, client, frame)
        ts.client = client
        try:
            await client.start()  # the hub replays the type's backlog: events are held (see _release)
        except HubError as exc:
            if ts.client is client:
                self._disown(ts)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot attach agent type {agent_type} to the hub: {exc}")
        if ts.client is not client or ts.owner is not worker:  # the worker left meanwhile (another may own it now)
            await client.close(worker.gone)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the worker's channel closed")
        client.request_nowait("register", passport=self._type_passport(agent_type, worker))
        if ts.release is not None:
            ts.release.cancel()
        ts.release = asyncio.get_running_loop().call_later(RELEASE_FALLBACK, self._release, ts)
        log.info("worker %s registered agent type %s (%s)", worker.client_id, agent_type, ts.identity)
        return pb.RegisterAgentTypeResponse()

    async def AddSubscription(self, request: pb.AddSubscriptionRequest, context: Any) -> pb.AddSubscriptionResponse:
        worker = await self._worker_for(context)
        try:
            key = _sub_key(request.subscription)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        sub_id = request.subscription.id
        kind, topic, agent_type = key
        if not agent_type:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the subscription needs an agent_type")
        try:
            if key not in self.subs:
                await self._ensure_type(agent_type)
                async with self._lock:
                    if key not in self.subs:
                        data = {"id": sub_id, "kind": kind, "topic": topic, "agent_type": agent_type}
                        what = "topic" if kind == "type" else "topics starting with"
                        await self._record("ag.subscribe", data, f"{agent_type} subscribes to {what} {topic!r}")
        except HubError as exc:
            await context.abort(_status(exc), f"cannot store the subscription: {exc}")
        self.aliases[sub_id] = key  # a restarted worker re-adds with new ids: aliases of the same subscription
        ts = self.types.get(agent_type)
        loop = asyncio.get_running_loop()
        if (
            key == ("prefix", agent_type + ":", agent_type)
            and ts is not None
            and ts.owner is worker
            and ts.release is not None
            and ts.settle_by is None
        ):
            # BaseAgent.register adds this one last, and the worker adds it locally once we return: the
            # type's backlog goes once the worker is done setting up (_setting_up).
            ts.settle_by = loop.time() + RELEASE_FALLBACK
        self._setting_up(worker)
        if key not in worker.subs:
            worker.settling.add(key)
            loop.call_later(SUBSCRIPTION_SETTLE, self._subscribed, worker, key)
        return pb.AddSubscriptionResponse()

    def _setting_up(self, worker: Worker) -> None:
        """The worker registered a type or added a subscription just now: the backlogs of its types
        that it has registered locally wait until it has been quiet for SUBSCRIPTION_SETTLE (at most
        RELEASE_FALLBACK), so that an event stored for several of its types goes to it once, after
        all of them are registered and subscribed (the worker fans it out to them)."""
        loop = asyncio.get_running_loop()
        for name in worker.types:
            ts = self.types.get(name)
            if ts is None or ts.owner is not worker or ts.release is None or ts.settle_by is None:
                continue
            ts.release.cancel()
            ts.release = loop.call_at(min(loop.time() + SUBSCRIPTION_SETTLE, ts.settle_by), self._release, ts)

    def _subscribed(self, worker: Worker, key: SubKey) -> None:
        """The worker holds `key` locally by now: the events it covers may go to the worker."""
        if not worker.alive or key not in worker.settling:
            return  # gone, or removed meanwhile
        worker.settling.discard(key)
        worker.subs.add(key)
        self._subscriptions_changed(worker)

    def _subscriptions_changed(self, worker: Worker) -> None:
        """Events of the worker's types that wait for a subscription may go now (or be dropped)."""
        for name in list(worker.types):
            ts = self.types.get(name)
            # held, past the registration hold (release): waiting on a subscription
            if ts is not None and ts.owner is worker and ts.held is not None and ts.release is None:
                self._release(ts)

    async def RemoveSubscription(
        self, request: pb.RemoveSubscriptionRequest, context: Any
    ) -> pb.RemoveSubscriptionResponse:
        worker = await self._worker_for(context)
        key = self.aliases.get(request.id)
        if key is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no subscription with id {request.id}")
        worker.subs.discard(key)
        worker.settling.discard(key)
        self._subscriptions_changed(worker)
        async with self._lock:
            if key in self.subs:
                kind, topic, agent_type = key
                data = {"id": request.id, "kind": kind, "topic": topic, "agent_type": agent_type}
                try:
                    await self._record("ag.unsubscribe", data, f"{agent_type} unsubscribes from {topic!r}")
                except HubError as exc:
                    await context.abort(_status(exc), f"cannot store the removal: {exc}")
        return pb.RemoveSubscriptionResponse()

    async def GetSubscriptions(self, request: pb.GetSubscriptionsRequest, context: Any) -> pb.GetSubscriptionsResponse:
        if not any(key == "client-id" for key, _ in context.invocation_metadata() or ()):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client-id metadata not found.")
        return pb.GetSubscriptionsResponse(subscriptions=[_sub_proto(i, k) for k, i in self.subs.items()])

    async def OpenControlChannel(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "agentnet's AutoGen gateway does not serve the control channel "
            "(AutoGen 0.7.5's Python workers never open it)",
        )

    # ------------------------------------------------------------------ the data stream

    async def OpenChannel(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.Message]:
        client_id = None
        agent = ""
        for key, value in context.invocation_metadata() or ():
            if key == "client-id":
                client_id = value
            elif key == "user-agent":
                agent = value
        if client_id is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client-id metadata not found.")
        if client_id in self.workers:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"client {client_id} already has an open channel")
        deadline = self.settings.rpc_deadline
        hint = DEADLINE_HINT.search(agent)
        if hint:
            with contextlib.suppress(ValueError):
                deadline = max(0.01, float(hint.group(1)))
        default = "agw-" + re.sub(r"[^a-z0-9]", "", client_id.lower())[:12]
        named = WORKER_HINT.search(agent)
        identity = named.group(1) if named else default
        if identity != default and (identity in (GATEWAY_NAME, REGISTRY_NAME) or identity.startswith(("ag-", "agw-"))):
            log.warning(
                "worker %s asked to show as %r, a name the gateway keeps for itself (%s, %s, ag-*, agw-*): "
                "it shows as %s",
                client_id,
                identity,
                GATEWAY_NAME,
                REGISTRY_NAME,
                default,
            )
            identity = default
        worker = Worker(client_id, context, deadline, identity, default_identity=default)
        self.workers[client_id] = worker
        log.info("worker %s (%s) connected (rpc deadline %g s)", client_id, identity, deadline)
        self._attach_worker(worker)
        reader = asyncio.create_task(self._read(worker, request_iterator), name=f"autogen-gw-read-{client_id[:8]}")
        out, wake = worker.out, worker.wake
        try:
            # grpc.aio writes what this generator yields; it resumes once the message is handed over
            # (AutoGen's host streams the same way, and it costs far less than context.write()).
            while True:
                if not out:
                    if reader.done():
                        break
                    wake.clear()
                    await wake.wait()
                    continue
                msg, written = out.popleft()
                yield msg
                if written is not None:
                    written()
        except asyncio.CancelledError:  # grpc cancelled the call: the worker died, or its connection did
            if worker.gone == WORKER_CLOSED:
                worker.gone = "its worker's gRPC stream broke"
            raise
        finally:
            reader.cancel()
            self._worker_gone(worker)

    async def _read(self, worker: Worker, request_iterator: Any) -> None:
        on_message = self._on_message
        try:
            async for msg in request_iterator:
                try:
                    on_message(worker, msg)
                except Exception:  # a gateway bug costs this message, never the stream
                    log.exception("worker %s: could not route a message", worker.client_id)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            worker.wake.set()  # the stream's generator ends too

    def _on_message(self, worker: Worker, msg: pb.Message) -> None:
        kind = msg.WhichOneof("message")
        if kind == "request":
            self._on_request(worker, msg)
        elif kind == "response":
            self._on_response(worker, msg)
        elif kind == "cloudEvent":
            self._on_event(worker, msg)

    def _fail(self, worker: Worker, request_id: str, error: str) -> None:
        worker.send(pb.Message(response=pb.RpcResponse(request_id=request_id, error=error)))

    def _on_request(self, worker: Worker, msg: pb.Message) -> None:
        req = msg.request
        target = req.target.type
        ts = self.types.get(target)
        if ts is None:
            self._fail(worker, req.request_id, f"agent type {target!r} is not registered with the gateway")
            return
        self.stats["requests"] += 1
        gw_id = f"{self.boot}-{next(self._ids)}"
        caller_id = req.request_id
        now = time.monotonic()
        expires = now + worker.deadline
        self.calls[gw_id] = call = Call(worker, caller_id, target, expires)
        heapq.heappush(self.deadlines, (expires, gw_id))
        req.request_id = gw_id  # AutoGen's per-worker counters collide across callers (#7016)
        # In the hub's process, when all the hub has for this type was handed to its worker already (the
        # worker's stream keeps that order), the request goes to the worker now and is stored right
        # after (its response waits for the commit: _durable); otherwise the hub's notify brings it,
        # once stored. See docs/autogen.md, "Handed on while it commits".
        client, owner = ts.client, ts.owner
        idle = getattr(client, "idle_head", None)
        early = (
            idle is not None
            and owner is not None
            and owner.alive
            and ts.held is None
            and not ts.queued
            and msg.ByteSize() < client.max_data_bytes // 3  # surely stored (the stored form is ~2.7x)
            and idle(ts.channel_id) is not None
        )
        if early:
            ts.forwarded[gw_id] = None
            self.stats["early"] += 1
            owner.send(msg)
        else:
            ts.queued += 1
            call.request = msg
        self._later(lambda: self._store_request(worker, msg, ts, caller_id, early))

    def _store_request(self, worker: Worker, msg: pb.Message, ts: TypeState, caller_id: str, early: bool) -> None:
        if not early:
            ts.queued -= 1
        gw_id = msg.request.request_id
        assert self.gw is not None
        _post(
            self.gw,
            lambda f: self._request_posted(f, gw_id, ts),
            channel_id=ts.channel_id,
            type="ag.rpc.request",
            data=request_data(msg, worker.client_id, caller_id, worker.deadline),
        )

    # ------------------------------------------------------------------ bookkeeping after forwarding

    def _later(self, work: Callable[[], None]) -> None:
        """Store what a message means after handing it on: `work` runs in the next loop turn, after
        the workers' streams have written what this turn gave them (each stream writes in its own
        task's step, scheduled before this), so the hub's work is off the RPC's path. In order: the
        WAL keeps the order in which the gateway read the messages."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush_outbox)
        self._outbox.append(work)

    def _flush_outbox(self) -> None:
        box, self._outbox = self._outbox, []
        for work in box:
            try:
                work()
            except Exception:  # a gateway bug costs this message's record, never the others
                log.exception("could not store a message")

    def _request_posted(self, fut: Any, gw_id: str, ts: TypeState) -> None:
        error = None
        exc = fut.exception()
        if exc is not None:
            error = f"the gateway could not store the request: {exc}"
        else:
            frame = fut.result()
            if not frame["ok"]:
                error = f"the hub refused the request: {frame.get('error_code')}: {frame.get('error_message')}"
        if error is None:
            self._durable(gw_id)
            return
        if gw_id in ts.forwarded and ts.forwarded[gw_id] is None:  # handed on early, never stored
            del ts.forwarded[gw_id]
            ts.answered.pop(gw_id, None)
        call = self.calls.pop(gw_id, None)
        if call is not None:
            self._fail(call.caller, call.caller_request_id, error)

    def _durable(self, gw_id: str) -> None:
        """The request is stored: its response may go to the caller (now, if it came first)."""
        call = self.calls.get(gw_id)
        if call is None or call.durable:
            return
        call.durable = True
        if call.held is not None:
            del self.calls[gw_id]
            if call.caller.alive:
                call.caller.send(call.held)

    def _on_response(self, worker: Worker, msg: pb.Message) -> None:
        resp = msg.response
        gw_id = resp.request_id
        ts = env = None
        for name in worker.types:
            t = self.types[name]
            if gw_id in t.forwarded:
                ts, env = t, t.forwarded[gw_id]
                if env is None and gw_id in t.answered:
                    return  # a second answer to a request handed on early: the first one counts
                if env is not None:
                    del t.forwarded[gw_id]
                break
        self.stats["responses"] += 1
        stored = _b64(msg.SerializeToString()) if ts is not None else None
        call = self.calls.get(gw_id)
        if call is not None:
            resp.request_id = call.caller_request_id
            if call.durable or ts is None:
                del self.calls[gw_id]
                if call.caller.alive:
                    call.caller.send(msg)  # handed on at once; the request is acked once the response is stored
            else:
                call.held = msg  # handed on early: the caller gets it once the request is stored
        if ts is None or ts.client is None:
            return  # a response to nothing we forwarded (or the type's worker is gone): nothing to store
        self._later(lambda: self._record_response(ts, env, gw_id, resp, stored))

    def _record_response(
        self, ts: TypeState, env: dict | None, gw_id: str, resp: pb.RpcResponse, stored: str | None
    ) -> None:
        if ts.client is None:
            return  # the type's worker went: the request is redelivered to the next one
        data = response_data(resp, gw_id, stored)
        if env is None:  # handed on early: the hub's notify may have brought the envelope since
            env = ts.forwarded.get(gw_id)
            if env is None:
                if gw_id in ts.forwarded and gw_id not in ts.answered:
                    ts.answered[gw_id] = data  # stored once the hub's notify brings the request's envelope
                return
            del ts.forwarded[gw_id]
        self._store_response(ts, env, gw_id, data)

    def _store_response(self, ts: TypeState, env: dict, gw_id: str, data: dict[str, Any]) -> None:
        client = ts.client
        assert client is not None
        _post(
            client,
            lambda f: self._response_posted(f, ts, client, env, gw_id),
            channel_id=ts.channel_id,
            type="ag.rpc.response",
            data=data,
            audience=[],  # a record: stored, observed, delivered to no one
            causation_id=env["envelope_id"],
        )

    def _response_posted(self, fut: Any, ts: TypeState, client: HubClient, env: dict, gw_id: str) -> None:
        exc = fut.exception()
        if exc is not None:
            return  # not stored: the request stays unacked and is redelivered
        frame = fut.result()
        if not frame["ok"]:
            # Too large for the hub (the caller already has it): store that it was answered.
            log.warning("response to %s not stored: %s", gw_id, frame.get("error_message"))
            note = {"text": f"response not stored: {frame.get('error_message')}", "request_id": gw_id}
            retry = client.request_nowait(
                "post",
                channel_id=ts.channel_id,
                type="ag.rpc.response",
                data={**note, "error": note["text"]},
                audience=[],  # a record: stored, observed, delivered to no one
                causation_id=env["envelope_id"],
            )
            retry.add_done_callback(lambda f: f.exception() is None and client.receipt_nowait(env))
            return
        client.receipt_nowait(env)  # recorded when it was handed to the worker

    def _on_event(self, worker: Worker, msg: pb.Message) -> None:
        ev = msg.cloudEvent
        recipients = self.recipients(ev.type)
        self.stats["events"] += 1
        if not recipients:
            log.debug("event on topic %s/%s: no subscriber", ev.type, ev.source)
            return
        targets = [ts for name in recipients if (ts := self.types.get(name)) is not None]
        for ts in targets:
            ts.queued += 1
        self._later(lambda: self._store_event(msg, recipients, targets))

    def _store_event(self, msg: pb.Message, recipients: list[str], targets: list[TypeState]) -> None:
        for ts in targets:
            ts.queued -= 1
        data = event_data(msg, recipients)
        assert self.gw is not None
        for ts in targets:
            _post(self.gw, self._event_posted, channel_id=ts.channel_id, type="ag.event", data=data)

    @staticmethod
    def _event_posted(fut: Any) -> None:
        exc = fut.exception()
        if exc is not None:
            log.warning("an event was not stored: %s", exc)
        elif not fut.result()["ok"]:
            frame = fut.result()
            log.warning("an event was refused by the hub: %s: %s", frame.get("error_code"), frame.get("error_message"))

    # ------------------------------------------------------------------ workers leaving, deadlines

    def _disown(self, ts: TypeState, reason: str = WORKER_CLOSED) -> None:
        ts.owner = None
        ts.held = None
        ts.forwarded.clear()  # unacked: the hub redelivers them to the next worker of this type
        ts.answered.clear()
        if ts.release is not None:
            ts.release.cancel()
            ts.release = None
        if ts.waiting is not None:
            ts.waiting.cancel()
            ts.waiting = None
        client, ts.client = ts.client, None
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.close(reason))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    def _worker_gone(self, worker: Worker) -> None:
        worker.alive = False
        if self.workers.get(worker.client_id) is worker:
            del self.workers[worker.client_id]
        for name in worker.types:
            ts = self.types.get(name)
            if ts is not None and ts.owner is worker:
                self._disown(ts, worker.gone)
        client, worker.client = worker.client, None
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.close(worker.gone))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        if worker.types:
            log.info("worker %s disconnected; its types wait in the hub: %s", worker.client_id, sorted(worker.types))
        else:
            log.info("worker %s disconnected (it served no agent type)", worker.client_id)

    def _deadline_error(self, call: Call) -> str:
        ts = self.types.get(call.target)
        state = "its worker is connected" if ts is not None and ts.owner is not None else "no worker serves it now"
        return (
            f"no response from agent type {call.target!r} within {call.caller.deadline:g} s ({state}); "
            "the request is dropped"
        )

    async def _expire_calls(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            heap = self.deadlines
            while heap and heap[0][0] <= now:
                _, gw_id = heapq.heappop(heap)
                call = self.calls.pop(gw_id, None)
                if call is not None and call.caller.alive:
                    self._fail(call.caller, call.caller_request_id, self._deadline_error(call))
