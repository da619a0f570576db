"""SQLite's WAL is copied into the database by a thread of the store's own (`_Checkpointer`), not
inside a commit on the event loop, and the WAL is still started over (it does not grow)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentnet.hub.store import open_store
from tests.core.harness import CoreHarness
from tests.waiting import wait_until

WAL_HEADER = 32
FRAME_HEADER = 24
SQLITE_OWN_CHECKPOINT = 1000  # WAL pages after which a commit checkpoints (SQLite's default)


def wal_restarts(db: Path) -> int:
    """The WAL header's checkpoint sequence number: one more each time SQLite starts the WAL over
    (https://sqlite.org/fileformat2.html#walformat: a big-endian u32 at offset 12)."""
    with open(f"{db}-wal", "rb") as f:
        return int.from_bytes(f.read(WAL_HEADER)[12:16], "big")


def wal_pages(db: Path, page_size: int = 4096) -> int:
    """Pages written to the WAL so far (before it is first started over, its size says so)."""
    return (Path(f"{db}-wal").stat().st_size - WAL_HEADER) // (FRAME_HEADER + page_size)


def test_the_wal_is_checkpointed_in_a_thread_and_started_over(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = open_store(f"sqlite:{db}")
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        h = CoreHarness(store=store)
        alice, _bob, ch = h.pair()
        restarts, db_size = wal_restarts(db), db.stat().st_size
        posted = 0

        def post() -> None:
            nonlocal posted
            h.ok(alice, "post", channel_id=ch, type="note", data={"i": posted})
            posted += 1

        for _ in range(10):
            post()
        # A reader's snapshot: a checkpoint copies only what was committed before it began.
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM envelopes").fetchone()
        while store._checkpointer is None:  # started by the commit that takes the WAL to ~CHECKPOINT_PAGES
            post()
        # Below the size at which a commit checkpoints by itself: what gets copied, the thread copies.
        assert wal_pages(db) < SQLITE_OWN_CHECKPOINT
        checkpointer = store._checkpointer
        wait_until("the checkpoint thread's pass", lambda: checkpointer.copied)
        assert db.stat().st_size > db_size  # the pass copied the first posts into the database
        reader.execute("COMMIT")
        reader.close()
        # The rest is still only in the WAL: the next commit copies it, and the WAL starts over there.
        assert wal_restarts(db) == restarts
        post()
        assert not checkpointer.copied
        assert wal_restarts(db) == restarts + 1
        store.close()
        assert not checkpointer._thread.is_alive()
        assert not Path(f"{db}-wal").exists()  # the last connection to close checkpointed and removed it

        again = open_store(f"sqlite:{db}")
        try:
            notes = [r for r in again.load_envelopes(ch, 0, posted + 10) if r.type == "note"]
            assert len(notes) == posted  # nothing lost in the copying
        finally:
            again.close()
    finally:
        reader.close()
        store.close()


def test_a_store_that_never_needs_a_checkpoint_starts_no_thread(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = open_store(f"sqlite:{db}")
    h = CoreHarness(store=store)
    alice, _bob, ch = h.pair()
    h.ok(alice, "post", channel_id=ch, type="note", data={"text": "one"})
    assert store._checkpointer is None
    store.close()
