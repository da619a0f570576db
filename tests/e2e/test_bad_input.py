"""Bad input against a real hub process (auth on, SQLite store) while another agent's stream runs.

Every case gets the contract's answer: an `error` frame and a close code, or an `ok: false` response
on a connection that stays open, or (receipts) silence plus a `receipt.ignored` event. Throughout,
the hub keeps running, and the alice -> bob stream loses nothing (`check_stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agentnet.client import ObserverClient

from .procs import HubProc, Peer, Procs, Stream, await_until, check_stream, db_rows, frame, request, write_auth_file

pytestmark = pytest.mark.timeout(120)

TOKENS = {
    "alice": ("agent", "tok-alice-0123456789abcdef"),
    "bob": ("agent", "tok-bob-0123456789abcdef"),
    "mallory": ("agent", "tok-mallory-0123456789abcdef"),
    "eve": ("agent", "tok-eve-0123456789abcdef"),
    "watcher": ("observer", "tok-watcher-0123456789abcdef"),
}


async def refused_before_hello(url: str, data: str | bytes, text: bool | None = None) -> tuple[str | None, int]:
    peer = await Peer.open(url)
    return await peer.refused(data, text=text)


async def refused_after_hello(url: str, data: str | bytes, text: bool | None = None) -> tuple[str | None, int]:
    peer = await Peer.open(url, "eve", TOKENS["eve"][1])
    return await peer.refused(data, text=text)


async def test_bad_input_is_refused_by_the_contract_and_costs_nothing_else(
    procs: Procs, evidence: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hub.db"
    auth = write_auth_file(tmp_path / "keys.yaml", TOKENS)
    hub = HubProc(procs, db, ["--auth-file", str(auth), "--log-level", "info"]).start()
    url = hub.url
    tokens = {name: token for name, (_, token) in TOKENS.items()}
    stream = Stream(procs, hub, evidence, run="bystander", count=4_000, tokens=tokens)
    await asyncio.to_thread(stream.start_receiver)

    events: list[dict] = []
    async with ObserverClient(url, "watcher", token=tokens["watcher"]) as feed:

        async def watch() -> None:
            async for kind, item in feed:
                if kind == "event":
                    events.append(item)

        watcher = asyncio.create_task(watch())
        # bob stops acking before the first post: the 4,000 posts can all be answered (and acked) in
        # under a second, before a pause taken after them would find anything left to hold back
        stream.receiver_proc.signal(signal.SIGSTOP)
        stream.start_sender()
        channel = await asyncio.to_thread(lambda: stream.channel_id)
        await await_until("500 posts", lambda: stream.posted() >= 500)
        posted_before = stream.posted()

        mallory = await Peer.open(url, "mallory", tokens["mallory"])
        observer = await Peer.open(url, "watcher", tokens["watcher"], role="observer")

        # ---- receipts for someone else's envelopes: ignored, bob's cursor untouched
        await asyncio.to_thread(stream.pause_receiver, 1_000)  # (still stopped) a backlog while these go by
        floor_before = _cursor(await observer.ask(request("o3", "observe")), "bob", channel)
        targets = db_rows(
            db, "SELECT seq, envelope_id FROM envelopes WHERE channel_id=? ORDER BY seq DESC LIMIT 5", (channel,)
        )
        assert all(seq > floor_before["delivered_seq"] + 100 for seq, _ in targets)  # not even delivered to bob yet
        for seq, envelope_id in targets:
            for peer in (mallory, observer):
                await peer.ws.send(frame("receipt", channel_id=channel, seq=seq, envelope_id=envelope_id, status="ack"))
        assert (await mallory.ask(request("m11", "list_channels")))["ok"]  # the receipts before it were handled
        assert (await observer.ask(request("o4", "list_channels")))["ok"]
        floor_after = _cursor(await observer.ask(request("o5", "observe")), "bob", channel)
        assert floor_after["ack_floor"] < min(seq for seq, _ in targets)
        assert floor_after["delivered_seq"] < min(seq for seq, _ in targets)
        stream.resume_receiver()
        await observer.close()  # it is subscribed to the feed now; the requests below use a fresh one

        # ---- frames the hub closes the connection for: an error frame, then the close code
        before_hello = await refused_before_hello(url, request("r1", "list_agents"))
        assert before_hello == ("invalid", 1008)
        assert await refused_before_hello(url, "not json at all") == ("invalid", 1007)
        assert await refused_before_hello(url, b"\x00\x01binary") == ("invalid", 1003)
        cases: list[tuple[str, str | bytes, bool | None, tuple[str | None, int]]] = [
            ("truncated JSON", '{"kind": "request", "request_id": "r1"', None, ("invalid", 1007)),
            ("trailing garbage", '{"kind": "hello"} x', None, ("invalid", 1007)),
            ("empty text", "", None, ("invalid", 1007)),
            ("invalid UTF-8", b"\xff\xfe{}", True, ("invalid", 1007)),
            ("JSON scalar", "42", None, ("invalid", 1008)),
            ("unknown kind", frame("subscribe", channel_id=channel), None, ("invalid", 1008)),
            ("hub frame kind", frame("notify", recipient="eve", envelope={}, attempt=1), None, ("invalid", 1008)),
            ("no kind", '{"request_id": "r1"}', None, ("invalid", 1008)),
            ("missing request_id", frame("request", op="list_agents", params={}), None, ("invalid", 1008)),
            ("missing receipt fields", frame("receipt", channel_id=channel, status="ack"), None, ("invalid", 1008)),
            (
                "unknown field",
                frame("receipt", channel_id=channel, seq=2, envelope_id="e-1", status="ack", x=1),
                None,
                ("invalid", 1008),
            ),
            (
                "seq as string",
                frame("receipt", channel_id=channel, seq="2", envelope_id="e-1", status="ack"),
                None,
                ("invalid", 1008),
            ),
            (
                "seq as bool",
                frame("receipt", channel_id=channel, seq=True, envelope_id="e-1", status="ack"),
                None,
                ("invalid", 1008),
            ),
            (
                "seq as float",
                frame("receipt", channel_id=channel, seq=2.0, envelope_id="e-1", status="ack"),
                None,
                ("invalid", 1008),
            ),
            ("request_id as int", frame("request", request_id=7, op="list_agents", params={}), None, ("invalid", 1008)),
            ("params as list", frame("request", request_id="r1", op="post", params=[]), None, ("invalid", 1008)),
            ("a second hello", frame("hello", name="eve"), None, ("invalid", 1008)),
            ("binary frame", b'{"kind": "request"}', None, ("invalid", 1003)),
            (
                "10 MB frame",
                request("r1", "post", channel_id=channel, data={"text": "x" * 10_000_000}),
                None,
                (None, 1009),
            ),
        ]
        for what, data, text, expected in cases:
            assert await refused_after_hello(url, data, text) == expected, what

        # ---- authentication: refused before anything is registered or fenced
        for who, hello in [
            ("wrong token", {"name": "eve", "auth": {"scheme": "api_key", "token": "tok-wrong-0123456789abcdef"}}),
            ("another name's token", {"name": "bob", "auth": {"scheme": "api_key", "token": tokens["mallory"]}}),
            ("no token", {"name": "eve"}),
        ]:
            assert await refused_before_hello(url, frame("hello", **hello)) == ("auth_failed", 4003), who
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers={"Authorization": "Bearer tok-wrong-0123456789abcdef"})
        assert refused.value.response.status_code == 401

        # ---- requests the hub answers with an error on a connection that stays open
        observer = await Peer.open(url, "watcher", tokens["watcher"], role="observer")
        answers = {
            "read a channel it is not in": await mallory.ask(request("m1", "read_wal", channel_id=channel)),
            "post into a channel it is not in": await mallory.ask(
                request("m2", "post", channel_id=channel, type="note", data={"n": -1})
            ),
            "missing param": await mallory.ask(request("m3", "post", type="note", data={})),
            "wrong param type": await mallory.ask(request("m4", "post", channel_id=[channel], data={})),
            "unknown op": await mallory.ask(request("m5", "drop_tables")),
            "topic too long": await mallory.ask(
                request("m6", "open_channel", type="conversation", participants=["eve"], topic="x" * 2000)
            ),
            "observe as an agent": await mallory.ask(request("m7", "observe")),
            "disconnect as an agent": await mallory.ask(request("m8", "disconnect", name="bob")),
            "observer posting": await observer.ask(
                request("o1", "post", channel_id=channel, type="note", data={"n": -2})
            ),
            "observer opening a channel": await observer.ask(
                request("o2", "open_channel", type="conversation", participants=["bob"])
            ),
        }
        codes = {what: (a["ok"], a.get("error_code")) for what, a in answers.items()}
        assert codes == {
            "read a channel it is not in": (False, "access_denied"),
            "post into a channel it is not in": (False, "access_denied"),
            "missing param": (False, "invalid"),
            "wrong param type": (False, "invalid"),
            "unknown op": (False, "invalid"),
            "topic too long": (False, "invalid"),
            "observe as an agent": (False, "access_denied"),
            "disconnect as an agent": (False, "access_denied"),
            "observer posting": (False, "access_denied"),
            "observer opening a channel": (False, "access_denied"),
        }
        own = await mallory.ask(request("m9", "open_channel", type="conversation", participants=["eve"]))
        big = await mallory.ask(
            request("m10", "post", channel_id=own["result"]["channel_id"], type="note", data={"t": "x" * 300_000})
        )
        assert (big["ok"], big["error_code"]) == (False, "too_large")

        await mallory.close()
        await observer.close()

        # ---- the hub kept running, and the stream ran meanwhile and loses nothing
        assert hub.proc is not None and hub.proc.alive() and hub.generation == 1
        assert hub.health()["status"] == "ok"
        assert stream.posted() > posted_before
        await asyncio.to_thread(stream.wait_sent)
        await asyncio.to_thread(stream.wait_drained)
        await await_until("the receipt.ignored events", lambda: len(ignored_events(events)) >= 10, 10)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    ignored = ignored_events(events)
    assert {(e["name"], e["seq"]) for e in ignored} == {(n, s) for n in ("mallory", "watcher") for s, _ in targets}
    bob_sessions = [e for e in events if e["type"] in ("agent.connected", "agent.disconnected") and e["name"] == "bob"]
    assert bob_sessions == [], "bob's session was disturbed (fenced or dropped) by someone else's hello"
    assert not [e for e in events if e["type"] == "agent.disconnected" and e["code"] == 1011]
    await asyncio.to_thread(stream.stop)
    check_stream(stream)
    # nothing any of it sent was committed: every envelope is alice's or the hub's
    assert {sender for (sender,) in db_rows(db, "SELECT DISTINCT sender FROM envelopes")} == {"hub", "alice"}
    assert not db_rows(db, "SELECT * FROM receipts WHERE recipient IN ('mallory', 'watcher', 'eve')")
    log = hub.proc.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert not any(token in log for token in tokens.values()), "an API key was written to the hub's log"


def ignored_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "receipt.ignored"]


def _cursor(snapshot: dict, recipient: str, channel_id: str) -> dict:
    assert snapshot["ok"], snapshot
    return next(
        c for c in snapshot["result"]["cursors"] if c["recipient"] == recipient and c["channel_id"] == channel_id
    )
