"""The hub's websockets shell: sockets, timers and the group-commit writer around HubCore.

Each connection's frames are decoded and fed to the core as they arrive, in the socket's data
callback; one task per connection writes to it, each send under its own deadline, so a slow or
paused peer only ever stalls itself. One writer task
commits batches: a commit takes everything that arrived while the previous one ran (no timer),
and only its completion releases responses, notifies and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from agentnet import __version__
from agentnet.child import crashpoint
from agentnet.protocol import events, ids
from agentnet.protocol.codec import FrameError, decode_client_frame
from agentnet.protocol.errors import CloseCode, ErrorCode
from agentnet.protocol.frames import ClientFrame, Hello

from .ag2 import PATHS as AG2_PATHS
from .ag2 import Ag2Endpoint
from .auth import Authenticator, bearer_token, load_auth_file
from .core import CoreConfig, HubCore
from .effects import PEER_MAX_SIZE, Close, Emit, Send, Subscribe, _error_response, error_frame
from .peers import HubConnection, ObserverFeed, Peer
from .readahead import ReadAhead
from .settings import DELIVERY, KEEPALIVE, DeliverySettings, KeepaliveSettings
from .store import Store, StoreError, open_store
from .store.base import assume_delivered

log = logging.getLogger("agentnet.hub")


class HubSettings(BaseModel):
    """Everything `agentnet hub` can be told, validated once."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    store: str = "memory"
    synchronous: str = "FULL"
    auth_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    port_file: Path | None = None  # written with the bound port once listening (for port 0)
    delivery: DeliverySettings = DELIVERY
    keepalive: KeepaliveSettings = KEEPALIVE
    close_timeout: float = 3.0
    open_timeout: float = 5.0
    hello_timeout: float = 5.0
    send_timeout: float = 10.0  # a send that cannot complete within this aborts the connection
    max_frame: int = 1024 * 1024  # incoming frames; larger ones are closed with 1009
    max_data_bytes: int = 256 * 1024
    keep_receipts: bool = False  # keep acked receipts below each floor (the launcher does, for `agentnet check`)
    retain_closed: float | None = Field(None, gt=0)  # days a closed channel is kept in the store; None: forever
    observer_queue: int = 20_000  # events buffered per observer before it is told it lagged
    # Byte budgets (docs/limits.md): what one peer can make the hub hold.
    observer_queue_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)  # ... and at most these bytes of them
    observer_send_timeout: float = Field(60.0, gt=0)  # an observer's event write may stall this long
    window_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)  # unacked envelope bytes per recipient
    outbox_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)  # frames queued for one connection
    overloaded_close_after: int = Field(64, ge=1)  # requests refused in a row before closing 1013
    # Shared stores (postgresql): seconds of silence after which the database ends this hub's
    # session, and with it the leadership; how often a standby tries to take it; the URL it
    # announces to the others once active (default: its own ws://host:port/v1).
    lease: float = Field(2.0, ge=0.2, le=600)
    # Group commit for chatty in-process clients (`agentnet hub --autogen` sets both; 0: commit at
    # once): a batch of cursor rows, receipts and records alone waits up to `bookkeeping_wait` s for
    # a write someone waits on; with COMMIT_SIBLINGS deliveries unacked hub-wide, a commit made on
    # the loop waits `commit_delay` s to take more posts. See docs/autogen.md, "Performance".
    bookkeeping_wait: float = Field(0.0, ge=0, le=1)
    commit_delay: float = Field(0.0, ge=0, le=0.1)
    standby_poll: float = Field(0.05, gt=0, le=10)
    advertise: str | None = None

    def core_config(self) -> CoreConfig:
        d = self.delivery
        return CoreConfig(
            window=d.window,
            ack_wait=d.ack_wait,
            max_deliver=d.max_deliver,
            nack_backoff=d.nack_backoff,
            max_data_bytes=self.max_data_bytes,
            window_bytes=self.window_bytes,
            keep_receipts=self.keep_receipts,
        )


MAX_HELD_FRAMES = 10_000  # frames of one connection waiting behind a store read fetched ahead
COMMIT_SIBLINGS = 8  # unacked deliveries to connected agents from which a commit on the loop waits `commit_delay`
SYNC_INLINE_MAX = 0.002  # s: an fsync that takes longer sends the following ones to a thread
SYNC_FAST_AGAIN = 8  # fast fsyncs in a row, in the thread, that bring them back onto the loop
HOLD_SLACK = 0.002  # s: a held batch whose wait is this close to over is committed
RETENTION_INTERVAL = 60.0  # seconds between retention passes (sooner while there is more to drop)


