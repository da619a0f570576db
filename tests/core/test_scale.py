"""A hub that forgets what it no longer needs, and listings in pages (issue: scale)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agentnet.hub.store.memory import MemoryStore
from agentnet.hub.store.sqlite import SqliteStore

from .harness import CoreHarness


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "hub.sqlite3")
    yield s
    s.close()


def consult(h: CoreHarness, a: int, b: int, i: int) -> str:
    ch = h.ok(a, "open_channel", type="conversation", participants=["bob"], topic=f"t{i}")["channel_id"]
    h.ok(a, "post", channel_id=ch, type="note", data={"n": i}, causation_id=f"q{i}")
    h.ok(a, "close_channel", channel_id=ch)
    h.ack_all(a)
    h.ack_all(b)
    return ch


def test_a_closed_channel_every_cursor_finished_leaves_memory_and_is_read_back(store) -> None:
    h = CoreHarness(store)
    a, b = h.connect("alice"), h.connect("bob")
    done = [consult(h, a, b, i) for i in range(5)]
    live = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    assert set(h.core.channels) == {live}
    assert all(ch not in h.core.cursors.get(name, {}) for name in ("alice", "bob") for ch in done)
    assert set(h.core.agents["bob"].work) <= {live} and set(h.core.agents["alice"].work) <= {live}
    # Paged back in on demand, as it was.
    info = h.ok(b, "get_channel", channel_id=done[2])
    assert (info["state"], info["head_seq"], info["topic"]) == ("closed", 3, "t2")
    assert [e["type"] for e in h.ok(b, "read_wal", channel_id=done[2])["envelopes"]] == [
        "channel.opened",
        "note",
        "channel.closed",
    ]
    assert h.ok(b, "find_by_causation", channel_id=done[2], causation_id="q2")["envelope"]["seq"] == 2
    assert h.request(a, "post", channel_id=done[2], type="note", data={})["error_code"] == "closed"
    assert set(h.core.channels) == {live}  # a read does not make it resident again
    # Listings and the snapshot still count and show it.
    listed = h.ok(b, "list_channels")
    assert {c["channel_id"] for c in listed["channels"]} == {*done, live}
    obs = h.connect("watch", role="observer")
    snap = h.ok(obs, "observe")
    assert snap["total"] == {"agents": 2, "channels": 6} and len(snap["channels"]) == 6


def test_a_channel_someone_has_not_finished_stays(store) -> None:
    h = CoreHarness(store)
    a, b = h.connect("alice"), h.connect("bob")
    ch = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    h.ok(a, "post", channel_id=ch, type="note", data={})
    h.ok(a, "close_channel", channel_id=ch)
    h.ack_all(a)
    got = h.notifies(b)
    for n in got[:-1]:
        h.receipt(b, n)
    assert ch in h.core.channels  # bob has not acked channel.closed
    h.receipt(b, got[-1])
    assert ch not in h.core.channels


def test_forgotten_channels_survive_a_restart_and_a_since_replays_them(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    store = SqliteStore(path)
    h = CoreHarness(store)
    a, b = h.connect("alice"), h.connect("bob")
    done = [consult(h, a, b, i) for i in range(3)]
    store.close()
    store = SqliteStore(path)
    h = CoreHarness(store)
    assert not h.core.channels and h.core.channel_total == 3  # nothing left to deliver: nothing loaded
    b = h.connect("bob", since={done[1]: 1})
    again = h.notifies(b)
    assert [(n["envelope"]["channel_id"], n["envelope"]["seq"]) for n in again] == [(done[1], 2), (done[1], 3)]
    for n in again:
        h.receipt(b, n)
    assert done[1] not in h.core.channels  # the courtesy replay over, it leaves again
    store.close()


def test_a_since_with_nothing_to_replay_or_a_refused_hello_leaves_forgotten_channels_forgotten(store) -> None:
    """A hello's `since` pages a forgotten channel in to check it and to replay it; when there is
    nothing to replay (or the hello is refused) it must leave again, or any client could make every
    closed channel it took part in resident for good by naming them in hellos."""
    h = CoreHarness(store)
    a, b = h.connect("alice"), h.connect("bob")
    done = [consult(h, a, b, i) for i in range(3)]
    assert not set(done) & set(h.core.channels)
    h.drop(b)
    b = h.connect("bob", since={done[0]: 3, done[1]: 3})  # already has everything
    assert h.notifies(b) == []
    assert not set(done) & set(h.core.channels)
    h.connect("bob", since={done[2]: 3}, takeover=False)  # refused: bob is connected (4002)
    assert not set(done) & set(h.core.channels)
    h.connect("bob", since={done[2]: 3, "ch-none": 1})  # refused: names a channel bob is not in
    assert not set(done) & set(h.core.channels)
    assert all(ch not in h.core.cursors.get(name, {}) for name in ("alice", "bob") for ch in done)


def test_listings_page_in_id_order_within_the_byte_budget(store) -> None:
    h = CoreHarness(store, page_bytes=4096)
    a, b = h.connect("alice"), h.connect("bob")
    for n in range(30):
        h.connect(f"agent{n:02d}")
    ids = sorted(consult(h, a, b, i) for i in range(12))
    ids += [h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"] for _ in range(12)]
    obs = h.connect("watch", role="observer")
    seen, after, pages = [], None, 0
    while True:
        page = h.ok(obs, "list_channels", limit=10, **({"after": after} if after else {}))
        assert len(orjson.dumps(page)) < 4096 + 1024 and page["total"] == 24
        seen += [c["channel_id"] for c in page["channels"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(ids) and pages >= 3
    names, after = [], None
    while True:
        page = h.ok(obs, "list_agents", limit=7, **({"after": after} if after else {}))
        names += [x["name"] for x in page["agents"]]
        after = page["next"]
        if after is None:
            break
    assert names == sorted(h.core.agents) and page["total"] == 32
    snap = h.ok(obs, "observe", limit=5)
    assert len(snap["channels"]) == 5 and snap["next"]["channels"] == snap["channels"][-1]["channel_id"]
    assert snap["total"] == {"agents": 32, "channels": 24}
    with_cursors = h.ok(obs, "list_channels", after=snap["next"]["channels"], cursors=True)
    assert {c["channel_id"] for c in with_cursors["cursors"]} <= {c["channel_id"] for c in with_cursors["channels"]}
    assert with_cursors["cursors"]


def test_the_envelope_cache_is_bounded_in_bytes_for_the_hub(store) -> None:
    h = CoreHarness(store, cache_bytes=64 * 1024, cache_channel_bytes=16 * 1024)
    a, b = h.connect("alice"), h.connect("bob")
    chans = [h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"] for _ in range(8)]
    for i in range(40):
        for ch in chans:
            h.ok(a, "post", channel_id=ch, type="note", data={"pad": "x" * 1000, "i": i})
        h.ack_all(b)
    core = h.core
    assert core._cache_total == sum(ch.cache_bytes for ch in core.channels.values())
    assert core._cache_total <= 64 * 1024 + 2048
    assert all(ch.cache_bytes <= 16 * 1024 * 5 // 4 + 2048 for ch in core.channels.values())
    # A full read of a channel pages envelopes in and leaves the cache within its bounds.
    after, read = 0, 0
    while True:
        page = h.ok(b, "read_wal", channel_id=chans[0], after_seq=after, limit=50)
        read += len(page["envelopes"])
        if not page["has_more"]:
            break
        after = page["envelopes"][-1]["seq"]
    assert read == 41 and core._cache_total <= 64 * 1024 + 2048


def _receipts(store) -> dict[tuple[str, str, int], str]:
    if isinstance(store, MemoryStore):
        return dict(store.receipts)
    rows = store._reader.execute("SELECT recipient, channel_id, seq, status FROM receipts").fetchall()
    return {(r, c, s): status for r, c, s, status in rows}


def test_acked_receipts_at_or_below_the_floor_are_pruned_dead_letters_stay(store) -> None:
    h = CoreHarness(store, max_deliver=1)
    a, b = h.connect("alice"), h.connect("bob")
    ch = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    h.ack_all(a)
    h.ack_all(b)
    for i in range(4):
        h.ok(a, "post", channel_id=ch, type="note", data={"i": i})
    n2, n3, n4, n5 = h.notifies(b)
    h.receipt(b, n3)  # above the floor (2 is open): kept, it says more than the floor
    assert _receipts(store).get(("bob", ch, 3)) == "acked"
    h.receipt(b, n4, "nack", "bad")  # max_deliver=1: dead-lettered, kept with its reason
    h.receipt(b, n2)
    h.receipt(b, n5)
    assert h.cursor("bob", ch)["ack_floor"] == 5
    assert {k: v for k, v in _receipts(store).items() if k[0] == "bob"} == {("bob", ch, 4): "dead"}


def test_keep_receipts_keeps_every_acked_receipt(store) -> None:
    h = CoreHarness(store, keep_receipts=True)
    a, b = h.connect("alice"), h.connect("bob")
    ch = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    h.ok(a, "post", channel_id=ch, type="note", data={})
    h.ack_all(b)
    assert {k for k in _receipts(store) if k[0] == "bob"} == {("bob", ch, 1), ("bob", ch, 2)}
