"""The hub's group-commit settings (`bookkeeping_wait`, set by `agentnet hub --autogen`): a batch of
receipts and cursor rows alone waits for a write someone waits on and shares its commit, and never
waits longer than the setting; without it (a native hub) a receipt is committed at once.

A real hub shell on a SQLite store in a tmp dir, two in-process identities (`LocalHubClient`, as the
in-hub gateway attaches its own), the store's commit counter read between steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentnet.gateway.local import LocalHubClient
from agentnet.hub.server import Hub, HubSettings
from tests.waiting import await_until

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pair:
    hub: Hub
    alice: LocalHubClient
    bob: LocalHubClient
    channel_id: str
    notified: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    @property
    def commits(self) -> int:
        return self.hub.store.commits  # type: ignore[attr-defined]

    def post(self, text: str) -> None:
        self.alice.request_then(
            "post", self.answers.append, channel_id=self.channel_id, type="text", data={"text": text}
        )

    def acked_in_store(self) -> int:
        """The highest seq the store records as acked by bob (his floor, or a receipt above it)."""
        db = self.hub.store._reader  # type: ignore[attr-defined]
        where = "recipient='bob' AND channel_id=?"
        floor = db.execute(f"SELECT ack_floor FROM cursors WHERE {where}", (self.channel_id,)).fetchone()
        above = db.execute(f"SELECT MAX(seq) FROM receipts WHERE {where} AND status='acked'", (self.channel_id,))
        return max(floor[0] if floor else 0, above.fetchone()[0] or 0)


async def _pair(
    tmp_path: Path, db: str = "hub.db", synchronous: str = "NORMAL", **settings: Any
) -> AsyncIterator[Pair]:
    hub = Hub(HubSettings(port=0, store=f"sqlite:{tmp_path / db}", synchronous=synchronous, **settings))
    await hub.start()
    alice, bob = LocalHubClient(hub, name="alice"), LocalHubClient(hub, name="bob")
    try:
        for client in (alice, bob):
            await client.start()
            await client.request("register", passport={"description": client.name})
        opened = await alice.request("open_channel", type="conversation", participants=["alice", "bob"])
        pair = Pair(hub, alice, bob, opened["channel_id"])
        bob.on_frame = lambda frame: frame.get("kind") == "notify" and pair.notified.append(frame["envelope"])
        yield pair
    finally:
        await alice.close()
        await bob.close()
        await hub.stop()


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[Pair]:
    async for pair in _pair(tmp_path, bookkeeping_wait=1.0):
        yield pair


@pytest.fixture
async def native(tmp_path: Path) -> AsyncIterator[Pair]:
    async for pair in _pair(tmp_path):
        yield pair


async def _delivered_and_acked(pair: Pair, text: str) -> int:
    pair.post(text)
    await await_until(f"{text!r} delivered to bob", lambda: any(e["data"]["text"] == text for e in pair.notified))
    envelope = next(e for e in pair.notified if e["data"]["text"] == text)
    await await_until(f"{text!r} answered", lambda: len(pair.answers) == len(pair.notified))
    pair.bob.receipt_nowait(envelope)
    return envelope["seq"]


async def test_a_receipt_waits_for_the_next_post_and_shares_its_commit(held: Pair) -> None:
    seq = await _delivered_and_acked(held, "first")
    assert seq not in held.hub.core.cursors["bob"][held.channel_id].inflight  # the core took the ack
    commits = held.commits
    for _ in range(20):  # loop turns in which a native hub would have committed the receipt
        await asyncio.sleep(0)
    assert held.commits == commits and held.acked_in_store() < seq, "the receipt was committed alone"
    await _delivered_and_acked(held, "second")
    assert held.acked_in_store() >= seq, "the receipt is stored with the next post"


async def test_a_held_receipt_is_committed_within_the_wait(held: Pair) -> None:
    seq = await _delivered_and_acked(held, "only")  # and no post after it: the wait (1 s) ends it
    await await_until("the receipt stored without another post", lambda: held.acked_in_store() >= seq, timeout=10)


async def test_a_native_hub_commits_a_receipt_at_once(native: Pair) -> None:
    seq = await _delivered_and_acked(native, "only")
    await await_until("the receipt stored", lambda: native.acked_in_store() >= seq, timeout=10)


async def test_full_syncs_the_wal_sqlite_writes_through_a_symlinked_path(tmp_path: Path) -> None:
    """FULL fsyncs the WAL file after each commit: the one SQLite writes, which for a symlinked
    database path is next to the link's target, not next to the link."""
    (tmp_path / "data").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "data" / "hub.db")
    async for pair in _pair(tmp_path, db="link.db", synchronous="FULL"):
        seq = await _delivered_and_acked(pair, "through the link")
        assert seq > 1 and pair.answers[-1].result()["ok"], pair.answers[-1].result()
        assert (tmp_path / "data" / "hub.db-wal").exists() and not (tmp_path / "link.db-wal").exists()
