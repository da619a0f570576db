"""The hub never sends a frame larger than the peer's limit, for any op, at 10,000 channels.

A peer declares its limit in hello (`max_size`, an extension; the contract's default is 1 MiB) and
enforces it too (the websockets client closes 1009 on a bigger frame, which fails the test). Every
op is asked, by an observer and by an agent that is in every channel: each answer is either an ok
that fits or `too_large` with a hint, and the connection stays open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from .procs import HubProc, Procs, frame, request

pytestmark = pytest.mark.timeout(150)

CHANNELS = 10_000
KB = 1024


class Raw:
    """A raw client with its own frame limit, declared in hello and enforced by the library."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws
        self.n = 0

    @classmethod
    async def open(cls, url: str, name: str, role: str, max_size: int) -> Raw:
        ws = await connect(url, compression=None, max_size=max_size, open_timeout=20)
        await ws.send(frame("hello", name=name, role=role, max_size=max_size))
        welcome = orjson.loads(await ws.recv())
        assert welcome["kind"] == "welcome", welcome
        return cls(ws)

    async def pipeline(self, op: str, many: list[dict]) -> list[dict]:
        """Send every request at once, then collect their responses (events in between are skipped)."""
        ids = []
        for params in many:
            self.n += 1
            ids.append(f"q{self.n}")
            await self.ws.send(request(ids[-1], op, **params))
        answers: dict[str, dict] = {}
        async with asyncio.timeout(120):
            while len(answers) < len(ids):
                got = orjson.loads(await self.ws.recv())
                if got["kind"] == "response":
                    answers[got["request_id"]] = got
        return [answers[i] for i in ids]

    async def ask(self, op: str, **params: object) -> dict:
        return (await self.pipeline(op, [params]))[0]


async def test_no_frame_over_the_peers_limit_for_any_op(procs: Procs, tmp_path: Path) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    boss = await Raw.open(hub.url, "boss", "supervisor", 1024 * KB)
    for name in ("ann", "ben"):
        await (await Raw.open(hub.url, name, "agent", 1024 * KB)).ws.close()
    for start in range(0, CHANNELS, 2_000):
        opened = await boss.pipeline(
            "open_channel",
            [{"type": "conversation", "participants": ["ben"], "as_agent": "ann"} for _ in range(start, start + 2_000)],
        )
        assert all(r["ok"] for r in opened), [r for r in opened if not r["ok"]][:1]
    channel = opened[-1]["result"]["channel_id"]
    ann = await Raw.open(hub.url, "ann", "agent", 64 * KB)
    for n in range(6):  # a channel whose WAL is larger than 64 KiB: read_wal must page below the limit
        posted = await ann.ask("post", channel_id=channel, type="note", data={"n": n, "pad": "z" * 20_000})
        assert posted["ok"], posted

    ops: list[tuple[str, dict]] = [
        ("list_agents", {}),
        ("list_channels", {}),
        ("list_channels", {"limit": 50}),
        ("get_channel", {"channel_id": channel}),
        ("read_wal", {"channel_id": channel}),
        ("read_wal", {"channel_id": channel, "after_seq": 3, "limit": 1000}),
        ("find_by_causation", {"channel_id": channel, "causation_id": "nothing"}),
    ]
    for limit in (64 * KB, 1024 * KB):
        spy = await Raw.open(hub.url, "spy", "observer", limit)
        ann = await Raw.open(hub.url, "ann", "agent", limit)  # supersedes the previous session
        for who, extra in ((spy, [("observe", {})]), (ann, [("pending_turns", {})])):
            for op, params in ops + extra:
                if who is spy and op == "find_by_causation":
                    continue  # participants only
                answer = await who.ask(op, **params)
                assert answer["ok"] or answer["error_code"] == "too_large", (op, answer)
                if not answer["ok"]:
                    assert "limit" in answer["error_message"], answer
                if op == "read_wal":
                    assert answer["ok"] and answer["result"]["envelopes"], "read_wal pages below the peer's limit"
            assert who.ws.close_code is None, f"closed {who.ws.close_code}: a frame over the limit was sent"
        if limit == 64 * KB:  # listings of 10k channels cannot fit 64 KiB unpaged: the hint is given
            assert not (await spy.ask("list_channels", limit=1000))["ok"]
        else:  # the contract's default limit: every listing is answered, in pages
            assert (await spy.ask("list_channels", limit=1000))["ok"]
            assert (await spy.ask("observe"))["ok"]
        await spy.ws.close()
        await ann.ws.close()
    await boss.ws.close()
    assert hub.terminate() == 0
