"""Two fast paths over websockets' asyncio connections: batched sends and direct receives.

On loopback the cost of a small message is mostly Python work around it, not the bytes:

* **Batched sends.** A peer's outbox fills in bursts (a commit releases many responses and notifies
  at once), and the kernel runs the receiver's TCP path inline in each `send()` syscall. Writing a
  burst with one syscall instead of one per message saves most of the hub's per-envelope send cost,
  and framing the burst in one function (no Frame object per message) saves most of the rest. The
  bytes on the wire are those of separate `send()` calls (the masks of a client's frames aside,
  which are random either way).
* **Direct receives.** websockets queues every incoming message in an assembler, and a reader task
  awaits `recv()` for each. A hub that handles a frame synchronously anyway gains nothing from the
  queue: `attach(callback)` hands each complete message to the callback straight from
  `data_received`, with no queue, no UTF-8 decode (orjson validates UTF-8 itself) and no task switch.
  Control frames, the closing handshake and keepalive stay websockets' own.

Both lean on websockets' sans-I/O layer (`protocol.send_text`, `writes`, `data_to_send`, `fail`)
and on the asyncio connection's `send_context` / `send_data` / `process_event` hooks; pinned to
websockets 17 in pyproject.toml, and the tests run every frame of the suite through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode, apply_mask
from websockets.protocol import Side, State

MessageCallback = Callable[[bytes, bool], None]  # (payload, is_text)
MAX_FRAGMENTS = 4096  # as websockets' own assembler: max_size bounds the bytes, this the frame count


def encode_text_frames(messages: list[bytes], mask: bool) -> bytes:
    """Unfragmented text frames, as websockets' `Frame.serialize` writes them without extensions.

    A client masks every frame (RFC 6455 5.3) with its own key, here sliced from one urandom
    call per batch rather than one per frame.
    """
    parts: list[bytes] = []
    keys = os.urandom(4 * len(messages)) if mask else b""
    mask_bit = 0x80 if mask else 0
    for i, data in enumerate(messages):
        length = len(data)
        if length < 126:
            parts.append(bytes((0x81, mask_bit | length)))
        elif length < 65536:
            parts.append(_HEAD16.pack(0x81, mask_bit | 126, length))
        else:
            parts.append(_HEAD64.pack(0x81, mask_bit | 127, length))
        if mask:
            key = keys[4 * i : 4 * i + 4]
            parts.append(key)
            parts.append(apply_mask(data, key))
        else:
            parts.append(data)
    return b"".join(parts)


_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


class BatchedSends:
    async def send_texts(self, messages: list[bytes]) -> None:
        """Send each of `messages` (UTF-8 bytes) as its own text message, in order, in one write."""
        while self.send_in_progress is not None:  # type: ignore[attr-defined]  # never interleave with a fragmented send
            await asyncio.shield(self.send_in_progress)  # type: ignore[attr-defined]
        async with self.send_context():  # type: ignore[attr-defined]
            protocol = self.protocol  # type: ignore[attr-defined]
            if protocol.extensions or protocol.debug or protocol.state is not State.OPEN:
                for data in messages:  # the library's own path, which also raises what it should
                    protocol.send_text(data)
            else:
                protocol.writes.append(encode_text_frames(messages, protocol.side is Side.CLIENT))

    def send_data(self) -> None:
        writes = self.protocol.data_to_send()  # type: ignore[attr-defined]
        if len(writes) > 1 and all(writes):
            writes = [b"".join(writes)]
        transport = self.transport  # type: ignore[attr-defined]
        for data in writes:
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # SEND_EOF: half-close, as websockets does
                with contextlib.suppress(Exception):
                    transport.write_eof()
            else:  # pragma: no cover - TLS transports cannot half-close
                transport.close()


class DirectReceives:
    """Deliver complete messages to a callback from `data_received` once `attach` is called.

    Messages that arrive before `attach` are held and handed over, in order, when it is called;
    `first_message()` takes the first one out before that (a handshake reply, e.g. a welcome).
    The callback runs inside the event loop's protocol callback: it must not block or raise.
    """

    _on_message: MessageCallback | None = None
    _held: list[tuple[bytes, bool]] | None = None
    _first: asyncio.Future | None = None
    _fragments: list[Frame] | None = None
    _failing: asyncio.Task | None = None

    def attach(self, on_message: MessageCallback) -> None:
        held, self._held = self._held, None
        self._on_message = on_message
        for data, text in held or ():
            on_message(data, text)

    async def first_message(self) -> tuple[bytes, bool]:
        """The first message, before `attach`; raises EOFError if the connection closes first."""
        if self._held:
            return self._held.pop(0)
        self._first = asyncio.get_running_loop().create_future()
        if self.connection_lost_waiter.done():  # type: ignore[attr-defined]
            raise EOFError("the connection closed")
        try:
            return await self._first
        finally:
            self._first = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        if self._first is not None and not self._first.done():
            self._first.set_exception(EOFError("the connection closed"))

    def process_event(self, event: Any) -> None:
        if type(event) is not Frame or event.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            super().process_event(event)  # type: ignore[misc]  # handshake, ping, pong, close
            return
        if self._failing is not None:  # failing the connection: nothing it sent after that is processed
            return
        if event.opcode is not Opcode.CONT:
            if event.fin:
                self._deliver(bytes(event.data), event.opcode is Opcode.TEXT)
            else:
                self._fragments = [event]
            return
        # The protocol layer has already refused a continuation without a start, and max_size
        # counts the whole message, so only the number of fragments is left to bound here.
        fragments = self._fragments
        assert fragments is not None  # the protocol layer refuses a continuation without a start
        fragments.append(event)
        if event.fin:
            self._fragments = None
            self._deliver(b"".join(f.data for f in fragments), fragments[0].opcode is Opcode.TEXT)
        elif len(fragments) >= MAX_FRAGMENTS:
            self._fragments = None
            self._failing = asyncio.get_running_loop().create_task(
                self._fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
            )

    def _deliver(self, data: bytes, text: bool) -> None:
        if self._on_message is not None:
            self._on_message(data, text)
        elif self._first is not None and not self._first.done():
            self._first.set_result((data, text))
        else:
            if self._held is None:
                self._held = []
            self._held.append((data, text))

    async def _fail(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            async with self.send_context():  # type: ignore[attr-defined]
                self.protocol.fail(code, reason)  # type: ignore[attr-defined]
