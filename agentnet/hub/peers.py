"""The hub shell's connections: each peer's outbound queue drained by its own sender task (a deadline
on every send, so a slow peer only stalls itself), and the observer feed that stamps events and fans
them out to each observer's bounded queue."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from agentnet.child import crashpoint, crashpoint_armed
from agentnet.protocol import events, ids
from agentnet.protocol.errors import ErrorCode
from agentnet.wsfast import BatchedSends, DirectReceives

from .effects import PEER_MAX_SIZE, _error_response

log = logging.getLogger("agentnet.hub")


def transport_peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


_NOTIFY_POINT = "hub.after_notify_before_cursor_write"
NOTIFY_CRASH = _NOTIFY_POINT if crashpoint_armed(_NOTIFY_POINT) else ""  # only then are batches looked at
_CLOSE = object()  # marker in a peer's outbox: close after what is queued before it


SEND_BATCH_BYTES = 256 * 1024  # a peer's queued frames are written together, up to this much per write


class HubConnection(BatchedSends, DirectReceives, ServerConnection):
    """A websockets server connection whose bursts go out in one socket write and whose incoming
    messages reach the hub straight from `data_received` (see `agentnet.wsfast`)."""

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        refused = self.protocol.handshake_exc
        if refused is not None and "HTTP/2" in f"{refused} {refused.__cause__}":
            # the commonest wrong address: a gRPC client (an AutoGen worker) given the WebSocket port
            log.warning(
                "%s spoke HTTP/2 to the WebSocket port, as a gRPC client does: AutoGen workers connect "
                "to the gateway's address (agentnet hub --autogen HOST:PORT, or agentnet gateway autogen)",
                transport_peer(self.transport),
            )


@dataclass(eq=False)
class Peer:
    """One connection's outbound side: a queue drained by its own sender task."""

    conn: int
    ws: HubConnection
    send_timeout: float
    frames: deque = field(default_factory=deque)
    events: deque = field(default_factory=deque)  # observer feed, bounded by the feed
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    frame_bytes: int = 0  # bytes of `frames` (responses, notifies) not yet written
    event_bytes: int = 0  # bytes of `events` not yet written
    refused: int = 0  # requests answered `overloaded` in a row (the peer does not read its answers)
    # a gateway's own identity inside the hub (gateway.local.LocalPeer) is guarded: no socket's hello
    # may take its name over
    guarded: ClassVar[bool] = False
    event_timeout: float | None = None  # observers: how long an event write may stall (events are lossy)
    max_size: int = PEER_MAX_SIZE  # the largest frame the peer accepts (hello.max_size): never send more
    observer: bool = False
    greeted: bool = False  # its hello was accepted: frames from now on are requests and receipts
    label: str = ""  # "agent bob" once greeted (for the info log)
    held: deque | None = None  # frames that wait, in order, while a store read is fetched ahead for this peer
    closing: bool = False
    task: asyncio.Task | None = None

    def push(self, data: Any) -> None:
        if self.closing:
            return
        if len(data) > self.max_size:
            data = self._too_large(data)
            if data is None:
                return
        self.frames.append(data)
        self.frame_bytes += len(data)
        self.wake.set()

    def _too_large(self, data: bytes) -> bytes | None:
        """A frame over the peer's limit is never sent: a response becomes `too_large` with a hint;
        anything else is dropped (a notify is then redelivered until dead-lettered, as the contract
        wants for a poison envelope)."""
        limit = self.max_size
        if data.startswith(b'{"kind":"response"'):
            request_id = orjson.loads(data).get("request_id", "")
            hint = (
                f"the response is {len(data)} bytes, over this connection's limit of {limit} (hello.max_size); "
                "ask for less: a smaller `limit` (read_wal, list_channels, list_agents, observe) or a narrower query"
            )
            return _error_response(request_id, ErrorCode.TOO_LARGE, hint)
        log.warning("conn %d: a %d-byte frame is over the peer's limit of %d; not sent", self.conn, len(data), limit)
        return None

    def drop_queued(self) -> None:
        """Forget every frame not yet written (the peer is being closed for not reading them)."""
        self.frames.clear()
        self.frame_bytes = 0

    async def run(self, feed: ObserverFeed) -> None:
        ws = self.ws
        frames, events = self.frames, self.events
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while frames or events:
                    # Everything queued goes out in one write (one syscall), frames before events,
                    # in the order they were queued; at most SEND_BATCH_BYTES per write.
                    batch: list[bytes] = []
                    size = 0
                    if frames:
                        while frames and size < SEND_BATCH_BYTES:
                            item = frames.popleft()
                            if item is _CLOSE:
                                if batch:
                                    self.frame_bytes -= size
                                    await self._send_batch(batch, self.send_timeout)
                                code, reason = self.close_args
                                async with asyncio.timeout(self.send_timeout):
                                    await ws.close(code, reason)
                                return
                            batch.append(item)
                            size += len(item)
                        self.frame_bytes -= size
                        await self._send_batch(batch, self.send_timeout)
                        if NOTIFY_CRASH and any(item.startswith(b'{"kind":"notify"') for item in batch):
                            crashpoint(NOTIFY_CRASH)  # notifies written; their cursor rows not committed yet
                    else:
                        while events and size < SEND_BATCH_BYTES:
                            item = events.popleft()
                            batch.append(item)
                            size += len(item)
                            if not events and self.dropped:  # after the last queued event: keeps event_seq order
                                batch.append(feed.lagged_frame(self.dropped))
                                self.dropped = 0
                        self.event_bytes -= size
                        # A stalled observer only stalls its own lossy feed (bounded in bytes, it drops
                        # events and is told how many once it reads again): a longer deadline than a
                        # response's, so a pause past send_timeout ends with observer.lagged, not a drop.
                        await self._send_batch(batch, self.event_timeout or self.send_timeout)
        except TimeoutError:
            log.warning("conn %d: a send missed its deadline; dropping the connection", self.conn)
            ws.transport.abort()
        except ConnectionClosed:
            pass

    async def _send_batch(self, batch: list[bytes], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self.ws.send_texts(batch)

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.close_args = (int(code), reason[:120])
        self.frames.append(_CLOSE)
        self.closing = True
        self.wake.set()


class ObserverFeed:
    """Stamps events with event_seq and fans them out to each observer's bounded queue."""

    def __init__(self, limit: int, limit_bytes: int = 8 * 1024 * 1024) -> None:
        self.event_seq = 0
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.observers: dict[int, Peer] = {}

    def publish(self, event: events.Event) -> None:
        self.event_seq += 1
        if not self.observers:
            return
        data = events.encode(event, self.event_seq, ids.utc_iso())
        size = len(data)
        for peer in self.observers.values():
            over = len(peer.events) >= self.limit or peer.event_bytes + size > self.limit_bytes
            if over or size > peer.max_size:
                peer.dropped += 1  # the observer is slow: lose events, never slow the agents
                continue
            peer.events.append(data)
            peer.event_bytes += size
            peer.wake.set()

    def lagged_frame(self, dropped: int) -> bytes:
        return events.encode(events.ObserverLagged(dropped), self.event_seq, ids.utc_iso())
