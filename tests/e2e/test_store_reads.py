"""Channel listings of channels the hub has forgotten (closed, finished by everyone: in the store
only) are read off the event loop: an observer's snapshot and `list_channels` are fetched ahead in
a worker thread, so a slow store delays the asker, never every other connection.

Real hub process (SQLite); the hub's /healthz counts the store reads made on the loop.
"""

from __future__ import annotations

from collections import Counter

import pytest

from agentnet.client.connection import HubClient

from .procs import HubProc, Procs, ack_every_delivery, await_until

pytestmark = pytest.mark.timeout(90)

CHANNELS = 5


async def test_listings_of_forgotten_channels_are_read_ahead_not_on_the_loop(procs: Procs) -> None:
    hub = HubProc(procs, procs.workdir / "hub.db").start()
    acked: Counter[str] = Counter()
    async with HubClient(hub.url, name="alice") as alice, HubClient(hub.url, name="bob") as bob:
        for client in (alice, bob):
            ack_every_delivery(client, lambda env, name=client.name: acked.update([name]))
        for i in range(CHANNELS):
            opened = await alice.request("open_channel", type="conversation", participants=["bob"], topic=f"t{i}")
            await alice.request("close_channel", channel_id=opened["channel_id"], reason="done")
        # each channel: its opening to both, its closing to both
        await await_until("both agents acked every channel", lambda: acked == {"alice": 10, "bob": 10})
    hub.terminate()
    hub.start()  # a closed channel everyone finished is not resident after a start

    before = hub.health()["store_reads"]
    async with HubClient(hub.url, name="watcher", role="observer") as watcher, HubClient(hub.url, name="bob") as bob:
        snapshot = await watcher.request("observe")
        listed = await watcher.request("list_channels", cursors=True, limit=3)
        rest = await watcher.request("list_channels", after=listed["next"])
        mine = await bob.request("list_channels")
    after = hub.health()["store_reads"]

    topics = [f"t{i}" for i in range(CHANNELS)]
    assert sorted(ch["topic"] for ch in snapshot["channels"]) == topics
    assert sorted(ch["topic"] for ch in listed["channels"] + rest["channels"]) == topics
    assert sorted(ch["topic"] for ch in mine["channels"]) == topics
    assert after["on_loop"] == before["on_loop"], (before, after)
    assert after["ahead"] >= before["ahead"] + 4
    assert hub.terminate() == 0
