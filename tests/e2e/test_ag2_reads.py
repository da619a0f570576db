"""The ag2 endpoint's read_wal on a channel the hub has forgotten (closed, finished by everyone: it
lives in the store only) reads the store a bounded number of times, not once or twice per envelope:
those reads are made on the hub's event loop, where every other connection waits for them.

Real hub process (SQLite), native agents write the channel, a raw ag2 client reads it; the hub's
/healthz counts the store reads made on the loop.
"""

from __future__ import annotations

import pytest

from agentnet.client.connection import HubClient

from .procs import HubProc, Peer, Procs, ack_every_delivery, await_until, frame, request

pytestmark = pytest.mark.timeout(90)

COUNT = 400


async def test_ag2_read_wal_of_a_forgotten_channel_reads_the_store_in_pages(procs: Procs) -> None:
    hub = HubProc(procs, procs.workdir / "hub.db").start()
    acked: dict[str, int] = {}
    async with HubClient(hub.url, name="alice") as alice, HubClient(hub.url, name="bob") as bob:
        for client in (alice, bob):
            ack_every_delivery(client, lambda env, name=client.name: acked.__setitem__(name, env["seq"]))
        channel = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
        for i in range(COUNT):
            alice.request_nowait("post", channel_id=channel, type="text", data={"text": f"line {i}"})
        await alice.request("close_channel", channel_id=channel, reason="done")
        head = COUNT + 2
        await await_until("both agents acked the channel", lambda: acked.get("bob") == acked.get("alice") == head)
    hub.terminate()
    hub.start()  # a closed channel everyone finished is not resident after a start

    reads_before = hub.health()["store_reads"]["on_loop"]
    peer = await Peer.open(f"ws://127.0.0.1:{hub.port}/ag2")
    try:
        await peer.ws.send(frame("hello", name="bob"))
        assert (await peer.recv())["kind"] == "welcome"
        got = await peer.ask(request("1", "read_wal", channel_id=channel, since=0, until=None))
        assert got["ok"], got
        wal = got["result"]
        assert [e["event_data"].get("text") for e in wal[1:-1]] == [f"line {i}" for i in range(COUNT)]
        assert wal[0]["event_type"] == "ag2.channel.opened" and wal[-1]["event_type"] == "ag2.channel.closed"
    finally:
        await peer.close()
    reads = hub.health()["store_reads"]["on_loop"] - reads_before
    print(f"store reads on the loop: {reads}")
    assert reads <= 20, f"{reads} store reads on the hub's loop for one read_wal of {head} envelopes"
    assert hub.terminate() == 0
