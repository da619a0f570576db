"""Byte budgets under abuse: the hub's RSS stays within 64 MB of its baseline, the abuser gets the
contract's answer, and a stream between two other agents goes on unaffected (check_stream holds).

* a client pipelines 600 `read_wal` requests (each answered with a ~512 KB page) and never reads:
  the answers over its outbox budget get `overloaded`, and since it keeps asking, close 1013;
* an observer that stops reading while 128 KiB envelopes stream: its queue is bounded in bytes,
  it stays connected past the send deadline, and is told it lagged (`observer.lagged`).

The figures each run measured are printed (docs/limits.md quotes them).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .procs import HubProc, Peer, Procs, Stream, check_stream, frame, request

pytestmark = pytest.mark.timeout(150)

MB = 1024 * 1024
BUDGET = 64 * MB


class RssSampler:
    """The hub's resident set size, sampled every 50 ms in a thread: the peak above a baseline."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


async def hold_until(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_pipelined_reads_from_a_client_that_never_reads(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    # a channel holding ~1.2 MB: every read_wal of it from seq 0 is a ~512 KB page
    alice = await Peer.open(hub.url, "alice")
    bob = await Peer.open(hub.url, "bob")
    opened = await alice.ask(request("o", "open_channel", type="conversation", participants=["bob"]))
    channel = opened["result"]["channel_id"]
    for n in range(20):
        assert (await alice.ask(request(f"p{n}", "post", channel_id=channel, type="note", data={"x": "y" * 60_000})))[
            "ok"
        ]
    await bob.close()
    stream = Stream(procs, hub, evidence, run="reads", count=2_000, sender="carol", receiver="dave")
    stream.start_receiver()
    stream.start_sender()
    stream.wait_processed(200)
    rss = RssSampler(hub.proc.pid)  # type: ignore[union-attr]

    abuser = await connect(hub.url, compression=None, max_size=2 * MB, max_queue=1)
    await abuser.send(frame("hello", name="spy", role="observer"))
    reads = [request(f"r{i}", "read_wal", channel_id=channel, after_seq=0, limit=1000) for i in range(600)]
    for r in reads:
        await abuser.send(r)
    # the hub answers, queues up to its outbox budget, refuses the rest and closes the connection
    started = time.monotonic()
    await asyncio.to_thread(stream.wait_processed, 1_500)
    while time.monotonic() - started < 5:
        await asyncio.sleep(0.1)
    grown = rss.stop()
    print(f"pipelined read_wal x600, never read: hub RSS +{grown / MB:.1f} MB")
    assert grown < BUDGET, f"hub RSS grew {grown / MB:.1f} MB"
    codes: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                got = orjson.loads(await abuser.recv())
                if got.get("kind") == "response" and not got["ok"]:
                    codes.append(got["error_code"])
    except ConnectionClosed:
        pass
    assert abuser.close_code == 1013, abuser.close_code
    assert set(codes) <= {"overloaded"}
    stream.wait_sent()
    stream.wait_drained()
    await alice.close()
    stream.stop()
    check_stream(stream)  # the other stream lost nothing, in order


async def test_an_observer_that_stops_reading_is_told_it_lagged(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    """128 KiB envelopes stream while an observer reads nothing for longer than the send deadline."""
    extra = ["--send-timeout", "1", "--ping-interval", "60", "--ping-timeout", "60"]  # no keepalive verdict here
    hub = HubProc(procs, tmp_path / "hub.db", extra).start()
    stream = Stream(procs, hub, evidence, run="lag", count=600, pad=128 * 1024)
    stream.start_receiver()
    watcher = await connect(hub.url, compression=None, max_size=4 * MB, max_queue=1)
    await watcher.send(frame("hello", name="watcher", role="observer"))
    assert orjson.loads(await watcher.recv())["kind"] == "welcome"
    await watcher.send(request("w1", "observe"))
    assert orjson.loads(await watcher.recv())["kind"] == "response"
    rss = RssSampler(hub.proc.pid)  # type: ignore[union-attr]
    stream.start_sender()
    # the watcher reads nothing while ~80 MB of wal.append events go by (far past its 1 s send deadline)
    await asyncio.to_thread(stream.wait_sent, 120)
    await asyncio.to_thread(stream.wait_drained)
    grown = rss.stop()
    print(f"observer not reading, 600 x 128 KiB envelopes: hub RSS +{grown / MB:.1f} MB")
    assert grown < BUDGET, f"hub RSS grew {grown / MB:.1f} MB"
    lagged = None
    async with asyncio.timeout(60):
        while lagged is None:
            got = orjson.loads(await watcher.recv())  # raises ConnectionClosed if the hub dropped it
            if got.get("type") == "observer.lagged":
                lagged = got
    assert lagged["dropped"] > 0
    await watcher.close()
    stream.stop()
    check_stream(stream)