def _timed_sync(store: Store) -> float:
    """The store's sync (it raises StoreError), and how long the fsync itself took (in a thread:
    without the hop)."""
    started = time.monotonic()
    store.sync()  # type: ignore[attr-defined]
    return time.monotonic() - started


class Hub:
    """A running hub: `await hub.start()`, then `await hub.stop()` (or `async with Hub(...)`)."""

    def __init__(self, settings: HubSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.store, synchronous=settings.synchronous, lease=settings.lease)
        self.auth = Authenticator(load_auth_file(settings.auth_file) if settings.auth_file else None)
        # A shared store (other hubs may use the same database) is only written by the hub holding its
        # leadership: such a hub starts as a standby, and builds its core once it has taken the lead.
        self.shared = bool(getattr(self.store, "shared", False))
        # A store doing I/O is read in worker threads, ahead of the core (see readahead.py).
        self.reads: ReadAhead | None = ReadAhead(self.store) if self.store.threaded else None
        self.core: HubCore = None if self.shared else self._new_core()  # type: ignore[assignment]
        self.active = asyncio.Event()
        self.active_url = ""  # standby: the URL the active hub announced
        self.stepped_down: str | None = None  # why this hub lost the leadership (then it stops)
        self.lost_lead = asyncio.Event()
        self.took_over_at: float | None = None  # monotonic time at which this hub became active
        self._last_io = time.monotonic()
        self.feed = ObserverFeed(settings.observer_queue, settings.observer_queue_bytes)
        self.peers: dict[int, Peer] = {}
        self._next_conn = 0
        self._commit_wanted = asyncio.Event()
        self._held_since: float | None = None  # loop time since which the writer holds back (_may_wait)
        self._sync_slow = False  # an fsync took over SYNC_INLINE_MAX: they run in a thread (_sync)
        self._slow_syncs = 0  # times that happened
        self._fast_syncs = 0  # fast fsyncs in a row since then
        self._fetching: set[asyncio.Task] = set()
        self._next_retention = 0.0  # monotonic time of the next retention pass (--retain-closed)
        self._tasks: list[asyncio.Task] = []
        self._server: Server | None = None
        self.port: int | None = None
        self.stopping = False
        self.ag2 = Ag2Endpoint(self)  # ag2 1.2.1 clients, on paths / and /ag2

    def _new_core(self) -> HubCore:
        return self._core_from(self.store.load())

    def _core_from(self, state: Any) -> HubCore:
        source = self.reads if self.reads is not None else self.store
        core = HubCore(state, source, self.settings.core_config(), store_name=self.store.description)
        core.event_seq = lambda: self.feed.event_seq
        core.latency_ms = self._latency_of
        return core

    def _latency_of(self, conn: int) -> float | None:
        peer = self.peers.get(conn)
        return round(peer.ws.latency * 1000, 2) if peer is not None else None

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.tls_cert else "ws"
        return f"{scheme}://{self.settings.host}:{self.port}/v1"

    @property
    def advertised_url(self) -> str:
        return self.settings.advertise or self.url

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        s = self.settings
        ssl_ctx = None
        if s.tls_cert:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ssl_ctx.load_cert_chain(s.tls_cert, s.tls_key)
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._process_request,
            create_connection=HubConnection,
            compression=None,
            max_size=s.max_frame,
            max_queue=16,
            write_limit=64 * 1024,
            ping_interval=s.keepalive.ping_interval,
            ping_timeout=s.keepalive.ping_timeout,
            close_timeout=s.close_timeout,
            open_timeout=s.open_timeout,
            server_header=None,
            ssl=ssl_ctx,
            backlog=1024,
            logger=logging.getLogger("agentnet.hub.ws"),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        if self.shared:
            self._tasks = [asyncio.create_task(self._campaign(), name="hub-campaign")]
        else:
            self._become_active()
        if s.port_file:
            tmp = s.port_file.with_suffix(".tmp")
            tmp.write_text(str(self.port))
            os.replace(tmp, s.port_file)

    def _become_active(self) -> None:
        self._tasks = [
            asyncio.create_task(self._writer(), name="hub-writer"),
            asyncio.create_task(self._ticker(), name="hub-ticker"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._background_task_done)
        self.active.set()

    def _background_task_done(self, task: asyncio.Task) -> None:
        """The writer and the ticker run for the hub's whole life: one that dies of an error leaves a
        hub that answers nothing (posts never commit) while looking alive, so the hub stops instead."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("%s died", task.get_name(), exc_info=exc)
        self._step_down(f"{type(exc).__name__}: {exc}", f"{task.get_name()} failed")

    async def _campaign(self) -> None:
        """Standby: try to take the leadership every `standby_poll` seconds; once taken, load the
        state through the session that holds it and turn active."""
        store: Any = self.store
        last_look = 0.0
        while not self.stopping:
            try:
                if await asyncio.to_thread(store.try_lead, self.advertised_url):
                    break
                now = time.monotonic()
                if now - last_look >= 0.5:
                    last_look = now
                    self.active_url = await asyncio.to_thread(store.leader)
            except StoreError as exc:
                log.warning("standby: %s; retrying", exc)
                with contextlib.suppress(StoreError):
                    await asyncio.to_thread(store.reconnect)
                await asyncio.sleep(max(0.5, self.settings.standby_poll))
                continue
            await asyncio.sleep(self.settings.standby_poll)
        if self.stopping:
            return
        try:
            state = await asyncio.to_thread(store.load)
        except StoreError as exc:
            self._step_down(f"could not load the state after taking the lead: {exc}")
            return
        self.core = self._core_from(state)
        self.core.observed = bool(self.feed.observers)
        self.took_over_at = time.monotonic()
        self._last_io = self.took_over_at
        log.warning("took the leadership of %s; active on %s", store.description, self.advertised_url)
        self._become_active()

    def _step_down(self, reason: str, why: str = "lost the leadership") -> None:
        """The hub can commit nothing more: the database ended its session (the leadership is lost),
        or the store cannot be read back after a failed commit. Every client is sent away (to the
        active hub, or to this one once restarted) and the hub stops with exit code 3."""
        if self.stepped_down is not None:
            return
        self.stepped_down = f"{why} ({reason})"
        log.error("%s (%s); stopping", why, reason)
        self.active.clear()
        for peer in list(self.peers.values()):
            peer.close(CloseCode.TRY_AGAIN_LATER, "hub lost its leadership; reconnect")
        self.lost_lead.set()

    async def stop(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Stop accepting, close every connection, finish the commit in progress, close the store."""
        if self.stopping:
            return
        self.stopping = True
        if self._server is not None:
            self._server.close(close_connections=True, code=code, reason="hub shutting down")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.close_timeout + 1):
                    await self._server.wait_closed()
        # The writer finishes the commit it is in (a thread may be using the store: cancelling the
        # task would not stop it) and exits; then what is left is committed here, alone.
        writer = [t for t in self._tasks if t.get_name() == "hub-writer"]
        others = [t for t in self._tasks if t not in writer]
        self._commit_wanted.set()
        for task in writer:
            with contextlib.suppress(Exception):
                await task
        if self.core is not None and self.stepped_down is None:
            await self._commit_all()
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.reads is not None:
            # A read-ahead may still be running in a worker thread (its awaiting task is gone, the
            # thread is not): closing a SQLite connection under it is undefined behaviour (a
            # segfault at SIGTERM). Take the lock the reads hold; a later one finds the store closed.
            with self.reads.lock:
                self.store.close()
        else:
            self.store.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def summary(self) -> str:
        s = self.settings
        if self.core is None:
            return "\n".join(
                [
                    f"agentnet hub {__version__} standing by on {self.url}",
                    f"  store   {self.store.description} (another hub leads; this one takes over when it goes)",
                    f"  health  http{'s' if s.tls_cert else ''}://{s.host}:{self.port}/healthz (503 standby)",
                ]
            )
        channels = self.core.channel_total
        auth = "on (API keys from " + str(s.auth_file) + ")" if self.auth.enabled else "off (anyone on this machine)"
        return "\n".join(
            [
                f"agentnet hub {__version__} listening on {self.url}",
                f"  store   {self.store.description}; {channels} channels, {len(self.core.agents)} agents",
                f"  auth    {auth}",
                f"  health  http{'s' if s.tls_cert else ''}://{s.host}:{self.port}/healthz",
                f"  ag2     ws{'s' if s.tls_cert else ''}://{s.host}:{self.port}/ (or /ag2): ag2 1.2.1 clients",
                f"  delivery window={s.delivery.window} ack_wait={s.delivery.ack_wait:g}s "
                f"max_deliver={s.delivery.max_deliver}",
            ]
        )

    # ------------------------------------------------------------------ HTTP side

    def _process_request(self, connection: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz" and not self.active.is_set():
            body = {
                "status": "stepped_down" if self.stepped_down else "standby",
                "active": self.active_url or None,
                "store": self.store.description,
            }
            return HttpResponse(
                503, "Service Unavailable", Headers([("Content-Type", "application/json")]), orjson.dumps(body) + b"\n"
            )
        if path == "/healthz":
            body = {
                "status": "ok",
                "role": "active",
                "url": self.advertised_url,
                "term": getattr(self.store, "term", None),
                "took_over_at": self.took_over_at,  # monotonic clock of this host
                "hub_id": self.core.hub_id,
                "agents": sum(1 for a in self.core.agents.values() if a.conn is not None),
                "channels": self.core.channel_total,
            }
            if self.reads is not None:  # store reads made off the loop (fetched ahead) and on it
                body["store_reads"] = {"ahead": self.reads.async_reads, "on_loop": self.reads.sync_reads}
            return HttpResponse(200, "OK", Headers([("Content-Type", "application/json")]), orjson.dumps(body) + b"\n")
        if path in AG2_PATHS:
            return None  # ag2's protocol: credentials come in its register and hello frames
        if path != "/v1":
            return connection.respond(
                http.HTTPStatus.NOT_FOUND, "agentnet speaks WebSocket on /v1 (and ag2's protocol on / and /ag2)\n"
            )
        token = bearer_token(request.headers.get("Authorization"))
        if self.auth.enabled and token is not None and self.auth.identify(token) is None:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "unknown API key\n")
        return None

    # ------------------------------------------------------------------ connections

    def _dispatch(self, effects: list) -> None:
        for eff in effects:
            kind = type(eff)
            if kind is Send:
                peer = self.peers.get(eff.conn)
                if peer is not None:
                    peer.push(eff.data)
            elif kind is Emit:
                self.feed.publish(eff.event)
            elif kind is Close:
                peer = self.peers.get(eff.conn)
                if peer is not None:
                    peer.close(eff.code, eff.reason)
            elif kind is Subscribe:
                peer = self.peers.get(eff.conn)
                if peer is not None and not peer.observer:
                    peer.observer = True
                    peer.event_timeout = self.settings.observer_send_timeout
                    self.feed.observers[peer.conn] = peer
                    self.core.observed = True
        self._commit_wanted.set()

    async def _handle(self, ws: HubConnection) -> None:
        """One connection's life: its frames are handled as they arrive (`_on_message`, called from
        the socket's data callback); this task only waits for the end and cleans up."""
        if not self.active.is_set():
            # A standby (or a hub that just lost the lead) serves no one: the client tries its next URL.
            where = (
                f"active hub: {self.active_url}" if self.active_url and not self.stepped_down else "no active hub known"
            )
            with contextlib.suppress(Exception):
                await ws.close(CloseCode.STANDBY, f"standby; {where}"[:120])
            return
        self._next_conn += 1
        conn = self._next_conn
        peer = Peer(conn, ws, self.settings.send_timeout)
        self.peers[conn] = peer
        peer.task = asyncio.create_task(peer.run(self.feed), name=f"hub-send-{conn}")
        if ws.request is not None and ws.request.path.split("?", 1)[0] in AG2_PATHS:
            await self._handle_ag2(conn, peer, ws)
            return
        overdue = asyncio.get_running_loop().call_later(self.settings.hello_timeout, self._hello_overdue, peer)
        try:
            ws.attach(lambda data, text: self._on_message(conn, peer, data, text))
            await ws.wait_closed()
        finally:
            overdue.cancel()
            if peer.greeted or peer.label:
                log.info(
                    "conn %d: %s disconnected (%s %s)", conn, peer.label or "peer", ws.close_code, ws.close_reason or ""
                )
            if peer.greeted:
                rcvd = ws.close_code if ws.close_code is not None else 1006
                self._dispatch(self.core.connection_closed(conn, rcvd, ws.close_reason or "", time.monotonic()))
            if peer.observer:
                self.feed.observers.pop(conn, None)
                self.core.observed = bool(self.feed.observers)
            await self._retire(conn, peer)

    async def _handle_ag2(self, conn: int, peer: Peer, ws: HubConnection) -> None:
        """An ag2 client's connection: its frames go to the ag2 endpoint, which holds its identities."""
        session = self.ag2.open(conn, peer)
        try:
            ws.attach(lambda data, text: self.ag2.on_message(session, data, text))
            await ws.wait_closed()
        finally:
            rcvd = ws.close_code if ws.close_code is not None else 1006
            self.ag2.closed(session, rcvd, ws.close_reason or "")
            await self._retire(conn, peer)

    async def _retire(self, conn: int, peer: Peer) -> None:
        """The connection is over: let a close the hub started finish its queued frames, then forget it."""
        if peer.closing and peer.task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(self.settings.close_timeout):
                    await asyncio.shield(peer.task)
        self.peers.pop(conn, None)
        if peer.task is not None:
            peer.task.cancel()

    def _refuse(self, peer: Peer, code: ErrorCode, message: str, close: int) -> None:
        peer.push(error_frame(code, message))
        self._hang_up(peer, close, message)

    def _hang_up(self, peer: Peer, code: int, reason: str) -> None:
        """Close a connection the shell gave up on, and detach its session from the core now: a
        delivery pumped while the close handshake runs would be counted as an attempt and lost."""
        peer.close(code, reason)
        if peer.greeted:
            peer.greeted = False  # so the end of `_handle` does not detach it a second time
            self._dispatch(self.core.connection_closed(peer.conn, code, reason, time.monotonic()))

    def _hello_overdue(self, peer: Peer) -> None:
        if not peer.greeted and not peer.closing:
            hello_timeout = self.settings.hello_timeout
            self._refuse(peer, ErrorCode.INVALID, f"no hello within {hello_timeout:g} s", CloseCode.POLICY)

    def _on_message(self, conn: int, peer: Peer, data: bytes, text: bool) -> None:
        if peer.closing:  # the hub is closing this connection: what the peer sent after that is not read
            return
        if peer.held is not None:  # a read is being fetched for an earlier frame: keep the order
            if len(peer.held) >= MAX_HELD_FRAMES:
                self._refuse(
                    peer, ErrorCode.OVERLOADED, "too many frames while the store is read", CloseCode.TRY_AGAIN_LATER
                )
                return
            peer.held.append((data, text))
            return
        try:
            frame = decode_client_frame(data, binary=not text)
        except FrameError as exc:
            self._refuse(peer, exc.code, exc.message, exc.close_code)
            return
        if self.reads is not None and self.core is not None:
            try:
                fetches = self.reads.plan(self.core, conn, peer.greeted, frame)
            except Exception:  # a bug here must not cost the frame: the core reads what it needs itself
                log.exception("conn %d: could not plan the reads ahead", conn)
                fetches = []
            if fetches:
                peer.held = deque()
                task = asyncio.get_running_loop().create_task(self._fetch_then_handle(conn, peer, frame, fetches))
                self._fetching.add(task)
                task.add_done_callback(self._fetching.discard)
                return
        self._handle_frame(conn, peer, frame)

    async def _fetch_then_handle(self, conn: int, peer: Peer, frame: ClientFrame, fetches: list[Any]) -> None:
        try:
            await asyncio.gather(*fetches)
        except StoreError as exc:
            log.warning("conn %d: a read ahead failed (%s); the core reads for itself", conn, exc)
        except Exception:
            log.exception("conn %d: a read ahead failed; the core reads for itself", conn)
        held, peer.held = peer.held or deque(), None
        if not peer.closing and self.core is not None:
            self._handle_frame(conn, peer, frame)
        reads = self.reads
        if reads is not None and frame.kind == "request" and frame.op == "post":
            # an answer fetched for this frame serves this frame only
            reads.idempotent.clear()
        while held:
            if peer.held is not None:  # a later frame needed a read of its own: it keeps the rest
                peer.held.extend(held)
                return
            data, text = held.popleft()
            self._on_message(conn, peer, data, text)

    def _handle_frame(self, conn: int, peer: Peer, frame: ClientFrame) -> None:
        try:
            kind = frame.kind
            if not peer.greeted:
                self._greet(conn, peer, frame)
            elif kind == "request":
                if peer.frame_bytes >= self.settings.outbox_bytes:
                    self._overloaded(peer, frame.request_id)
                else:
                    peer.refused = 0
                    self._dispatch(self.core.request(conn, frame, time.monotonic()))
            elif kind == "receipt":
                self._dispatch(self.core.receipt(conn, frame, time.monotonic()))
                crashpoint("hub.after_receipt_before_cursor_commit")  # the ack is decided, not durable
            else:
                self._refuse(peer, ErrorCode.INVALID, "hello was already said on this connection", CloseCode.POLICY)
        except Exception:  # a hub bug must cost one connection, never the hub
            log.exception("conn %d: internal error; closing it with 1011", conn)
            self._hang_up(peer, CloseCode.INTERNAL, "internal error")

    def _overloaded(self, peer: Peer, request_id: str) -> None:
        """The peer's answers are piling up unread (its outbox is over budget): refuse the request
        with the contract's `overloaded`; a peer that keeps sending regardless is closed with 1013."""
        peer.refused += 1
        if peer.refused > self.settings.overloaded_close_after:
            log.warning("conn %d: %d bytes of answers unread; closing it with 1013", peer.conn, peer.frame_bytes)
            peer.drop_queued()
            self._hang_up(peer, CloseCode.TRY_AGAIN_LATER, "too many unread responses; read them, then retry")
            return
        message = f"{peer.frame_bytes} bytes of responses are waiting for you to read them; retry later"
        peer.push(_error_response(request_id, ErrorCode.OVERLOADED, message))

    def _greet(self, conn: int, peer: Peer, frame: ClientFrame) -> None:
        if not isinstance(frame, Hello):
            self._refuse(peer, ErrorCode.INVALID, f"the first frame must be hello, not {frame.kind}", CloseCode.POLICY)
            return
        token = frame.auth.token if frame.auth else None
        if token is None:
            request = peer.ws.request
            token = bearer_token(request.headers.get("Authorization")) if request else None
        problem = self.auth.check(token, frame.name, frame.role)
        if problem:
            log.info("conn %d: refused %s %r: %s", conn, frame.role, frame.name, problem)
            self._refuse(peer, ErrorCode.AUTH_FAILED, problem, CloseCode.FORBIDDEN)
            return
        held = self.core.agents.get(frame.name)
        holder = self.peers.get(held.conn) if held is not None and held.conn is not None else None
        if holder is not None and holder.guarded:
            # a gateway inside this hub serves that identity: a socket must not take it over (the
            # gateway would lose it for good); a second gateway, or a worker named like it, is refused
            message = f"{frame.name} is served by the gateway inside this hub; connect under another name"
            log.info("conn %d: refused %s %r: %s", conn, frame.role, frame.name, message)
            self._refuse(peer, ErrorCode.CONFLICT, message, CloseCode.IN_USE)
            return
        peer.max_size = frame.max_size or PEER_MAX_SIZE
        self._dispatch(self.core.hello(conn, frame, time.monotonic()))
        peer.greeted = not peer.closing  # the core may refuse it too (a reserved name, a client ahead)
        if peer.greeted:
            peer.label = f"{frame.role} {frame.name}"
            log.info("conn %d: %s connected", conn, peer.label)

    # ------------------------------------------------------------------ background tasks

    async def _writer(self) -> None:
        """Group commit: each commit takes everything decided while the previous one ran.

        On a shared store it also keeps the lease: when nothing was written for a quarter of it, a
        heartbeat goes through the session that holds the leadership."""
        beat = self.settings.lease / 4 if self.shared else None
        while not self.stopping and self.stepped_down is None:
            if beat is None:
                await self._commit_wanted.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(beat):
                        await self._commit_wanted.wait()
            self._commit_wanted.clear()
            if self._may_wait():
                continue
            delay = self.settings.commit_delay
            if delay and self.store.commit_on_loop and self._unacked_online() >= COMMIT_SIBLINGS:
                # Busy (PostgreSQL's commit_delay/commit_siblings): a commit on the loop waits a
                # moment so that it takes many posts, as a commit in a thread does while it runs.
                await asyncio.sleep(delay)
            committed = await self._commit_once()
            if self.settings.retain_closed is not None and self.core is not None:
                await self._retention()
            if beat is None or self.stepped_down is not None:
                continue
            now = time.monotonic()
            if committed:
                self._last_io = now
            elif now - self._last_io >= beat:
                try:
                    await asyncio.to_thread(self.store.heartbeat)  # type: ignore[attr-defined]
                except StoreError as exc:
                    self._step_down(str(exc))
                    return
                self._last_io = now

    def _unacked_online(self) -> int:
        """Deliveries in flight to connected agents (a gone worker's stay in flight until the next
        one comes, and must not make an idle hub wait). Counted only when `commit_delay` is set:
        the in-hub AutoGen gateway's hub, a handful of identities."""
        return sum(a.unacked for a in self.core.agents.values() if a.conn is not None)

    def _may_wait(self) -> bool:
        """Cursor rows, receipts and records (Batch.can_wait) wait up to `bookkeeping_wait` for a
        write that a recipient waits on, and then share its commit: an AutoGen RPC after another
        is one commit, not three (with SQLite FULL, one fsync). True: not now (a timer wakes the
        writer when the wait is over; any write before that wakes it too)."""
        wait = self.settings.bookkeeping_wait
        if not wait or self.stopping or not self.core.batch.can_wait():
            self._held_since = None
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._held_since is None:
            self._held_since = now
            loop.call_at(now + wait, self._commit_wanted.set)
            return True
        if now - self._held_since < wait - HOLD_SLACK:  # the timer may fire a hair early (uvloop: ms clock)
            return True
        self._held_since = None
        return False

    async def _retention(self) -> None:
        """Delete channels closed longer ago than `retain_closed` days (in the writer, between commits;
        at most 1,000 per pass, a pass a minute), and tell observers what went."""
        now = time.monotonic()
        if now < self._next_retention:
            return
        days = self.settings.retain_closed
        assert days is not None and self.core is not None
        before = ids.utc_iso(time.time() - days * 86400)
        keep = set(self.core.channels)  # resident: someone has not finished it, or it is not durable yet
        try:
            if self.store.threaded:
                dropped = await asyncio.to_thread(self.store.drop_closed, before, keep, 1000)
            else:
                dropped = self.store.drop_closed(before, keep, 1000)
        except StoreError as exc:
            log.error("%s", exc)
            dropped = []
        self._next_retention = now + (1.0 if len(dropped) >= 1000 else RETENTION_INTERVAL)
        if dropped and self.core is not None:
            self.core.channels_dropped(dropped)
            log.info("retention: dropped %d channels closed before %s", len(dropped), before)
            self.feed.publish(events.ChannelsDropped(len(dropped), before, tuple(dropped[:100])))

    async def _commit_once(self) -> bool:
        batch = self.core.take_batch()
        if batch is None:
            return False
        try:
            if not self.store.commit_on_loop:
                await asyncio.to_thread(self.store.commit, batch)
            else:
                self.store.commit(batch)
                if getattr(self.store, "sync_after_commit", False):
                    try:
                        await self._sync()
                    except StoreError as exc:
                        # SQLite has the rows, the disk may not (after a failed fsync Linux may drop
                        # the dirty pages): neither "stored" nor "failed" is true, so nobody is told
                        # either. Clients retry at the restarted hub with their idempotency keys.
                        self._step_down(str(exc), "cannot make a commit durable")
                        return False
        except StoreError as exc:
            if self.shared and not getattr(self.store, "leading", True):
                # The fence: this hub can no longer commit anything. Whether this last COMMIT reached
                # the database is unknown, so its posts get no answer at all: their clients see the
                # connection close and retry with the same idempotency keys at the active hub.
                self._step_down(str(exc))
                return False
            self._dispatch(self.core.batch_failed(batch.batch_id, str(exc)))
            log.error("store commit failed (%s); answering its posts with errors and reloading", exc)
            try:
                self._reload_after_failure()
            except Exception as reload_exc:  # whatever it is, memory can no longer be trusted
                self._step_down(str(reload_exc), "cannot read the store back after a failed commit")
                return False
            return True
        if batch.envelopes:
            crashpoint("hub.after_commit_before_response")
        self._dispatch(self.core.batch_committed(batch.batch_id, time.monotonic()))
        return True

    async def _sync(self) -> None:
        """Make the commit durable (SQLite FULL: fsync the WAL file). On the loop while fsyncs are
        fast: one (~0.1-0.2 ms on this VM's disk) costs less there than the hop to a thread and back,
        which added ~0.23 ms to an RPC and 160-200 us of hub CPU (measured: docs/autogen.md,
        "Performance"). After one over SYNC_INLINE_MAX the next ones go to a thread, so that a slow
        disk stops the loop once, not at every commit; SYNC_FAST_AGAIN fast ones in a row there
        bring them back."""
        if not self._sync_slow:
            took = _timed_sync(self.store)
            if took > SYNC_INLINE_MAX:
                self._sync_slow, self._fast_syncs = True, 0
                self._slow_syncs += 1
                # a busy disk comes and goes: said as a warning once, then at info (each switch)
                log.log(
                    logging.WARNING if self._slow_syncs == 1 else logging.INFO,
                    "a commit's fsync took %.1f ms: syncing in a worker thread while syncs are slow (%s)",
                    took * 1e3,
                    "the first time" if self._slow_syncs == 1 else f"{self._slow_syncs} times since the hub started",
                )
            return
        took = await asyncio.to_thread(_timed_sync, self.store)
        self._fast_syncs = self._fast_syncs + 1 if took <= SYNC_INLINE_MAX else 0
        if self._fast_syncs >= SYNC_FAST_AGAIN:
            self._sync_slow = False
            log.info("%d fast fsyncs in a row: syncing on the event loop again", self._fast_syncs)

    async def _commit_all(self) -> None:
        with contextlib.suppress(Exception):
            while self.stepped_down is None and await self._commit_once():
                pass

    def _reload_after_failure(self) -> None:
        """Memory is ahead of the store: rebuild the core from what is durable, and make every
        client reconnect so that what it was told matches what the store holds."""
        self._dispatch(self.core.abandon_batch("store failure"))
        # The failed batch held cursor rows recording notifies that did go out: the new core counts
        # everything committed as possibly delivered (as after a crash), so attempt 1 never repeats.
        self.core = self._core_from(assume_delivered(self.store.load()))
        self.core.observed = bool(self.feed.observers)
        for peer in list(self.peers.values()):
            peer.close(CloseCode.TRY_AGAIN_LATER, "store failure; reconnect")

    async def _ticker(self) -> None:
        interval = min(0.1, self.settings.delivery.ack_wait / 4)
        last_latency = 0.0
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self._dispatch(self.core.tick(now))
            if self.feed.observers and now - last_latency >= 2.0:
                last_latency = now
                self.feed.publish(events.AgentLatency(self.latencies()))

    def latencies(self) -> dict[str, float]:
        out = {}
        for agent in self.core.agents.values():
            peer = self.peers.get(agent.conn) if agent.conn is not None else None
            if peer is not None:
                out[agent.name] = round(peer.ws.latency * 1000, 2)
        return out


