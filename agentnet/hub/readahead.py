"""Store reads off the event loop: the core's `EnvelopeSource`, answered from what the shell fetched
ahead in a worker thread, with the store itself as the fallback.

The core is synchronous (events in, effects out), so it cannot await a read. The shell looks at each
frame before the core sees it: when the core is going to need the store (a post whose idempotency
key is not in memory, a `find_by_causation` or `read_wal` beyond the channel's cache, a request
naming a forgotten channel, a hello whose replay reaches below the cache), the shell fetches that
in a thread first, holding that connection's later frames in order, and only then hands the frame
to the core, which finds the answer here. Other connections are served meanwhile.

A channel listing (`list_channels`, an observer's snapshot) is fetched ahead the same way. A read
nobody fetched ahead (a first delivery of an old backlog found by the scanner) still goes to the
store on the loop thread, under the same lock: `sync_reads` counts them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from agentnet.protocol.frames import MAX_PAGE_LIMIT, ClientFrame, Hello, PageParams

from .records import ChannelRecord, Cursor, EnvRecord

if TYPE_CHECKING:
    from .core import HubCore

MAX_AHEAD = 8192  # envelopes kept fetched-ahead and not yet used; beyond that the oldest batch goes
_MISSING = object()


class ReadAhead:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.lock = threading.Lock()  # one read at a time on the store's reader connection
        self.envelopes: dict[str, dict[int, EnvRecord]] = {}
        self.held = 0
        self.idempotent: dict[tuple[str, str], Any] = {}
        self.causation: dict[tuple[str, str, str | None], Any] = {}
        self.channels: dict[str, Any] = {}
        self.listings: dict[tuple[str, int, str | None], list[ChannelRecord]] = {}
        self.sync_reads = 0  # reads the core made on the loop thread (nothing fetched ahead)
        self.async_reads = 0  # reads made in a worker thread ahead of the core

    # ------------------------------------------------------------------ the core's EnvelopeSource

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]:
        got = self.envelopes.get(channel_id)
        if got and after_seq + 1 in got:
            out = []
            seq = after_seq + 1
            while len(out) < limit and (rec := got.pop(seq, None)) is not None:
                out.append(rec)
                seq += 1
            self.held -= len(out)
            if not got:
                del self.envelopes[channel_id]
            return out
        return self._sync(self.store.load_envelopes, channel_id, after_seq, limit)

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None:
        found = self.idempotent.pop((sender, key), _MISSING)
        if found is not _MISSING:
            return found
        return self._sync(self.store.find_idempotent, sender, key)

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None:
        found = self.causation.pop((channel_id, causation_id, sender), _MISSING)
        if found is not _MISSING:
            return found
        return self._sync(self.store.find_by_causation, channel_id, causation_id, sender)

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None:
        found = self.channels.pop(channel_id, _MISSING)
        if found is not _MISSING:
            return found
        return self._sync(self.store.load_channel, channel_id)

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]:
        found = self.listings.pop((after, limit, member), None)
        if found is not None:
            return found
        return self._sync(self.store.list_channels, after, limit, member)

    def _sync(self, fn: Any, *args: Any) -> Any:
        self.sync_reads += 1
        with self.lock:
            return fn(*args)

    # ------------------------------------------------------------------ fetching ahead (the shell)

    def plan(self, core: HubCore, conn: int, greeted: bool, frame: ClientFrame) -> list[Awaitable[None]]:
        """The store reads the core will make for this frame (from connection `conn`, greeted or
        not yet) and cannot answer from memory, as fetches to await before the core gets it."""
        out: list[Awaitable[None]] = []
        if not greeted:
            if isinstance(frame, Hello) and frame.role == "agent":
                # the replay after a reconnect: what was delivered and not acked, below the cache
                for cur in core.cursors.get(frame.name, {}).values():
                    ch = core.channels.get(cur.channel_id)
                    first = cur.ack_floor + 1
                    if ch is None or first > ch.committed_seq or first in ch.cache:
                        continue
                    last = min(ch.committed_seq, max(cur.delivered_seq, first + core.config.window - 1))
                    out.append(self.fetch_envelopes(ch.channel_id, first - 1, min(last - first + 1, 2048)))
            return out
        if frame.kind != "request":
            return out
        params = frame.params

        def param(name: str, kind: type) -> Any:  # typed params, or a dict the core validates later
            value = params.get(name) if isinstance(params, dict) else getattr(params, name, None)
            return value if isinstance(value, kind) and not isinstance(value, bool) else None

        if frame.op in ("list_channels", "observe"):
            # the page's channels that are not resident: read as _channel_page will ask (limit + 1)
            session = core.sessions.get(conn)
            limit = param("limit", int) or PageParams.model_fields["limit"].default
            if session is not None and 1 <= limit <= MAX_PAGE_LIMIT:
                member = session.name if session.role == "agent" and frame.op == "list_channels" else None
                after = (param("after", str) or "") if frame.op == "list_channels" else ""
                out.append(self.fetch_listing(after, limit + 1, member))
            return out
        channel_id = param("channel_id", str)
        ch = core.channels.get(channel_id) if channel_id else None
        if channel_id and ch is None and hasattr(self.store, "load_channel"):
            out.append(self.fetch_channel(channel_id))  # a forgotten channel, paged in for this request
        key = param("idempotency_key", str)
        if frame.op == "post" and key is not None:
            session = core.sessions.get(conn)
            sender = param("as_agent", str) or (session.name if session else None)
            complete = getattr(core, "_idempotency_complete", False)
            if sender and not complete and (sender, key) not in core.idempotency:
                out.append(self.fetch_idempotent(sender, key))
        elif frame.op == "find_by_causation" and ch is not None and (cause := param("causation_id", str)):
            if not any(r.causation_id == cause for r in ch.cache.values()):
                out.append(self.fetch_causation(ch.channel_id, cause, param("sender", str)))
        elif frame.op == "read_wal" and ch is not None:
            after, limit = param("after_seq", int) or 0, param("limit", int) or 100
            if 0 <= after < ch.committed_seq and after + 1 not in ch.cache:
                out.append(self.fetch_envelopes(ch.channel_id, after, max(1, min(limit, 1000))))
        return out

    async def _read(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self.lock:
                return fn(*args)

        self.async_reads += 1
        return await asyncio.to_thread(locked)

    async def fetch_envelopes(self, channel_id: str, after_seq: int, limit: int) -> None:
        records = await self._read(self.store.load_envelopes, channel_id, after_seq, limit)
        if self.held + len(records) > MAX_AHEAD:
            self.envelopes.clear()  # unused fetches: drop them rather than grow
            self.held = 0
        got = self.envelopes.setdefault(channel_id, {})
        for rec in records:
            if rec.seq not in got:
                got[rec.seq] = rec
                self.held += 1

    async def fetch_idempotent(self, sender: str, key: str) -> None:
        self.idempotent[(sender, key)] = await self._read(self.store.find_idempotent, sender, key)
        if len(self.idempotent) > MAX_AHEAD:
            self.idempotent.clear()

    async def fetch_causation(self, channel_id: str, causation_id: str, sender: str | None) -> None:
        key = (channel_id, causation_id, sender)
        self.causation[key] = await self._read(self.store.find_by_causation, channel_id, causation_id, sender)
        if len(self.causation) > MAX_AHEAD:
            self.causation.clear()

    async def fetch_listing(self, after: str, limit: int, member: str | None) -> None:
        """A page of the store's channels, as `list_channels` will ask for it (its `limit` + 1)."""
        if len(self.listings) >= 64:
            self.listings.clear()  # unused fetches (their requests were refused): drop them rather than grow
        self.listings[(after, limit, member)] = await self._read(self.store.list_channels, after, limit, member)

    async def fetch_channel(self, channel_id: str) -> None:
        self.channels[channel_id] = await self._read(self.store.load_channel, channel_id)
        if len(self.channels) > 1024:
            self.channels.clear()
