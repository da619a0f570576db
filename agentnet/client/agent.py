"""AgentClient and Channel: the SDK an agent uses to open channels, post, read and handle deliveries.

Deliveries are handled one at a time, in arrival order, by the agent's handler; the receipt is
sent after the handler returns (ack) or raises (nack). The connection's frame callback never runs
the handler itself (a worker task does), so a handler may make requests (post a reply) without
deadlocking the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentnet.protocol import ids
from agentnet.protocol.models import ChannelInfo, Envelope

from .connection import ConnectionLost, HubClient, HubError, HubUnavailable

log = logging.getLogger("agentnet.client")


@dataclass(frozen=True, slots=True)
class PostResult:
    envelope_id: str
    seq: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class WalPage:
    envelopes: list[Envelope]
    head_seq: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notify frame: the envelope, which attempt this is, and its channel."""

    envelope: Envelope
    attempt: int
    channel: Channel
    raw: dict[str, Any]

    @property
    def redelivered(self) -> bool:
        return self.attempt > 1


Handler = Callable[[Delivery], Awaitable[None]]


class Channel:
    """A channel as seen by one agent."""

    def __init__(self, client: AgentClient, info: ChannelInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.channel_id

    def __repr__(self) -> str:
        return f"Channel({self.id!r}, {self.info.type}, participants={self.info.participants})"

    async def send(
        self,
        text: str | None = None,
        *,
        data: dict[str, Any] | None = None,
        type: str = "text",
        audience: list[str] | None = None,
        causation_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float = 30.0,
    ) -> PostResult:
        """Post an envelope; returns once it is durable in the hub's store.

        Retried across reconnects with the same idempotency key until `timeout`, so a post whose
        answer was lost in a disconnect is never appended twice.
        """
        payload = dict(data or {})
        if text is not None:
            payload["text"] = text
        params: dict[str, Any] = {
            "channel_id": self.id,
            "type": type,
            "data": payload,
            "idempotency_key": idempotency_key or ids.new_id("k"),
        }
        if audience is not None:
            params["audience"] = audience
        if causation_id is not None:
            params["causation_id"] = causation_id
        hub = self.client.hub
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout  # one deadline for every attempt (no timer of its own)
        retries = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                try:
                    result = await hub.request("post", timeout=remaining, **params)
                    return PostResult(result["envelope_id"], result["seq"], bool(result.get("duplicate")))
                except (ConnectionLost, HubUnavailable):
                    await hub.wait_connected(deadline - loop.time())
                except HubError as exc:
                    if exc.code != "overloaded":  # "retry later" (e.g. the store's disk is full)
                        raise
                    retries += 1
                    await asyncio.sleep(min(deadline - loop.time(), 0.05 * 2 ** min(retries, 6)))
            except TimeoutError:
                raise HubError("timeout", f"post to {self.id}: not stored within {timeout:g} s") from None

    async def read_wal(self, after_seq: int = 0, limit: int = 200) -> WalPage:
        r = await self.client.hub.request("read_wal", channel_id=self.id, after_seq=after_seq, limit=limit)
        return WalPage([Envelope.model_validate(e) for e in r["envelopes"]], r["head_seq"], r["has_more"])

    async def iter_wal(self, after_seq: int = 0) -> AsyncIterator[Envelope]:
        """Every envelope after `after_seq`, paged."""
        while True:
            page = await self.read_wal(after_seq, 1000)
            for env in page.envelopes:
                yield env
                after_seq = env.seq
            if not page.has_more:
                return

    async def find_by_causation(self, causation_id: str, sender: str | None = None) -> Envelope | None:
        params: dict[str, Any] = {"channel_id": self.id, "causation_id": causation_id}
        if sender is not None:
            params["sender"] = sender
        r = await self.client.hub.request("find_by_causation", **params)
        return Envelope.model_validate(r["envelope"]) if r.get("envelope") else None

    async def refresh(self) -> ChannelInfo:
        self.info = ChannelInfo.model_validate(await self.client.hub.request("get_channel", channel_id=self.id))
        return self.info

    async def close(self, reason: str | None = None) -> ChannelInfo:
        params: dict[str, Any] = {"channel_id": self.id}
        if reason:
            params["reason"] = reason
        self.info = ChannelInfo.model_validate(await self.client.hub.request("close_channel", **params))
        return self.info

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float = 10.0) -> Envelope:
        return await self.client.wait_for_channel_event(self.id, predicate, timeout)


