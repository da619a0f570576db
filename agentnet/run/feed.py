"""Feed sources: anything that yields :data:`~agentnet.run.items.FeedItem` ``(kind, payload)`` pairs.

The dashboard consumes one ``AsyncIterator[FeedItem]``; live and playback share the same code.

* :func:`frames_feed` adapts an observer client's stream of hub frames (snapshot dicts and
  ``{"kind": "event"}`` frames) to feed items.
* :class:`QueueFeed` is a feed you push into (the launcher's process events, captions, faults).
* :func:`merge_feeds` interleaves several feeds into one.
* :func:`recording_feed` replays a recording as a feed (instantly, or in real time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from agentnet.run.items import FEED_KINDS, FeedItem
from agentnet.run.recording import RecordingReader


def classify(frame: dict[str, Any]) -> FeedItem:
    """Turn one hub/launcher frame into a feed item by its ``kind`` (a bare snapshot has none)."""
    kind = frame.get("kind")
    if kind in FEED_KINDS:
        return (kind, frame)
    if kind is None and "hub" in frame and "agents" in frame:
        return ("snapshot", frame)
    raise ValueError(f"unknown feed frame kind {kind!r}")


async def frames_feed(frames: AsyncIterable[dict[str, Any] | FeedItem]) -> AsyncIterator[FeedItem]:
    """Adapt a stream of frames (or ready-made feed items) to feed items."""
    async for frame in frames:
        yield frame if isinstance(frame, tuple) else classify(frame)


async def items_feed(items: Iterable[FeedItem]) -> AsyncIterator[FeedItem]:
    for item in items:
        yield item


class QueueFeed:
    """A feed you push items into; iterate it once. ``close()`` ends the iteration.

    Bounded: when full, ``put_nowait`` drops the oldest item and counts it (the dashboard must never
    slow its producers down).
    """

    _END: Any = object()

    def __init__(self, maxsize: int = 100_000) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Items queued and not consumed yet."""
        return self._queue.qsize()

    def put_nowait(self, kind: str, data: dict[str, Any]) -> None:
        if self._closed:
            return
        while True:
            try:
                self._queue.put_nowait((kind, data))
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()
                    self.dropped += 1

    async def put(self, kind: str, data: dict[str, Any]) -> None:
        self.put_nowait(kind, data)

    def close(self) -> None:
        """End the iteration once what is queued has been consumed."""
        if not self._closed:
            self._closed = True
            # wakes a consumer waiting on an empty queue; a full queue has no waiting consumer
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(self._END)

    def __aiter__(self) -> AsyncIterator[FeedItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[FeedItem]:
        while True:
            if self._closed and self._queue.empty():
                return
            item = await self._queue.get()
            if item is self._END:
                return
            yield item


async def merge_feeds(*feeds: AsyncIterable[FeedItem]) -> AsyncIterator[FeedItem]:
    """Interleave feeds as items arrive; ends when every feed has ended."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=10_000)
    done = object()

    async def pump(feed: AsyncIterable[FeedItem]) -> None:
        try:
            async for item in feed:
                await queue.put(item)
        finally:
            await queue.put(done)

    tasks = [asyncio.create_task(pump(feed)) for feed in feeds]
    remaining = len(tasks)
    try:
        while remaining:
            item = await queue.get()
            if item is done:
                remaining -= 1
                continue
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def recording_feed(
    path: str | Path, *, realtime: bool = False, speed: float = 1.0, limit: int | None = None
) -> AsyncIterator[FeedItem]:
    """Replay a recording as a feed: instantly, or with the recorded pacing (``realtime``)."""
    reader = RecordingReader(path)
    items = reader.items if limit is None else reader.items[:limit]
    loop = asyncio.get_running_loop()
    start = loop.time()
    for recorded in items:
        if realtime:
            delay = recorded.t / speed - (loop.time() - start)
            if delay > 0:
                await asyncio.sleep(delay)
        yield recorded.item
