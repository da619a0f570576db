"""One set of store tests, run against every store: memory, sqlite and postgresql.

The core drives each store exactly as the hub does (CoreHarness: batches from `take_batch`), so
these check what the hub relies on: what is committed is what a restarted hub loads (every channel,
seq, cursor, receipt and dead letter), seqs continue from the stored head and are never stored twice,
idempotency keys are unique, a failed commit leaves nothing, clean shutdown vs after a crash, paged
reads and lookups, and a schema from the future is refused. Restarts need a durable store, so the
restart tests run on sqlite and postgresql; memory restarts in place (the same object).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentnet.hub.records import AckRow, CommitBatch, EnvRecord
from agentnet.hub.store import StoreError, open_store
from agentnet.hub.store.memory import MemoryStore
from agentnet.hub.store.postgres import PgStore
from tests.core.harness import CoreHarness

Factory = Callable[[], Any]  # opens the store on the same database each time it is called


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def reopen(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Factory:
    """A function that opens the store (again) on the same database; memory returns the same object."""
    opened: list[Any] = []
    if kind == "memory":
        store = MemoryStore()

        def factory() -> Any:
            return store

    elif kind == "sqlite":

        def factory() -> Any:
            s = open_store(f"sqlite:{tmp_path / 'hub.db'}")
            opened.append(s)
            return s

    else:
        url = request.getfixturevalue("pg_url")

        def factory() -> Any:
            s = open_store(url, lease=5.0)
            opened.append(s)
            return s

    yield factory
    for s in opened:
        s.close()


def durable(kind: str) -> bool:
    return kind != "memory"


def post(h: CoreHarness, conn: int, ch: str, i: int, **extra: Any) -> dict:
    return h.ok(conn, "post", channel_id=ch, type="note", data={"i": i}, **extra)


def state_of(h: CoreHarness) -> dict:
    """Everything a restart must keep, as plain data."""
    core = h.core
    return {
        "hub_id": core.hub_id,
        "agents": sorted((a.name, a.agent_id) for a in core.agents.values()),
        "channels": sorted(
            (c.channel_id, c.type, c.state, c.committed_seq, c.participants, c.close_reason, str(c.rule_state))
            for c in core.channels.values()
        ),
        "cursors": sorted(
            (r, cid, cur.ack_floor, cur.dead, cur.redelivered)
            for r, per in core.cursors.items()
            for cid, cur in per.items()
        ),
    }


def build_history(h: CoreHarness) -> tuple[int, int, str, str]:
    """Two channels (one closed), posts with keys and causation, acks out of order, a dead letter."""
    a, b, ch = h.pair()
    for i in range(6):
        post(h, a, ch, i, idempotency_key=f"k{i}")
    got = h.notifies(b)
    assert [n["envelope"]["seq"] for n in got] == [2, 3, 4, 5, 6, 7]
    h.receipt(b, got[0])
    h.receipt(b, got[1])
    h.receipt(b, got[3])  # seq 5 acked above the floor
    h.receipt(b, got[2], "nack", "bad input")  # seq 4: max_deliver=1 -> dead-lettered
    reply = h.ok(
        b, "post", channel_id=ch, type="note", data={"text": "re"}, causation_id=got[0]["envelope"]["envelope_id"]
    )
    assert reply["seq"] == 8
    other = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    h.ack_all(b)
    h.ok(a, "close_channel", channel_id=other, reason="done here")
    return a, b, ch, other


def test_restart_keeps_every_channel_seq_cursor_and_dead_letter(kind: str, reopen: Factory) -> None:
    h = CoreHarness(store=reopen(), max_deliver=1)
    _, _, ch, other = build_history(h)
    before = state_of(h)
    cur = h.core.cursors["bob"][ch]
    assert cur.ack_floor == 5 and cur.dead == 1  # 1 (opened), 2, 3 acked, 4 dead, 5 acked; 6, 7 in flight
    if durable(kind):
        h.store.close()
    h2 = CoreHarness(store=reopen())  # max_deliver back to 5: the replay is attempt 2
    assert state_of(h2) == before
    assert h2.core.channels[other].state == "closed"
    # the unacked deliveries go out again on reconnect, with attempt >= 2; nothing acked or dead does
    b2 = h2.connect("bob")
    again = [(n["envelope"]["seq"], n["attempt"]) for n in h2.notifies(b2) if n["envelope"]["channel_id"] == ch]
    assert [s for s, _ in again] == [6, 7] and all(att >= 2 for _, att in again)
    # seqs continue from the stored head; an idempotency key committed before the restart is known
    a2 = h2.connect("alice")
    assert post(h2, a2, ch, 99)["seq"] == 9
    dup = post(h2, a2, ch, 0, idempotency_key="k0")
    assert dup["duplicate"] and dup["seq"] == 2


def test_reads_page_and_find(kind: str, reopen: Factory) -> None:
    h = CoreHarness(store=reopen(), max_deliver=1)
    _, _, ch, _ = build_history(h)
    store = h.store
    page = store.load_envelopes(ch, 0, 3)
    assert [r.seq for r in page] == [1, 2, 3]
    assert [r.seq for r in store.load_envelopes(ch, 3, 100)] == [4, 5, 6, 7, 8]
    assert store.load_envelopes(ch, 8, 10) == []
    assert page[1].json == h.core.channels[ch].cache[2].json  # the exact bytes, kept
    first = page[1]
    found = store.find_by_causation(ch, first.envelope_id, None)
    assert found is not None and found.seq == 8 and found.sender == "bob"
    assert store.find_by_causation(ch, first.envelope_id, "alice") is None
    fifth = store.load_envelopes(ch, 4, 1)[0]
    assert store.find_idempotent("alice", "k3") == (ch, fifth.envelope_id, 5)
    assert store.find_idempotent("alice", "nope") is None
    assert store.find_idempotent("bob", "k3") is None


def test_a_seq_is_never_stored_twice_and_a_failed_commit_leaves_nothing(kind: str, reopen: Factory) -> None:
    store = reopen()
    h = CoreHarness(store=store)
    _, _, ch = h.pair()
    rec = h.core.channels[ch].cache[1]
    fresh = dataclasses.replace(rec, seq=2, envelope_id="e-fresh")
    again = dataclasses.replace(rec, envelope_id="e-other")  # seq 1 again
    ack = AckRow("bob", ch, 2, "e-fresh", "acked", 1, "2026-01-01T00:00:00.000Z")
    with pytest.raises(StoreError):
        store.commit(CommitBatch(999, [fresh, again], [], [], [], [ack]))
    assert [r.seq for r in store.load_envelopes(ch, 0, 10)] == [1]
    # a key is stored once per sender
    keyed = [
        dataclasses.replace(rec, seq=s, envelope_id=f"e{s}", sender="alice", idempotency_key="same") for s in (2, 3)
    ]
    with pytest.raises(StoreError):
        store.commit(CommitBatch(1000, keyed, [], [], [], []))
    assert [r.seq for r in store.load_envelopes(ch, 0, 10)] == [1]
    # and the store still takes the next good batch
    store.commit(CommitBatch(1001, [fresh], [], [], [], []))
    assert [r.seq for r in store.load_envelopes(ch, 0, 10)] == [1, 2]


def test_clean_shutdown_versus_after_a_crash(kind: str, reopen: Factory) -> None:
    if not durable(kind):  # nothing survives the process, so there is no "after a crash"
        assert not getattr(reopen(), "after_crash", False)
        return
    h = CoreHarness(store=reopen())
    a, b, ch = h.pair()
    for i in range(3):
        post(h, a, ch, i)
    assert len(h.notifies(b)) == 3  # delivered_seq 4 after the next commit
    h.commit()
    h.store.close()  # clean: delivered_seq as recorded
    h2 = CoreHarness(store=reopen())
    assert not h2.store.after_crash
    assert h2.core.cursors["bob"][ch].delivered_seq == 4
    a2 = h2.connect("alice")
    post(h2, a2, ch, 9)  # seq 5, committed; never delivered (bob is away)
    if isinstance(h2.store, PgStore):
        h2.store.abandon()  # the connection drops without the clean-shutdown mark: a crash
    # (sqlite: the file is simply opened again while the first handle never closed)
    h3 = CoreHarness(store=reopen())
    assert h3.store.after_crash
    # everything the dead hub committed counts as possibly delivered: attempt >= 2 for all of it
    assert h3.core.cursors["bob"][ch].delivered_seq == 5
    b3 = h3.connect("bob")
    assert [(n["envelope"]["seq"], n["attempt"]) for n in h3.notifies(b3)] == [(2, 2), (3, 2), (4, 2), (5, 2)]


def test_a_schema_from_the_future_is_refused(
    kind: str, reopen: Factory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = reopen()
    if kind == "memory":
        assert store.load().channels == []
        return
    store.close()
    if kind == "sqlite":
        import sqlite3

        con = sqlite3.connect(tmp_path / "hub.db")
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        con.commit()
        con.close()
    else:
        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as con:
            con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema v99"):
        reopen()


# --------------------------------------------------------------------------- postgresql only


def test_pg_leadership_is_a_fence(pg_url: str) -> None:
    """One writer at a time; a hub whose session ended can no longer commit, and another takes over."""
    first = open_store(pg_url, lease=5.0)
    second = open_store(pg_url, lease=5.0)
    try:
        assert first.try_lead("ws://a/v1")
        assert not second.try_lead("ws://b/v1")
        assert second.leader() == "ws://a/v1"
        with pytest.raises(StoreError, match="another hub leads"):
            second.load()
        h = CoreHarness(store=first)
        a, _, ch = h.pair()
        # the first hub's session is ended from outside (what a lease expiry or a lost network does)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            # with a timeout it returns once the backend has exited (and so released its lock), not
            # when the signal is sent: without it the next line raced the backend's exit
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (first._db.pgconn.backend_pid,))
        assert second.try_lead("ws://b/v1")
        assert second.after_crash
        assert (first.term, second.term) == (1, 2)  # each leadership is a new term
        with pytest.raises(StoreError):
            post(h, a, ch, 1)  # the commit goes through the dead session: refused
        assert not first.leading
    finally:
        first.close()
        second.close()


def test_pg_lease_ends_a_silent_session(pg_url: str) -> None:
    """The lease: a leader that says nothing for `lease` seconds loses its session and its lock."""
    import time

    first = open_store(pg_url, lease=0.3)
    second = open_store(pg_url, lease=5.0)
    try:
        assert first.try_lead("a")
        deadline = time.monotonic() + 20
        while not second.try_lead("b"):
            assert time.monotonic() < deadline, "the silent leader kept its lock"
            time.sleep(0.05)
        with pytest.raises(StoreError):
            first.heartbeat()
        assert not first.leading
        with pytest.raises(StoreError, match="does not hold"):
            first.commit(CommitBatch(1, [], [], [], [], []))
    finally:
        first.close()
        second.close()


def test_pg_records_are_plain_rows(pg_url: str) -> None:
    """What the checker and operators read: the envelope body is the exact JSON that was sent."""
    store = open_store(pg_url, lease=5.0)
    try:
        h = CoreHarness(store=store)
        a, _, ch = h.pair()
        post(h, a, ch, 1)
        with psycopg.connect(pg_url) as con:
            rows = con.execute("SELECT seq, body FROM envelopes WHERE channel_id=%s ORDER BY seq", (ch,)).fetchall()
        assert [r[0] for r in rows] == [1, 2]
        assert bytes(rows[1][1]) == h.core.channels[ch].cache[2].json
        assert isinstance(store.load_envelopes(ch, 1, 1)[0], EnvRecord)
    finally:
        store.close()
