"""What an observer is shown: the receiver-kill run as a feed of events, and a reader that stalls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .procs import HubProc, KillRun, Peer, Procs, Stream, await_until, check_stream, read_jsonl

pytestmark = pytest.mark.timeout(120)

REQUIRED = ("wal.append", "deliver", "ack", "cursor", "agent.disconnected", "replay.start", "replay.end")


def test_the_kill_and_reconnect_run_as_the_observer_saw_it(receiver_kill_run: KillRun) -> None:
    run = receiver_kill_run
    stream, bob = run.stream, run.stream.receiver
    channel, head = stream.channel_id, stream.head()
    snapshot, events = run.events[0], run.events[1:]
    assert snapshot["kind"] == "snapshot" and snapshot["channels"] == []  # it watched from before the channel

    # one gapless feed: event_seq goes up by one per event, nothing was dropped
    first = snapshot["hub"]["event_seq"] + 1
    assert [e["event_seq"] for e in events] == list(range(first, first + len(events)))
    types = Counter(e["type"] for e in events)
    assert "observer.lagged" not in types
    assert all(types[t] for t in REQUIRED), types

    # every envelope of the stream appended once, in seq order
    appended = [e["envelope"]["seq"] for e in events if e["type"] == "wal.append"]
    assert appended == list(range(1, head + 1))

    # bob's sessions: connected, killed (disconnected), connected, replay.start, replay.end, ...
    mine = [e for e in events if bob in (e.get("name"), e.get("recipient"))]
    lifecycle = [
        e for e in mine if e["type"] in ("agent.connected", "agent.disconnected", "replay.start", "replay.end")
    ]
    kinds = [e["type"] for e in lifecycle]
    assert kinds[0] == "agent.connected" and kinds[-1] == "agent.disconnected"
    assert kinds.count("agent.connected") == kinds.count("agent.disconnected") == run.kills + 1
    codes = [e["code"] for e in lifecycle if e["type"] == "agent.disconnected"]
    # killed: the hub saw the socket die (1006), or the new session fenced the old one first (4001)
    assert all(code in (1006, 4001) for code in codes[:-1]) and codes[-1] == 1000, codes
    replays = 0
    for i, e in enumerate(lifecycle):
        if e["type"] != "replay.start":
            continue
        replays += 1
        # the replay starts right after the new hello, which follows the killed session's end
        assert kinds[i - 2 : i] == ["agent.disconnected", "agent.connected"]
        end = lifecycle[i + 1]
        assert end["type"] == "replay.end" and end["count"] == e["count"] > 0
        resent = [
            d["seq"]
            for d in mine
            if d["type"] == "deliver" and e["event_seq"] < d["event_seq"] < end["event_seq"] and d["attempt"] > 1
        ]
        assert resent == sorted(resent) and len(resent) == e["count"], (resent[:5], e)
    assert replays >= 1  # the second kill found a full window in flight
    assert replays == kinds.count("replay.end")

    # first deliveries in seq order; every ack follows a delivery of that seq; the floor only rises
    firsts = [e["seq"] for e in mine if e["type"] == "deliver" and e["attempt"] == 1]
    assert firsts == sorted(set(firsts)) and firsts[-1] == head
    delivered: set[int] = set()
    floors: list[int] = []
    for e in mine:
        if e.get("channel_id") != channel:
            continue
        if e["type"] == "deliver":
            delivered.add(e["seq"])
        elif e["type"] == "ack":
            assert e["seq"] in delivered, e
        elif e["type"] == "cursor":
            floors.append(e["ack_floor"])
    assert floors == sorted(floors) and floors[-1] == head


async def _request(ws: ClientConnection, request_id: str, op: str) -> dict:
    """Send a request; skip event frames until its response comes."""
    await ws.send(orjson.dumps({"kind": "request", "request_id": request_id, "op": op, "params": {}}).decode())
    try:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["kind"] == "response" and frame["request_id"] == request_id:
                assert frame["ok"], frame
                return frame["result"]
    except ConnectionClosed as exc:
        raise AssertionError(f"the hub closed the observer: {exc}") from None


STALL_UNTIL = 6_000  # the observer reads nothing until this many posts were answered


async def test_an_observer_that_stops_reading_lags_and_does_not_slow_the_stream(
    procs: Procs, evidence: Path, tmp_path: Path
) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    stream = Stream(procs, hub, evidence, run="lag", count=10_000)
    stream.start_receiver()

    # Small socket buffers (set before connecting: a small receive window, and a small MSS so the
    # hub's kernel sizes its send buffer small too): the feed piles up in the hub's queue, not in the kernel.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
    sock.connect(("127.0.0.1", hub.port))
    async with connect(hub.url, sock=sock, compression=None, max_queue=16, ping_interval=None) as ws:
        await ws.send(orjson.dumps({"kind": "hello", "name": "slowpoke", "role": "observer"}).decode())
        assert orjson.loads(await ws.recv())["kind"] == "welcome"
        await _request(ws, "o1", "observe")
        reading = asyncio.Event()
        seen: list[dict] = []

        async def reader() -> None:
            while True:
                await reading.wait()
                seen.append(orjson.loads(await ws.recv()))

        task = asyncio.create_task(reader())
        # It reads nothing while 6,000 posts (30,000 events) go by: more than its queue at the hub
        # (20,000 events) holds, and the hub's sends to it are blocked far shorter than the hub's
        # 10 s send deadline (after which it would drop the connection instead of reporting the lag).
        stream.start_sender()
        await await_until("6,000 posts", lambda: stream.posted() >= STALL_UNTIL, 60)
        reading.set()
        lagged = await await_until(
            "observer.lagged", lambda: next((e for e in seen if e.get("type") == "observer.lagged"), None), 30
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert lagged["dropped"] > 0
        # The feed stayed in event_seq order, and the events it was not shown up to the marker (which
        # carries the event_seq current when it was sent) are exactly the ones it was told about.
        shown = [e["event_seq"] for e in seen[: seen.index(lagged)]]
        assert shown == sorted(set(shown)) and lagged["event_seq"] >= shown[-1]
        assert lagged["event_seq"] - shown[0] + 1 - len(shown) == lagged["dropped"]
        fresh = await _request(ws, "o2", "observe")  # the whole picture again, on the same connection
        assert fresh["hub"]["event_seq"] >= lagged["event_seq"]
        await Peer(ws).close()

    stream.wait_sent()
    stream.wait_drained()
    stream.stop()
    check_stream(stream)
    # post rates from the sender's own clock: while the observer read nothing, and after
    ts = sorted(op["t"] for op in read_jsonl(stream.ops_path))
    stalled_rate = (STALL_UNTIL - 500) / (ts[STALL_UNTIL - 1] - ts[499])
    reading_rate = (len(ts) - STALL_UNTIL) / (ts[-1] - ts[STALL_UNTIL - 1])
    # Reported, not asserted: a rate compared against a rate swings with the machine's load. That the
    # stream was not held up is shown above by the 6,000 posts answered while the observer read nothing.
    print(
        f"dropped {lagged['dropped']}; posts/s while the observer stalled: {stalled_rate:.0f}, then {reading_rate:.0f}"
    )
