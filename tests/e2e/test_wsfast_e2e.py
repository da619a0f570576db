"""`agentnet.wsfast` receives in a real hub: fragmented messages, the fragment limit, frames sent with the hello."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection

from agentnet.wsfast import MAX_FRAGMENTS

from .procs import HubProc, Peer, Procs, frame, request

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProc]:
    """One hub for the module; it must stop cleanly, log no traceback, and be proven gone afterwards."""
    workdir = tmp_path_factory.mktemp("wsfast")
    procs = Procs(workdir)
    try:
        hub = HubProc(procs, workdir / "hub.db").start()
        yield hub
        log = hub.proc.log() if hub.proc else ""
        assert hub.terminate() == 0, log
        assert "Traceback" not in log, log
    finally:
        procs.close()


def queue_fragmented(ws: ClientConnection, data: str, count: int, *, last: bool = True) -> None:
    """Frame `data` as a text message of `count` frames (all of it in the first, then empty continuations);
    with `last=False` the message is left unfinished."""
    ws.protocol.send_text(data.encode(), fin=count == 1 and last)
    for i in range(1, count):
        ws.protocol.send_continuation(b"", fin=i == count - 1 and last)


def write_queued(ws: ClientConnection) -> None:
    """Everything the client has framed, in one socket write: the hub reads it in one `data_received`."""
    assert ws.transport is not None
    ws.transport.write(b"".join(ws.protocol.data_to_send()))


async def test_a_fragmented_hello_is_reassembled(hub: HubProc) -> None:
    peer = await Peer.open(hub.url)
    hello = frame("hello", name="frag", role="agent")
    await peer.ws.send(hello[i : i + 5] for i in range(0, len(hello), 5))
    welcome = await peer.recv()
    assert welcome["kind"] == "welcome", welcome
    answer = await peer.ask(request("r1", "list_agents"))
    assert answer["ok"], answer
    assert "frag" in [a["name"] for a in answer["result"]["agents"]]
    await peer.close()


async def test_a_message_past_the_fragment_limit_closes_with_1009_and_the_hub_goes_on(hub: HubProc) -> None:
    peer = await Peer.open(hub.url, "many")
    queue_fragmented(peer.ws, request("r1", "list_agents"), MAX_FRAGMENTS)  # the limit itself is fine
    write_queued(peer.ws)
    assert (await peer.recv())["ok"]

    queue_fragmented(peer.ws, request("r2", "list_agents"), MAX_FRAGMENTS, last=False)  # and more to come
    write_queued(peer.ws)
    assert await closed_by_hub(peer) == (1009, "too many fragments")
    await answers_a_fresh_client(hub.url, "after-many")


async def test_fragments_past_the_limit_in_the_same_read_close_with_1009(hub: HubProc) -> None:
    witness = await Peer.open(hub.url, "burst-witness")  # known to the hub, so a channel with it could open
    peer = await Peer.open(hub.url, "burst")
    queue_fragmented(peer.ws, request("r1", "list_agents"), MAX_FRAGMENTS + 3)  # the tail arrives in the same read
    opened = request("r2", "open_channel", type="conversation", participants=["burst-witness"])
    peer.ws.protocol.send_text(opened.encode())  # and a request after it: never processed
    write_queued(peer.ws)
    assert await closed_by_hub(peer) == (1009, "too many fragments")
    assert (await witness.ask(request("w1", "list_channels")))["result"]["channels"] == []
    await witness.close()


async def test_frames_in_the_hellos_segment_are_all_answered_in_order(hub: HubProc) -> None:
    peer = await Peer.open(hub.url)
    peer.ws.protocol.send_text(frame("hello", name="eager", role="agent").encode())
    for request_id in ("r1", "r2", "r3"):
        peer.ws.protocol.send_text(request(request_id, "list_agents").encode())
    write_queued(peer.ws)

    assert (await peer.recv())["kind"] == "welcome"
    answers = [await peer.recv() for _ in range(3)]
    assert [(a["kind"], a["request_id"], a["ok"]) for a in answers] == [
        ("response", "r1", True),
        ("response", "r2", True),
        ("response", "r3", True),
    ]
    await peer.close()


async def closed_by_hub(peer: Peer) -> tuple[int | None, str | None]:
    async with asyncio.timeout(15):
        await peer.ws.wait_closed()
    return peer.ws.close_code, peer.ws.close_reason


async def answers_a_fresh_client(url: str, name: str) -> None:
    fresh = await Peer.open(url, name)
    assert (await fresh.ask(request("r1", "list_agents")))["ok"]
    await fresh.close()
