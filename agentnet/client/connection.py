"""HubClient: one identity's connection to a hub, with requests, receipts and automatic reconnect.

Requests are matched to responses by request_id and may be in flight concurrently; each has a
timeout with a clear error. The hub may be given as a list of URLs (or one comma-separated string):
hubs sharing a PostgreSQL store run active/standby, a standby closes a hello with 4010 (naming the
active hub when it knows it), and the client moves on to the next URL until one welcomes it.
When the connection drops, the client reconnects with jittered
backoff and says hello again (the hub then replays what was not acked); requests that were in
flight fail with `ConnectionLost`, because their outcome is unknown — posts made through
`Channel.send` carry an idempotency key and are retried transparently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.protocol import State

from agentnet import __version__
from agentnet.protocol import redact
from agentnet.protocol.errors import CloseCode
from agentnet.wsfast import BatchedSends, DirectReceives

log = logging.getLogger("agentnet.client")
OPEN = State.OPEN

# The hub closes with these when reconnecting cannot help.
FATAL_CLOSE_CODES = {
    CloseCode.POLICY: "the hub refused a frame (protocol violation)",
    CloseCode.SUPERSEDED: "a newer session took over this name",
    CloseCode.IN_USE: "the name is in use by a connected session",
    CloseCode.FORBIDDEN: "authentication failed",
    CloseCode.CLIENT_AHEAD: "this client is ahead of the hub's log",
}


async def _speaks_tls(url: str, timeout: float = 2.0) -> bool:
    """Whether the host:port of this ws:// URL completes a TLS handshake (certificate not checked)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or 80, ssl=context)
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


class HubError(Exception):
    """The hub answered a request with an error, or could not be reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(HubError):
    """The connection dropped while a request was in flight: its outcome is unknown."""

    def __init__(self, message: str = "connection lost before the hub answered") -> None:
        super().__init__("disconnected", message)


class HubUnavailable(HubError):
    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


class HubStandby(HubUnavailable):
    """The hub at this URL is a standby (close 4010); `active` is the active hub it named, if any."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url} is a standby hub ({reason})")
        marker = "active hub: "
        self.active = reason.split(marker, 1)[1].strip() if marker in reason else None


class HubURLError(ValueError):
    """A hub URL that cannot work: `str()` says what to type instead (one line)."""

    code = "invalid"

    @property
    def message(self) -> str:
        return str(self)


