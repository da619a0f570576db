"""Every query the hub runs against SQLite while it delivers is an index search, never a scan.

The hub is driven through real requests (posts, deep read_wal, find_by_causation, idempotent
retries, restarts) over a real SQLite file; every statement it sends is captured with the
connection's trace callback and asked for its `EXPLAIN QUERY PLAN`: each step must be a SEARCH,
and a search of `envelopes` must use more than the channel (which may hold millions of rows).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentnet.hub.store.sqlite import SqliteStore

from .harness import CoreHarness

LOOKUPS = ("SELECT", "DELETE")  # what reads (a DELETE finds its rows like a SELECT)


def _trace(store: SqliteStore, seen: list[str]) -> None:
    for db in (store._db, store._reader):
        db.set_trace_callback(lambda sql: seen.append(sql) if sql.lstrip().upper().startswith(LOOKUPS) else None)


def _plans(path: Path, statements: list[str]) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    try:
        return {sql: [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)] for sql in statements}
    finally:
        db.close()


# Queries that read whole tables on purpose: run once when the hub starts (or by `agentnet check`).
STARTUP_ONLY = (
    "FROM meta",
    "FROM agents",
    "GROUP BY channel_id",
    "FROM receipts r JOIN",
    "FROM cursors",
    "FROM channels",
)


def test_every_lookup_on_the_delivery_path_uses_an_index(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    seen: list[str] = []
    store = SqliteStore(path)
    h = CoreHarness(store, cache_per_channel=8)  # a small cache: deliveries and reads page envelopes in
    _trace(store, seen)
    a, b, ch = h.pair()
    for i in range(40):
        h.ok(a, "post", channel_id=ch, type="note", data={"n": i}, idempotency_key=f"k{i}", causation_id=f"c{i}")
    h.ok(a, "post", channel_id=ch, type="note", data={"n": 0}, idempotency_key="k0")  # a retry
    h.ok(b, "read_wal", channel_id=ch, after_seq=0, limit=100)
    assert h.ok(b, "find_by_causation", channel_id=ch, causation_id="c1")["envelope"]["seq"] == 3
    assert h.ok(b, "find_by_causation", channel_id=ch, causation_id="nope", sender="alice")["envelope"] is None
    store.close()

    # A restart on the same file: the core now asks the store what its memory does not know.
    store = SqliteStore(path)
    h = CoreHarness(store, cache_per_channel=8)
    _trace(store, seen)
    a, b = h.connect("alice"), h.connect("bob")
    h.ok(a, "post", channel_id=ch, type="note", data={"n": 1}, idempotency_key="k1")
    h.ok(a, "post", channel_id=ch, type="note", data={"n": 99}, idempotency_key="new")
    assert len(h.notifies(b)) > 8  # bob's unacked backlog, paged in from the store
    h.ok(b, "read_wal", channel_id=ch, after_seq=5, limit=10)
    assert h.ok(b, "find_by_causation", channel_id=ch, causation_id="c30")["envelope"]["seq"] == 32
    store.close()

    lookups = sorted({sql for sql in seen if not any(part in sql for part in STARTUP_ONLY)})
    assert any("causation_id" in sql for sql in lookups) and any("idempotency_key" in sql for sql in lookups)
    assert any("seq>" in sql.replace(" ", "") for sql in lookups)
    assert any(sql.startswith("DELETE FROM receipts") for sql in lookups)  # receipt pruning
    for sql, plan in _plans(path, lookups).items():
        steps = [step for step in plan if not step.startswith("USE TEMP B-TREE")]  # sorting the few found
        assert steps and all(step.startswith("SEARCH") for step in steps), (sql, plan)
        # A search of `envelopes` on the channel alone walks the whole channel (millions of rows).
        assert not any(step.startswith("SEARCH envelopes") and step.endswith("(channel_id=?)") for step in steps), (
            sql,
            plan,
        )
