"""ObserverClient: the hub's observer feed as an async iterator of ("snapshot" | "event", dict)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agentnet.protocol.ids import utc_iso

from .connection import HubClient, HubError


class ObserverClient:
    """`async with ObserverClient(url) as feed: async for kind, item in feed: ...`

    Yields a snapshot first, then every event after it, in event_seq order. After a reconnect or
    an `observer.lagged` notice (events were dropped because this reader was slow) it observes
    again and yields a fresh snapshot, so the consumer's view is always whole.
    """

    def __init__(
        self,
        url: str | list[str],
        name: str = "observer",
        *,
        token: str | None = None,
        role: str = "observer",
        **hub_options: Any,
    ) -> None:
        self.hub = HubClient(url, name=name, role=role, token=token, **hub_options)
        self.hub.on_frame = self._on_frame
        self.hub.on_connect = self._observe
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._resnapshot: asyncio.Task | None = None

    async def __aenter__(self) -> ObserverClient:
        await self.hub.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._resnapshot is not None:
            self._resnapshot.cancel()
        await self.hub.close()

    async def _observe(self) -> None:
        """Observe, then follow the snapshot's pages (`next`) so the consumer gets it whole."""
        # Events from now on belong after the snapshot this asks for: hold them until it is queued.
        # (After a hub restart the new hub counts event_seq from 0, and its first events, such as
        # the agents' reconnects and replays, can arrive before the snapshot's answer: measured
        # against the old hub's floor they were dropped.)
        self._queue.put_nowait(("resync", {}))
        snapshot = await self.hub.request("observe")
        pages = snapshot.get("next") or {}
        after = pages.get("channels")
        while after is not None:
            page = await self.hub.request("list_channels", after=after, cursors=True)
            snapshot["channels"] += page["channels"]
            snapshot["cursors"] += page.get("cursors", [])
            after = page.get("next")
        after = pages.get("agents")
        while after is not None:
            page = await self.hub.request("list_agents", after=after)
            snapshot["agents"] += page["agents"]
            after = page.get("next")
        snapshot.setdefault("at", utc_iso())  # when it was taken: its log line gets a time, live and replayed
        self._queue.put_nowait(("snapshot", snapshot))

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("kind") != "event":
            return
        self._queue.put_nowait(("event", frame))
        if frame.get("type") == "observer.lagged":
            self._resnapshot = asyncio.create_task(self._observe_again())

    async def _observe_again(self) -> None:
        try:
            await self._observe()
        except HubError:
            pass  # a reconnect will observe again

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        return await self.hub.request(op, **params)

    async def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        # Events can overtake the snapshot's response in the queue; keep only those after it.
        floor: int | None = None
        early: list[dict[str, Any]] = []
        while True:
            kind, item = await self._queue.get()
            if kind == "resync":
                floor = None
                continue
            if kind == "snapshot":
                floor = item["hub"].get("event_seq", 0)
                yield kind, item
                for ev in early:
                    if ev["event_seq"] > floor:
                        yield "event", ev
                early.clear()
            elif floor is None:
                if item.get("type") == "observer.lagged":  # said at once: the consumer counts the loss
                    yield kind, item
                else:
                    early.append(item)
            elif item["event_seq"] > floor or item.get("type") == "observer.lagged":
                yield kind, item