def check_hub_url(url: str) -> str:
    """`url` if it can name a hub, else HubURLError with the URL to use instead."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise HubURLError(f"{url!r} is not a hub URL: write ws://{url.rstrip('/')}{'' if '/' in url else '/v1'}")
    if scheme in ("http", "https"):
        fixed = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
        raise HubURLError(f"{url}: hubs speak WebSocket: use {fixed} (http:// is only for GET /healthz)")
    if scheme not in ("ws", "wss"):
        raise HubURLError(f"{url}: the scheme must be ws:// or wss:// (e.g. ws://127.0.0.1:8765/v1)")
    host, _, path = rest.partition("/")
    if not host:
        raise HubURLError(f"{url}: no host (e.g. ws://127.0.0.1:8765/v1)")
    if not path.strip("/"):  # "/" is the ag2 adapter's endpoint; agentnet's protocol is on /v1
        raise HubURLError(f"{url}: the hub's path is /v1: use {scheme}://{host}/v1")
    return url


def hub_urls(url: str | list[str] | tuple[str, ...]) -> list[str]:
    """`ws://a/v1,ws://b/v1` or a list -> the URLs, in order, without blanks or repeats."""
    items = url.split(",") if isinstance(url, str) else [u for part in url for u in part.split(",")]
    out: list[str] = []
    for item in items:
        item = item.strip()
        if item and item not in out:
            out.append(check_hub_url(item))
    if not out:
        raise HubURLError("no hub URL given")
    return out


# Called for each notify and event frame from the socket's data callback: it must not block.
FrameHandler = Callable[[dict[str, Any]], None]


class _Connection(BatchedSends, DirectReceives, ClientConnection):
    """A websockets client connection whose queued frames go out in one socket write and whose
    incoming frames are handled straight from `data_received` (see `agentnet.wsfast`)."""


class _Outbox:
    """Frames queued for one connection during one turn of the event loop; flushed by one task."""

    __slots__ = ("frames", "request_ids", "sent", "ws")

    def __init__(self, ws: _Connection) -> None:
        self.ws = ws
        self.frames: list[bytes] = []
        self.request_ids: list[str] = []
        self.sent = False


class HubClient:
    """`async with HubClient(url, name="bob") as hub:` — connected and welcomed on entry.

    `url`: one hub, or several (a list, or comma-separated) of which one is active at a time.
    """

    def __init__(
        self,
        url: str | list[str],
        *,
        name: str,
        role: str = "agent",
        token: str | None = None,
        request_timeout: float = 15.0,
        reconnect: bool = True,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
        max_size: int = 4 * 1024 * 1024,
        since: Callable[[], dict[str, int] | None] | None = None,
        takeover: bool | None = None,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.urls = hub_urls(url)
        self.takeover = takeover  # False: refuse to replace a connected session of this name (close 4002)
        self.url = self.urls[0]  # the hub connected to (or tried last)
        self.name = name
        self.role = role
        self.token = token
        redact.add_secret(token)
        self.request_timeout = request_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_size = max_size
        self.since = since
        # wss:// trusts the system's CAs, plus this file's (a private CA or a self-signed certificate)
        self.ca_file = ca_file or os.environ.get("AGENTNET_CA_FILE") or None
        self._ssl: ssl.SSLContext | None = None
        self.welcome: dict[str, Any] | None = None
        self.replaying = 0  # notifies of the current connection's replay still to come (the welcome's count)
        self.on_frame: FrameHandler | None = None  # notify and event frames go here
        self.on_connect: Callable[[], Awaitable[None]] | None = None  # after every (re)connect
        self.on_disconnect: Callable[[str], None] | None = None  # a connection dropped; reconnecting (why)
        self.connections = 0
        self.closed_reason: str | None = None
        self.close_code: int | None = None  # the hub's close code when it ended the connection for good
        self._ws: _Connection | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._outbox: _Outbox | None = None
        self._flushers: set[asyncio.Task] = set()
        self._next_id = 0
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task | None = None
        self._fatal: HubError | None = None
        self._after_connect: asyncio.Task | None = None
        self.ended = asyncio.Event()  # set when the connection is over for good (closed, or a fatal close)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and say hello; raise HubError if the first attempt fails for good.

        With several URLs, each is tried in turn, in rounds, for up to `connect_timeout` seconds
        (during a takeover every hub may be a standby for a moment)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        attempt = 0
        while True:
            try:
                ws = await self._open_any()
                break
            except HubError as exc:
                if len(self.urls) == 1 or not isinstance(exc, HubUnavailable) or loop.time() > deadline:
                    raise
                attempt += 1
                await asyncio.sleep(min(1.0, self.backoff_initial * 1.6**attempt))
        self._runner = asyncio.create_task(self._run(ws), name=f"hub-client-{self.name}")
        if self.on_connect is not None:
            await self.on_connect()

    async def close(self, reason: str = "bye") -> None:
        """Close the session (code 1000; `reason` is what observers see of why)."""
        self._closing = True
        if self._outbox is not None:  # what was queued goes out before the close frame
            await self._flush(self._outbox)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(1000, reason[:120])
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_pending(ConnectionLost("client closed"))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()
        if self._fatal:
            raise self._fatal

    async def _open_any(self) -> _Connection:
        """Try each URL once, starting with the one last connected to (or the active hub a standby
        named); the first welcome wins. Raises the last URL's error if none welcomes."""
        order = self.urls[self.urls.index(self.url) :] + self.urls[: self.urls.index(self.url)]
        error: HubError | None = None
        tried: set[str] = set()
        while order:
            url = order.pop(0)
            if url in tried:
                continue
            tried.add(url)
            try:
                ws = await self._open(url)
            except HubStandby as exc:
                error = exc
                if exc.active and exc.active not in tried:
                    order.insert(0, exc.active)  # it said who leads: go there next
                continue
            except HubUnavailable as exc:
                error = exc
                continue
            if url not in self.urls:
                self.urls.append(url)
            self.url = url
            return ws
        assert error is not None
        raise error

    def _tls(self, url: str) -> dict[str, Any]:
        """`ssl=` for a wss:// URL: the default context (certificate and host name checked), with the
        CA file added; nothing for ws:// (websockets refuses an ssl context there)."""
        if not url.startswith("wss://"):
            return {}
        if self._ssl is None:
            try:
                self._ssl = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise HubError("tls", f"cannot use CA file {self.ca_file}: {why}") from None
        return {"ssl": self._ssl}

    async def _open(self, url: str | None = None) -> _Connection:
        url = url or self.url
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        tls = self._tls(url)
        try:
            ws: _Connection = await connect(  # type: ignore[assignment]
                url,
                **tls,
                compression=None,
                max_size=self.max_size,
                max_queue=16,
                open_timeout=self.connect_timeout,
                close_timeout=min(2.0, self.ping_timeout),  # a frozen hub is not waited on for long
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                additional_headers=headers,
                user_agent_header=f"agentnet/{__version__}",
                proxy=None,
                create_connection=_Connection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise HubError("auth_failed", f"{url} refused the API key (HTTP {status})") from None
            hint = ""
            if status == 404 and not url.rstrip("/").endswith("/v1"):
                hint = f"; the hub's path is /v1: {url.rstrip('/')}/v1" if url.count("/") <= 2 else "; the path is /v1"
            raise HubUnavailable(f"{url} answered HTTP {status}{hint}") from None
        except ssl.SSLCertVerificationError as exc:
            raise HubError(
                "tls",
                f"{url}: the hub's certificate is not trusted ({exc.verify_message}); "
                "pass --ca-file (or set AGENTNET_CA_FILE) with the CA that signed it",
            ) from None
        except ssl.SSLError as exc:
            raise HubError(
                "tls", f"{url}: TLS handshake failed ({exc.reason}); if the hub serves plain ws://, use ws://"
            ) from None
        except InvalidMessage:
            # No HTTP answer: a TLS port read our plain request (and answered with an alert), or the
            # hub went away mid-handshake (killed, or stopping during a failover). Only the first is
            # fatal, so ask the port itself whether it speaks TLS before giving up on it.
            if not tls and await _speaks_tls(url):
                raise HubError(
                    "tls", f"{url}: the hub did not answer in HTTP; it serves TLS: use wss:// instead of ws://"
                ) from None
            raise HubUnavailable(f"cannot reach {url}: the connection closed during the handshake") from None
        except ConnectionResetError:
            if tls:  # a plain server drops a TLS ClientHello it cannot read
                raise HubUnavailable(
                    f"{url}: TLS handshake failed (the connection was reset); if the hub serves plain ws://, use ws://"
                ) from None
            raise HubUnavailable(f"cannot reach {url}: the connection was reset") from None
        except ConnectionRefusedError:
            raise HubUnavailable(
                f"cannot reach {url}: connection refused (is a hub running there? start one: agentnet hub)"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise HubUnavailable(f"cannot reach {url}: {exc}") from None
        hello: dict[str, Any] = {
            "kind": "hello",
            "name": self.name,
            "role": self.role,
            "client": f"agentnet/{__version__}",
            "max_size": self.max_size,  # the hub answers too_large rather than send more
        }
        if self.token:
            hello["auth"] = {"scheme": "api_key", "token": self.token}
        if self.takeover is not None:
            hello["takeover"] = self.takeover
        since = self.since() if self.since else None
        if since:
            hello["since"] = since
        try:
            await ws.send(orjson.dumps(hello).decode())
            async with asyncio.timeout(self.connect_timeout):
                reply = orjson.loads((await ws.first_message())[0])
        except (ConnectionClosed, TimeoutError, EOFError) as exc:
            await ws.close()
            if ws.close_code == CloseCode.STANDBY:
                raise HubStandby(url, ws.close_reason or "standby") from None
            if ws.close_code == CloseCode.IN_USE:
                raise HubError("conflict", ws.close_reason or f"{self.name} is connected") from None
            raise HubUnavailable(f"no welcome from {url}: {exc or 'timed out'}") from None
        if reply.get("kind") != "welcome":
            await ws.close()
            raise HubError(reply.get("code", "invalid"), reply.get("message", f"unexpected {reply.get('kind')}"))
        self.welcome = reply
        self._ws = ws
        log.info(
            "%s: %s %s as %s (session %s)",
            self.name,
            "reconnected to" if self.connections else "connected to",
            url,
            self.role,
            reply.get("session_id"),
        )
        self.connections += 1
        self.replaying = replay = int(reply.get("replay") or 0)
        if replay:
            log.info("%s: replay start: the hub redelivers %d unacked envelope(s) first", self.name, replay)
        self._connected.set()
        ws.attach(self._on_message)  # after the count: replayed notifies belong to this connection
        return ws

    async def _run(self, ws: ClientConnection) -> None:
        try:
            await self._run_connections(ws)
        finally:
            self.ended.set()

    @property
    def fatal(self) -> HubError | None:
        """Why the connection ended for good (superseded, refused, ...), or None."""
        return self._fatal

    async def _run_connections(self, ws: ClientConnection) -> None:
        attempt = 0
        while True:
            reason = await self._until_closed(ws)
            self._connected.clear()
            self._fail_pending(ConnectionLost(reason))
            if self._closing or not self.reconnect or self._fatal:
                return
            log.info("%s: disconnected from %s: %s; reconnecting", self.name, self.url, reason)
            if self.on_disconnect is not None:
                self.on_disconnect(reason)
            moving = len(self.urls) > 1
            if moving:  # the hub it was on died or stepped down: try the others first, at once
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
            while True:  # reconnect with jittered exponential backoff
                if attempt or not moving:
                    delay = min(self.backoff_max, self.backoff_initial * 1.6**attempt) * random.uniform(0.5, 1.0)
                    log.debug("%s: next attempt in %.2f s", self.name, delay)
                    await asyncio.sleep(delay)
                attempt += 1
                try:
                    ws = await self._open_any()
                except HubError as exc:
                    if exc.code in ("auth_failed", "conflict", "tls"):
                        self._fatal = exc
                        self._connected.set()  # wake waiters so they see the error
                        return
                    log.info("%s: reconnect failed: %s (attempt %d)", self.name, exc.message, attempt)
                    continue
                attempt = 0
                if self.on_connect is not None:
                    # Not awaited here: on_connect makes requests, whose answers this task must read.
                    self._after_connect = asyncio.create_task(self._run_on_connect())
                break

    async def _until_closed(self, ws: ClientConnection) -> str:
        """Wait for the connection to end (its frames are handled as they arrive); say why it did."""
        await ws.wait_closed()
        code = ws.close_code
        reason = f"connection closed ({code} {ws.close_reason or ''})".strip()
        if code in FATAL_CLOSE_CODES:
            self.close_code = code
            self._fatal = HubError("closed", f"{FATAL_CLOSE_CODES[code]}: {ws.close_reason}")
            self.closed_reason = self._fatal.message
        return reason

    def _on_message(self, data: bytes, text: bool) -> None:
        try:
            frame = orjson.loads(data)
            kind = frame.get("kind")
            if kind == "response":
                fut = self._pending.pop(frame.get("request_id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
            elif kind in ("notify", "event"):
                if kind == "notify" and self.replaying:
                    self.replaying -= 1
                    if not self.replaying:
                        log.info(
                            "%s: replay end: %d envelope(s) redelivered",
                            self.name,
                            int((self.welcome or {}).get("replay") or 0),
                        )
                if self.on_frame is not None:
                    self.on_frame(frame)
            elif kind == "error":
                log.warning("%s: hub error %s: %s", self.name, frame.get("code"), frame.get("message"))
        except Exception:  # a bad frame or a handler bug must not break the connection's reading
            log.exception("%s: could not handle a frame from the hub", self.name)

    async def _run_on_connect(self) -> None:
        assert self.on_connect is not None
        try:
            await self.on_connect()
        except HubError as exc:
            log.warning("%s: after reconnect: %s", self.name, exc)
        except Exception:
            log.exception("%s: on_connect failed", self.name)

    def _fail_pending(self, exc: HubError) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # ------------------------------------------------------------------ requests and receipts

    async def request(self, op: str, timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """Send a request and return its result, or raise HubError (code from the contract)."""
        if self._fatal:
            raise self._fatal
        if not self._connected.is_set():
            try:
                await self.wait_connected(timeout or self.request_timeout)
            except TimeoutError:
                raise HubUnavailable(f"not connected to {', '.join(self.urls)}") from None
        ws = self._ws
        assert ws is not None
        self._next_id += 1
        request_id = f"r{self._next_id}"
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending[request_id] = fut
        frame = {"kind": "request", "request_id": request_id, "op": op, "params": params}
        self._queue(ws, orjson.dumps(frame), request_id)  # a failed write fails `fut` with ConnectionLost
        # A plain timer on the future rather than asyncio.timeout(): same outcome, a fraction of the cost.
        expiry = loop.call_at(loop.time() + (timeout or self.request_timeout), self._expire, request_id)
        try:
            response = await fut
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise HubError("timeout", f"{op}: no response within {timeout or self.request_timeout:g} s") from None
        finally:
            expiry.cancel()
        if not response["ok"]:
            raise HubError(response.get("error_code") or "internal", response.get("error_message") or "")
        return response.get("result") or {}

    def request_nowait(self, op: str, **params: Any) -> asyncio.Future:
        """Queue a request without awaiting it: the future resolves to the raw response frame
        (`ok`, `result` or `error_code`/`error_message`), or fails with `ConnectionLost` or
        `HubUnavailable`. No timer: the caller keeps its own deadlines. For hot paths that issue
        many requests from a callback (one future each, no task)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        ws = self._ws
        if self._fatal:
            fut.set_exception(self._fatal)
            return fut
        if ws is None or not self._connected.is_set():
            fut.set_exception(HubUnavailable(f"not connected to {self.url}"))
            return fut
        self._next_id += 1
        request_id = f"r{self._next_id}"
        self._pending[request_id] = fut
        frame = {"kind": "request", "request_id": request_id, "op": op, "params": params}
        self._queue(ws, orjson.dumps(frame), request_id)
        return fut

    def _expire(self, request_id: str) -> None:
        fut = self._pending.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.set_exception(TimeoutError())

    async def send_receipt(self, envelope: dict[str, Any], status: str = "ack", reason: str | None = None) -> bool:
        """Send a receipt; False if the connection is down (the hub will redeliver).

        The receipt is queued for this connection's next write (at the end of the current turn of
        the event loop, together with whatever else was queued in it), behind every frame queued
        before it; if that write finds the connection closed, the hub redelivers.
        """
        return self.receipt_nowait(envelope, status, reason)

    def receipt_nowait(self, envelope: dict[str, Any], status: str = "ack", reason: str | None = None) -> bool:
        """`send_receipt` for synchronous callers (it never waits)."""
        ws = self._ws
        if ws is None or not self._connected.is_set() or ws.protocol.state is not OPEN:
            return False
        frame: dict[str, Any] = {
            "kind": "receipt",
            "channel_id": envelope["channel_id"],
            "seq": envelope["seq"],
            "envelope_id": envelope["envelope_id"],
            "status": status,
        }
        if reason:
            frame["reason"] = reason[:1000]
        self._queue(ws, orjson.dumps(frame))
        return True

    def _queue(self, ws: _Connection, data: bytes, request_id: str | None = None) -> None:
        """Queue a frame: everything queued in one turn of the loop goes out in one write, in order."""
        box = self._outbox
        if box is None or box.ws is not ws:
            box = self._outbox = _Outbox(ws)
            task = asyncio.get_running_loop().create_task(self._flush(box))
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        box.frames.append(data)
        if request_id is not None:
            box.request_ids.append(request_id)

    async def _flush(self, box: _Outbox) -> None:
        if box.sent:
            return
        box.sent = True
        if self._outbox is box:
            self._outbox = None  # frames queued from now on go in the next write
        try:
            await box.ws.send_texts(box.frames)
        except ConnectionClosed:
            for request_id in box.request_ids:  # as if each request's own send had failed
                fut = self._pending.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(ConnectionLost())

    async def disconnect_abruptly(self) -> None:
        """For tests and demos: drop the TCP connection without a closing handshake."""
        if self._ws is not None:
            self._ws.transport.abort()
