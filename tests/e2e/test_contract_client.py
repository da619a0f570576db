"""An independent client of the wire contract, written from `protocol-v1.md` alone with raw
`websockets` (no agentnet SDK, no test helpers that know the hub): every check of the contract
against a real hub process on a real SQLite file.

Covered: hello/welcome, a conversation that takes thousands of posts, binary frames (close 1003),
delivery in seq order with attempt 1, nack -> redelivery with attempt 2, idempotent retries (same
envelope_id and seq, nothing appended), paged read_wal, observer snapshot and events (event_seq +1
each), kill -9 of the hub and restart (seqs continue, unacked envelopes replayed, retries resolved).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(150)

REPO = Path(__file__).resolve().parents[2]
POSTS = 3_000


class Hub:
    """`agentnet hub` as a black box: a port, /healthz, SIGKILL, restart on the same port and file."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        port_file = self.workdir / f"port.{self.starts}"
        log = (self.workdir / f"hub.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentnet.cli", "hub", "--port", str(self.port), "--port-file", str(port_file),
             "--store", f"sqlite:{self.workdir / 'hub.db'}", "--nack-backoff", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                    health = json.loads(resp.read())
                    assert health["status"] == "ok" and {"hub_id", "agents", "channels"} <= set(health)
                    return
            except OSError:
                assert time.monotonic() < deadline, "/healthz did not answer"
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            assert self.proc.wait(timeout=20) == 0


class Client:
    """A connection: requests matched by request_id, notifies and events kept in arrival order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0
        self.responses: dict[str, dict] = {}
        self.notifies: list[dict] = []
        self.events: list[dict] = []
        self.reader = asyncio.create_task(self._read())
        self.changed = asyncio.Event()

    @classmethod
    async def hello(cls, url: str, name: str, role: str = "agent", **extra: Any) -> tuple[Client, dict]:
        ws = await connect(url, compression=None, max_size=2**20, open_timeout=20)
        await ws.send(json.dumps({"kind": "hello", "name": name, "role": role, **extra}))
        welcome = json.loads(await ws.recv())
        assert welcome["kind"] == "welcome", welcome
        assert {"session_id", "name", "agent_id", "hub_id", "hub_time", "protocol"} <= set(welcome)
        assert welcome["protocol"] == 1 and welcome["name"] == name
        return cls(ws), welcome

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                kind = frame["kind"]
                if kind == "response":
                    self.responses[frame["request_id"]] = frame
                elif kind == "notify":
                    self.notifies.append(frame)
                elif kind == "event":
                    self.events.append(frame)
                self.changed.set()
        except ConnectionClosed:
            self.changed.set()

    async def until(self, what: str, predicate: Any, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                assert not self.reader.done() or value, f"connection closed waiting for {what}"
                self.changed.clear()
                await self.changed.wait()
        return value

    async def send_requests(self, op: str, many: list[dict]) -> list[dict]:
        """Pipelined: every request sent at once; their responses, in request order."""
        ids = []
        for params in many:
            self.n += 1
            ids.append(f"r-{self.n}")
            await self.ws.send(json.dumps({"kind": "request", "request_id": ids[-1], "op": op, "params": params}))
        await self.until(f"{len(ids)} responses to {op}", lambda: all(i in self.responses for i in ids), 60)
        return [self.responses.pop(i) for i in ids]

    async def call(self, op: str, **params: Any) -> dict:
        response = (await self.send_requests(op, [params]))[0]
        assert response["ok"], response
        return response["result"]

    async def receipt(self, notify: dict, status: str = "ack", reason: str | None = None) -> None:
        env = notify["envelope"]
        frame = {"kind": "receipt", "channel_id": env["channel_id"], "seq": env["seq"],
                 "envelope_id": env["envelope_id"], "status": status}  # fmt: skip
        if reason:
            frame["reason"] = reason
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


CHANNEL_KEYS = {"channel_id", "type", "topic", "creator", "participants", "state", "head_seq", "created_at",
                "closed_at", "close_reason"}  # fmt: skip
ENVELOPE_KEYS = {"envelope_id", "channel_id", "seq", "sender", "audience", "type", "data", "causation_id",
                 "idempotency_key", "created_at"}  # fmt: skip


async def test_the_contract_as_written(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    hub.start()
    try:
        await _check_everything(hub)
    finally:
        hub.stop()


async def _check_everything(hub: Hub) -> None:
    # binary frames are refused with close 1003
    raw = await connect(hub.url, compression=None)
    await raw.send(b"\x00\x01binary")
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await raw.recv()  # an error frame may come first
    assert raw.close_code == 1003

    watcher, _ = await Client.hello(hub.url, "watcher", role="observer")
    snapshot = await watcher.call("observe")
    assert {"hub", "agents", "channels", "cursors"} <= set(snapshot)
    alice, _ = await Client.hello(hub.url, "alice")
    bob, welcome_bob = await Client.hello(hub.url, "bob")

    # a conversation that takes thousands of posts (the contract gives it no turn limit)
    channel = await alice.call("open_channel", type="conversation", participants=["bob"], topic="long")
    assert set(channel) >= CHANNEL_KEYS and channel["state"] == "open" and channel["participants"] == ["alice", "bob"]
    cid = channel["channel_id"]
    posts = [{"channel_id": cid, "type": "text", "data": {"text": f"turn {i}"}, "idempotency_key": f"k-{i}"}
             for i in range(POSTS)]  # fmt: skip
    answers = []
    for start in range(0, POSTS, 500):
        answers += await alice.send_requests("post", posts[start : start + 500])
    assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:2]
    seqs = [a["result"]["seq"] for a in answers]
    assert sorted(seqs) == list(range(2, POSTS + 2))  # seq 1 is the hub's channel.opened
    assert (await alice.call("get_channel", channel_id=cid))["state"] == "open"

    # bob gets every envelope in seq order with attempt 1 (at most a window of them unacked at a
    # time, so he acks as they come), and nacks the last: it comes again with attempt 2
    last_seq = POSTS + 1
    done = 0
    while done < last_seq:
        await bob.until("more notifies", lambda d=done: len(bob.notifies) > d, 60)
        for notify in bob.notifies[done:]:
            await bob.receipt(notify, *(("nack", "not now") if notify["envelope"]["seq"] == last_seq else ("ack",)))
        done = len(bob.notifies)
    firsts = [n["envelope"]["seq"] for n in bob.notifies[:last_seq]]
    assert firsts == list(range(1, last_seq + 1)) and all(n["attempt"] == 1 for n in bob.notifies[:last_seq])
    assert set(bob.notifies[1]["envelope"]) >= ENVELOPE_KEYS and bob.notifies[1]["recipient"] == "bob"
    assert bob.notifies[0]["envelope"]["type"] == "channel.opened"
    again = await bob.until("the nacked envelope again", lambda: bob.notifies[last_seq:], 30)
    assert again[0]["envelope"]["seq"] == last_seq and again[0]["attempt"] == 2
    await bob.receipt(again[0])

    # idempotent retry: the original envelope_id and seq, nothing appended
    retry = await alice.call("post", **posts[7])
    assert (retry["envelope_id"], retry["seq"]) == (answers[7]["result"]["envelope_id"], seqs[7])
    assert (await alice.call("get_channel", channel_id=cid))["head_seq"] == POSTS + 1

    # paged read_wal: pages of at most `limit`, has_more until the head, gapless
    got: list[dict] = []
    after = 0
    while True:
        page = await alice.call("read_wal", channel_id=cid, after_seq=after, limit=1000)
        assert len(page["envelopes"]) <= 1000 and page["head_seq"] == POSTS + 1
        got += page["envelopes"]
        if not page["has_more"]:
            break
        after = page["envelopes"][-1]["seq"]
    assert [e["seq"] for e in got] == list(range(1, POSTS + 2))
    default = await alice.call("read_wal", channel_id=cid)
    assert len(default["envelopes"]) == 200 and default["has_more"]

    # observer events: every type the stream implies, event_seq increasing by one
    await watcher.until("bob's last ack", lambda: any(e["type"] == "ack" and e["seq"] == POSTS + 1
                                                       for e in watcher.events), 30)  # fmt: skip
    kinds = {e["type"] for e in watcher.events}
    assert {"agent.connected", "channel.opened", "wal.append", "deliver", "ack", "nack", "cursor"} <= kinds, kinds
    numbers = [e["event_seq"] for e in watcher.events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    observer_post = await watcher.send_requests("post", [{"channel_id": cid, "data": {"text": "hi"}}])
    assert observer_post[0]["error_code"] == "access_denied"

    # kill -9 with envelopes unacked, restart on the same file: bob's backlog replays, seqs continue
    tail = await alice.send_requests("post", [{"channel_id": cid, "type": "note", "data": {"n": i},
                                                "idempotency_key": f"t-{i}"} for i in range(20)])  # fmt: skip
    assert all(t["ok"] for t in tail)
    await bob.until("the tail delivered", lambda: len(bob.notifies) >= POSTS + 2 + 20, 30)
    hub.kill()
    for client in (alice, bob, watcher):
        await client.until("the connection to drop", lambda c=client: c.reader.done(), 30)
    hub.start()
    bob2, welcome2 = await Client.hello(hub.url, "bob")
    assert welcome2["agent_id"] == welcome_bob["agent_id"]  # the same identity, re-attached
    replayed = await bob2.until("the unacked tail replayed", lambda: len(bob2.notifies) >= 20 and bob2.notifies, 30)
    assert [n["envelope"]["seq"] for n in replayed[:20]] == list(range(POSTS + 2, POSTS + 22))
    assert all(n["attempt"] >= 2 for n in replayed[:20])  # delivered before the kill: a redelivery
    for notify in replayed:
        await bob2.receipt(notify)
    alice2, _ = await Client.hello(hub.url, "alice")
    again_tail = await alice2.call("post", channel_id=cid, type="note", data={"n": 0}, idempotency_key="t-0")
    assert again_tail["seq"] == tail[0]["result"]["seq"]  # a retry after the restart: the original
    fresh = await alice2.call("post", channel_id=cid, type="note", data={"n": "new"})
    assert fresh["seq"] == POSTS + 22  # seqs continue, never reused
    await bob2.until("the new one", lambda: any(n["envelope"]["seq"] == POSTS + 22 for n in bob2.notifies), 30)
    for client in (alice2, bob2):
        await client.close()
