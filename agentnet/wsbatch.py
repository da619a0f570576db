"""Send several WebSocket text messages in one socket write (a mixin for websockets' asyncio connections).

On loopback the cost of a small message is mostly its `send()` syscall (the kernel runs the receiver's
TCP path inline). A peer's outbox fills in bursts (a commit releases many responses and notifies at
once), so writing them with one syscall instead of one per message is most of the hub's per-envelope
cost saved. The bytes on the wire are exactly those of separate `send()` calls.

This leans on websockets' documented sans-I/O layer (`protocol.send_text`, `data_to_send`) and on the
asyncio connection's `send_context` / `send_data` hooks; pinned to websockets 17 in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import contextlib


class BatchedSends:
    async def send_texts(self, messages: list[bytes]) -> None:
        """Send each of `messages` (UTF-8 bytes) as its own text message, in order, in one write."""
        while self.send_in_progress is not None:  # type: ignore[attr-defined]  # never interleave with a fragmented send
            await asyncio.shield(self.send_in_progress)  # type: ignore[attr-defined]
        async with self.send_context():  # type: ignore[attr-defined]
            protocol = self.protocol  # type: ignore[attr-defined]
            for data in messages:
                protocol.send_text(data)

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
