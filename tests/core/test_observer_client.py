"""ObserverClient's ordering of snapshots and events (its queue fed as the hub's frames would be)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentnet.client import ObserverClient


def snapshot(event_seq: int, started_at: str) -> dict[str, Any]:
    return {"hub": {"hub_id": "h", "started_at": started_at, "event_seq": event_seq}, "agents": [], "channels": []}


def event(seq: int, type_: str = "ack") -> dict[str, Any]:
    return {"kind": "event", "event_seq": seq, "type": type_}


async def test_events_of_a_restarted_hub_that_overtake_its_snapshot_are_kept() -> None:
    """The new hub counts event_seq from 0 again, and an agent's reconnect and replay can reach the
    observer before the answer to its `observe`: they were measured against the old hub's floor
    and dropped, so the dashboard never showed that agent's reconnect or replay."""
    client = ObserverClient("ws://127.0.0.1:9/v1")
    queue = client._queue
    queue.put_nowait(("resync", {}))
    queue.put_nowait(("snapshot", snapshot(5000, "A")))
    queue.put_nowait(("event", event(5001)))
    queue.put_nowait(("event", event(4990)))  # older than the snapshot: dropped
    # the hub restarts; the observer reconnects and observes again
    queue.put_nowait(("resync", {}))
    queue.put_nowait(("event", event(1, "agent.connected")))  # overtook the snapshot's answer
    queue.put_nowait(("event", event(2, "replay.start")))
    queue.put_nowait(("snapshot", snapshot(1, "B")))  # taken after event 1
    queue.put_nowait(("event", event(3, "replay.end")))
    got: list[tuple[str, Any]] = []

    async def read() -> None:
        async for kind, item in client:
            got.append((kind, item["hub"]["started_at"] if kind == "snapshot" else item["event_seq"]))
            if len(got) == 5:
                return

    await asyncio.wait_for(read(), 5)
    assert got == [("snapshot", "A"), ("event", 5001), ("snapshot", "B"), ("event", 2), ("event", 3)]