class AgentClient:
    """`async with AgentClient(url, "bob", handler=...) as agent:` — an agent identity on a hub."""

    def __init__(
        self,
        url: str | list[str],
        name: str,
        *,
        token: str | None = None,
        handler: Handler | None = None,
        passport: dict[str, Any] | None = None,
        **hub_options: Any,
    ) -> None:
        self.name = name
        self.handler = handler
        self.passport = passport
        self.hub = HubClient(url, name=name, role="agent", token=token, **hub_options)
        self.hub.on_frame = self._on_frame
        self.hub.on_connect = self._on_connect
        self.channels: dict[str, Channel] = {}
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self._waiters: list[tuple[str, Callable[[Envelope], bool], asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    async def __aenter__(self) -> AgentClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name=f"agent-{self.name}-handler")
        await self.hub.start()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.hub.close()

    def on(self, handler: Handler) -> Handler:
        """Decorator form: `@agent.on` sets the delivery handler."""
        self.handler = handler
        return handler

    async def _on_connect(self) -> None:
        if self.passport is not None:
            await self.hub.request("register", passport=self.passport)
        if self.hub.connections > 1 and self.on_reconnect is not None:
            await self.on_reconnect()

    # ------------------------------------------------------------------ channels

    async def open(
        self,
        type: str,
        target: list[str] | str,
        *,
        topic: str | None = None,
        knobs: dict[str, Any] | None = None,
    ) -> Channel:
        participants = [target] if isinstance(target, str) else list(target)
        params: dict[str, Any] = {"type": type, "participants": participants}
        if topic is not None:
            params["topic"] = topic
        if knobs:
            params["knobs"] = knobs
        info = ChannelInfo.model_validate(await self.hub.request("open_channel", **params))
        return self._remember(info)

    def _remember(self, info: ChannelInfo) -> Channel:
        ch = self.channels.get(info.channel_id)
        if ch is None:
            ch = self.channels[info.channel_id] = Channel(self, info)
        else:
            ch.info = info
        return ch

    async def channel(self, channel_id: str) -> Channel:
        if channel_id in self.channels:
            return self.channels[channel_id]
        info = ChannelInfo.model_validate(await self.hub.request("get_channel", channel_id=channel_id))
        return self._remember(info)

    async def list_channels(self) -> list[Channel]:
        """Every channel this agent is in (the hub answers in pages; this follows them)."""
        out: list[Channel] = []
        after: str | None = None
        while True:
            result = await self.hub.request("list_channels", **({"after": after} if after else {}))
            out += [self._remember(ChannelInfo.model_validate(c)) for c in result["channels"]]
            after = result.get("next")
            if after is None:
                return out

    async def pending_turns(self) -> list[dict[str, Any]]:
        return (await self.hub.request("pending_turns"))["turns"]

    async def list_agents(self) -> list[dict[str, Any]]:
        """Every agent the hub knows (following the hub's pages)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            result = await self.hub.request("list_agents", **({"after": after} if after else {}))
            out += result["agents"]
            after = result.get("next")
            if after is None:
                return out

    # ------------------------------------------------------------------ deliveries

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("kind") == "notify":
            self._queue.put_nowait((self.hub.connections, frame))

    async def _work(self) -> None:
        while True:
            session, frame = await self._queue.get()
            if session != self.hub.connections:
                # Queued by a connection that has dropped since: the hub replays it on the new one.
                # (Not cleared in on_connect: that runs beside the new connection's reader, which
                # may already have queued the replay.)
                continue
            env = Envelope.model_validate(frame["envelope"])
            self._wake_waiters(env)
            channel = self.channels.get(env.channel_id)
            if channel is None:  # invited to a channel: learn its type and participants once
                try:
                    channel = await self.channel(env.channel_id)
                except HubError:
                    self._queue.put_nowait((session, frame))  # not connected; the hub will redeliver
                    continue
            if env.type == "channel.closed":
                channel.info.state = "closed"
            delivery = Delivery(env, frame["attempt"], channel, frame)
            status, reason = "ack", None
            if self.handler is not None:
                try:
                    await self.handler(delivery)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the handler failed: the hub redelivers later
                    status, reason = "nack", f"{type(exc).__name__}: {exc}"
                    log.warning("%s: handler failed on %s#%d: %s", self.name, env.channel_id, env.seq, reason)
            if session == self.hub.connections or status == "ack":
                await self.hub.send_receipt(frame["envelope"], status, reason)

    def _wake_waiters(self, env: Envelope) -> None:
        for item in list(self._waiters):
            channel_id, predicate, fut = item
            if channel_id == env.channel_id and not fut.done():
                try:
                    matched = predicate(env)
                except Exception as exc:
                    fut.set_exception(exc)
                    continue
                if matched:
                    fut.set_result(env)

    async def wait_for_channel_event(
        self, channel_id: str, predicate: Callable[[Envelope], bool], timeout: float = 10.0
    ) -> Envelope:
        """The first envelope of the channel (already in its WAL, or yet to come) matching `predicate`."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        item = (channel_id, predicate, fut)
        self._waiters.append(item)
        try:
            channel = await self.channel(channel_id)
            async for env in channel.iter_wal():
                if predicate(env):
                    return env
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise HubError("timeout", f"nothing matching in {channel_id} within {timeout:g} s") from None
        finally:
            self._waiters.remove(item)