def tune_gc(gen0: int = 10_000) -> None:
    """Fewer cycle-collector passes on the hot path (a hub process only, not a library caller's).

    Every envelope allocates a few dozen short-lived containers (frames, params, effects), so with
    the default gen0 threshold (700) a pass runs every ~15 envelopes and rescans what is alive at
    that instant. gen0 waits for `gen0` allocations instead, and what the hub loaded and built at
    start is frozen out of the passes. Garbage without cycles is freed at once as before; cyclic
    garbage stays bounded (the gen1 and gen2 thresholds are unchanged)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)


async def run_hub(
    settings: HubSettings,
    *,
    announce: bool = True,
    alongside: Callable[[Hub], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; shut down gracefully (a second signal is not needed).

    `alongside(hub)`: what also runs in this process on the hub's core (the in-hub AutoGen gateway).
    It is entered once the hub is active (a standby has no core until it takes the lead) and left
    before the hub stops, also when the hub steps down."""
    import signal

    hub = Hub(settings)
    await hub.start()
    tune_gc()
    if announce:
        print(hub.summary(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if hub.shared and not hub.active.is_set():
        await _first(stop.wait(), hub.active.wait())
        if hub.active.is_set() and announce:
            print(f"agentnet hub: took over as the active hub on {hub.advertised_url}", flush=True)
    async with contextlib.AsyncExitStack() as beside:
        if alongside is not None and hub.active.is_set() and not stop.is_set():
            try:
                await beside.enter_async_context(alongside(hub))
            except BaseException:
                await hub.stop()
                raise
        await _first(stop.wait(), hub.lost_lead.wait())
        if hub.stepped_down is None and announce:
            what = "what runs beside it first, then " if alongside is not None else ""
            print(f"agentnet hub: shutting down ({what}finishing the commit in progress)", flush=True)
    if hub.stepped_down is not None:
        await hub.stop(CloseCode.TRY_AGAIN_LATER)
        raise HubSteppedDown(hub.stepped_down)
    await hub.stop()


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of these is done; cancel the others."""
    tasks = [asyncio.create_task(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


class HubSteppedDown(Exception):
    """The hub lost the leadership of its shared store (its commits are refused) and stopped."""
