"""Pure tests of the hub core's delivery rules: cursors, acks, nacks, timers, windows, dedup."""

from __future__ import annotations

from .harness import CoreHarness


def post(h: CoreHarness, conn: int, ch: str, n: int, **extra) -> dict:
    return h.ok(conn, "post", channel_id=ch, type="note", data={"n": n}, **extra)


def test_first_deliveries_in_seq_order_and_floor_follows_acks():
    h = CoreHarness()
    a, b, ch = h.pair()
    for i in range(5):
        post(h, a, ch, i)
    got = h.notifies(b)
    assert [n["envelope"]["seq"] for n in got] == [2, 3, 4, 5, 6]
    assert all(n["attempt"] == 1 for n in got)
    for n in got:
        h.receipt(b, n)
    assert h.cursor("bob", ch)["ack_floor"] == 6


def test_ack_floor_moves_only_over_a_contiguous_prefix():
    h = CoreHarness()
    a, b, ch = h.pair()
    for i in range(4):
        post(h, a, ch, i)
    n2, n3, n4, n5 = h.notifies(b)
    h.receipt(b, n4)
    h.receipt(b, n5)
    assert h.cursor("bob", ch)["ack_floor"] == 1  # seq 2 and 3 still open
    h.receipt(b, n2)
    assert h.cursor("bob", ch)["ack_floor"] == 2
    h.receipt(b, n3)
    cur = h.cursor("bob", ch)
    assert (cur["ack_floor"], cur["inflight"]) == (5, 0)


def test_nack_redelivers_with_attempt_2_after_backoff():
    h = CoreHarness(nack_backoff=1.0)
    a, b, ch = h.pair()
    post(h, a, ch, 1)
    (first,) = h.notifies(b)
    h.receipt(b, first, "nack", "brain failed")
    assert h.notifies(b) == []  # backoff not over yet
    h.tick(0.5)
    assert h.notifies(b) == []
    h.tick(0.6)
    (again,) = h.notifies(b)
    assert again["attempt"] == 2 and again["envelope"]["seq"] == first["envelope"]["seq"]
    nack = [e for e in h.events if e["type"] == "nack"]
    assert nack and nack[0]["reason"] == "brain failed"
    h.receipt(b, again)
    assert h.cursor("bob", ch)["ack_floor"] == 2


def test_a_nacked_envelope_is_redelivered_even_when_a_later_one_is_acked():
    # The AG2 hub's cursor is a high-water mark: a later ack hides the nacked one forever.
    h = CoreHarness(nack_backoff=0.1)
    a, b, ch = h.pair()
    post(h, a, ch, 1)
    post(h, a, ch, 2)
    n2, n3 = h.notifies(b)
    h.receipt(b, n2, "nack")
    h.receipt(b, n3)
    assert h.cursor("bob", ch)["ack_floor"] == 1
    h.tick(0.2)
    (again,) = h.notifies(b)
    assert again["envelope"]["seq"] == 2 and again["attempt"] == 2
    h.receipt(b, again)
    assert h.cursor("bob", ch)["ack_floor"] == 3


def test_ack_wait_expiry_redelivers():
    h = CoreHarness(ack_wait=5.0)
    a, b, ch = h.pair()
    post(h, a, ch, 1)
    (_first,) = h.notifies(b)
    h.tick(4.9)
    assert h.notifies(b) == []
    h.tick(0.2)
    (again,) = h.notifies(b)
    assert again["attempt"] == 2
    deliver = [e for e in h.events if e["type"] == "deliver" and e["attempt"] == 2]
    assert deliver[0]["reason"] == "ack_wait"


def test_settled_ack_deadlines_are_dropped_and_open_ones_still_expire():
    h = CoreHarness(ack_wait=5.0)
    h.core._fifo_compact_at = 4  # compact early (the hub's threshold is in the thousands)
    a, b, ch = h.pair()
    for i in range(12):
        post(h, a, ch, i)
    got = h.notifies(b)
    for n in got[1:]:  # all but the first are acked: their deadlines are settled
        h.receipt(b, n)
    h.ack_all(a)
    h.tick(1.0)
    assert len(h.core._ack_deadlines) <= 2  # the open delivery (and nothing settled)
    h.tick(4.1)
    (again,) = h.notifies(b)
    assert (again["envelope"]["seq"], again["attempt"]) == (got[0]["envelope"]["seq"], 2)


def test_max_deliver_dead_letters_and_the_floor_moves_past():
    h = CoreHarness(max_deliver=3, nack_backoff=0.1)
    a, b, ch = h.pair()
    post(h, a, ch, 1)  # seq 2: poison
    post(h, a, ch, 2)  # seq 3: fine
    n2, n3 = h.notifies(b)
    h.receipt(b, n3)
    current = n2
    for attempt in (1, 2, 3):
        assert current["attempt"] == attempt
        h.receipt(b, current, "nack", "cannot parse")
        h.tick(1.0)
        got = h.notifies(b)
        current = got[0] if got else None
    assert current is None  # no fourth attempt
    dead = [e for e in h.events if e["type"] == "dead_letter"]
    assert len(dead) == 1 and dead[0]["seq"] == 2 and dead[0]["attempts"] == 3
    cur = h.cursor("bob", ch)
    assert (cur["ack_floor"], cur["dead"], cur["inflight"]) == (3, 1, 0)
    assert h.store.receipts[("bob", ch, 2)] == "dead"


def test_full_window_stops_sends_and_an_ack_resumes_them():
    h = CoreHarness(window=4)
    a, b, ch = h.pair()
    for i in range(10):
        post(h, a, ch, i)
    got = h.notifies(b)
    assert len(got) == 4
    assert h.cursor("bob", ch)["inflight"] == 4
    h.receipt(b, got[0])
    (nxt,) = h.notifies(b)
    assert nxt["envelope"]["seq"] == got[-1]["envelope"]["seq"] + 1
    for n in [*got[1:], nxt]:
        h.receipt(b, n)
    assert len(h.notifies(b)) == 4


def test_post_retried_with_idempotency_key_returns_the_original_seq():
    h = CoreHarness()
    a, b, ch = h.pair()
    first = post(h, a, ch, 1, idempotency_key="k-1")
    again = post(h, a, ch, 1, idempotency_key="k-1")
    assert (again["seq"], again["envelope_id"]) == (first["seq"], first["envelope_id"])
    assert again.get("duplicate") is True
    assert len(h.store.envelopes[ch]) == 2  # channel.opened + one post
    assert len(h.notifies(b)) == 1


def test_idempotent_retry_while_the_original_commit_is_pending_waits_for_it():
    h = CoreHarness()
    a, _b, ch = h.pair()
    h.auto_commit = False
    h.send(
        a,
        {
            "kind": "request",
            "request_id": "x1",
            "op": "post",
            "params": {"channel_id": ch, "type": "note", "idempotency_key": "k"},
        },
    )
    h.send(
        a,
        {
            "kind": "request",
            "request_id": "x2",
            "op": "post",
            "params": {"channel_id": ch, "type": "note", "idempotency_key": "k"},
        },
    )
    assert [f for f in h.outbox.get(a, []) if f.get("request_id") in ("x1", "x2")] == []  # nothing before commit
    h.commit()
    res = {f["request_id"]: f["result"] for f in h.outbox[a] if f.get("request_id") in ("x1", "x2")}
    assert res["x1"]["seq"] == res["x2"]["seq"]


def test_nothing_is_answered_or_delivered_before_the_commit():
    h = CoreHarness()
    a, b, ch = h.pair()
    h.auto_commit = False
    h.send(a, {"kind": "request", "request_id": "p", "op": "post", "params": {"channel_id": ch, "type": "note"}})
    assert not [f for f in h.outbox.get(a, []) if f.get("request_id") == "p"]
    assert h.notifies(b) == []
    h.commit()
    assert next(f for f in h.outbox[a] if f.get("request_id") == "p")["ok"]
    assert len(h.notifies(b)) == 1


def test_reconnect_replays_unacked_in_seq_order_with_replay_events():
    h = CoreHarness()
    a, b, ch = h.pair()
    for i in range(5):
        post(h, a, ch, i)
    got = h.notifies(b)
    h.receipt(b, got[1])  # ack seq 3 only
    h.drop(b)
    for i in range(2):
        post(h, a, ch, 10 + i)  # arrive while bob is away
    b2 = h.connect("bob")
    again = h.notifies(b2)
    seqs = [(n["envelope"]["seq"], n["attempt"]) for n in again]
    assert seqs == [(2, 2), (4, 2), (5, 2), (6, 2), (7, 1), (8, 1)]
    types = [e["type"] for e in h.events]
    assert types.index("agent.disconnected") < types.index("replay.start") < types.index("replay.end")
    start = next(e for e in h.events if e["type"] == "replay.start")
    assert start["count"] == 4


def test_a_snapshot_says_how_each_sessions_replay_stands():
    """An observer that attaches after replay.start went out (a dashboard back after a hub restart)
    learns from the snapshot what the agent's current session replayed, and whether it still runs."""
    h = CoreHarness(window=2)
    a, b, ch = h.pair()
    for i in range(3):
        post(h, a, ch, i)
    while got := h.notifies(b):
        for n in got:
            h.receipt(b, n)
    h.commit()
    h.drop(b)
    b2 = h.connect("bob", since={ch: 0})  # the opening and the three again: more than the window takes
    o = h.connect("watcher", role="observer")

    def bob() -> dict:
        return next(x for x in h.ok(o, "observe")["agents"] if x["name"] == "bob")

    assert (bob()["replayed"], bob()["replaying"]) == (4, True)  # the window holds two of the four
    for n in h.notifies(b2):
        h.receipt(b2, n)
    for n in h.notifies(b2):
        h.receipt(b2, n)
    h.commit()
    assert (bob()["replayed"], bob()["replaying"]) == (4, False)
    h.drop(b2)
    assert (bob()["replayed"], bob()["replaying"]) == (None, False)
    h.connect("bob")
    assert (bob()["replayed"], bob()["replaying"]) == (0, False)
    alice = next(x for x in h.ok(o, "observe")["agents"] if x["name"] == "alice")
    assert (alice["replayed"], alice["replaying"]) == (0, False)


def test_superseded_session_is_closed_and_its_late_receipts_ignored():
    h = CoreHarness()
    a, b, ch = h.pair()
    post(h, a, ch, 1)
    (n,) = h.notifies(b)
    b2 = h.connect("bob")
    assert h.closed[b][0] == 4001
    h.receipt(b, n)  # late receipt from the old socket
    assert any(e["type"] == "receipt.ignored" and e["reason"] == "stale session" for e in h.events)
    (again,) = h.notifies(b2)
    assert again["attempt"] == 2


def test_receipt_for_an_envelope_not_delivered_to_you_is_ignored_and_reported():
    h = CoreHarness()
    a, b, ch = h.pair()
    post(h, a, ch, 1)
    (n,) = h.notifies(b)
    h.receipt(a, n)  # alice acks bob's delivery
    assert h.cursor("bob", ch)["inflight"] == 1
    ignored = [e for e in h.events if e["type"] == "receipt.ignored"]
    assert ignored and ignored[0]["name"] == "alice"


def test_restart_on_the_same_store_keeps_seqs_cursors_and_redelivers_unacked():
    h = CoreHarness()
    a, b, ch = h.pair()
    for i in range(4):
        post(h, a, ch, i)
    got = h.notifies(b)
    h.receipt(b, got[0])
    h.receipt(b, got[2])  # out of order: seq 4 acked above the floor
    h2 = CoreHarness(store=h.store)  # "restart" the hub on the same store
    assert h2.core.hub_id == h.core.hub_id
    a2 = h2.connect("alice")
    b2 = h2.connect("bob")
    again = h2.notifies(b2)
    assert [(n["envelope"]["seq"], n["attempt"]) for n in again] == [(3, 2), (5, 2)]
    res = post(h2, a2, ch, 99)
    assert res["seq"] == 6


def test_hello_since_redelivers_everything_after_it_acked_or_not():
    h = CoreHarness()
    a, b, ch = h.pair()
    for i in range(3):
        post(h, a, ch, i)
    h.ack_all(b)  # floor 4
    h.drop(b)
    b2 = h.connect("bob", since={ch: 2})
    assert [n["envelope"]["seq"] for n in h.notifies(b2)] == [3, 4]


def test_hello_since_ahead_of_the_log_is_refused_with_4009():
    h = CoreHarness()
    _a, b, ch = h.pair()
    h.drop(b)
    b2 = h.connect("bob", since={ch: 99})
    assert h.closed[b2][0] == 4009
    err = next(f for f in h.outbox[b2] if f["kind"] == "error")
    assert err["code"] == "conflict" and "ahead" in err["message"]


def test_audience_limits_who_receives_and_the_floor_skips_the_rest():
    h = CoreHarness()
    a, b = h.connect("alice"), h.connect("bob")
    c = h.connect("carol")
    ch = h.ok(a, "open_channel", type="conversation", participants=["bob", "carol"])["channel_id"]
    for conn in (a, b, c):
        h.ack_all(conn)
    post(h, a, ch, 1, audience=["bob"])
    post(h, a, ch, 2)
    assert [n["envelope"]["seq"] for n in h.ack_all(c)] == [3]
    assert [n["envelope"]["seq"] for n in h.ack_all(b)] == [2, 3]
    assert h.cursor("carol", ch)["ack_floor"] == 3


def test_an_empty_audience_is_a_record_delivered_to_no_one():
    """(ext) `audience: []`: stored and readable, no recipient gets it, every floor passes it."""
    h = CoreHarness()
    a, b, ch = h.pair()
    post(h, a, ch, 1, audience=[])
    post(h, a, ch, 2)
    assert [n["envelope"]["seq"] for n in h.ack_all(b)] == [3]
    assert h.cursor("bob", ch)["ack_floor"] == 3
    page = h.ok(a, "read_wal", channel_id=ch, after_seq=1, limit=5)
    assert [(e["seq"], e["audience"]) for e in page["envelopes"]] == [(2, []), (3, None)]


def test_observers_cannot_post_and_agents_cannot_observe():
    h = CoreHarness()
    a, _b, ch = h.pair()
    o = h.connect("watcher", role="observer")
    resp = h.request(o, "post", channel_id=ch, data={"text": "hi"})
    assert (resp["ok"], resp["error_code"]) == (False, "access_denied")
    resp = h.request(a, "observe")
    assert resp["error_code"] == "access_denied"
    snap = h.ok(o, "observe")
    assert {c["recipient"] for c in snap["cursors"]} == {"alice", "bob"}


def test_read_wal_pages_and_non_participants_are_refused():
    h = CoreHarness()
    a, _b, ch = h.pair()
    for i in range(7):
        post(h, a, ch, i)
    page = h.ok(a, "read_wal", channel_id=ch, after_seq=0, limit=5)
    assert [e["seq"] for e in page["envelopes"]] == [1, 2, 3, 4, 5] and page["has_more"]
    page = h.ok(a, "read_wal", channel_id=ch, after_seq=5)
    assert [e["seq"] for e in page["envelopes"]] == [6, 7, 8] and not page["has_more"]
    c = h.connect("carol")
    assert h.request(c, "read_wal", channel_id=ch)["error_code"] == "access_denied"


def test_after_a_crash_what_the_dead_hub_committed_goes_out_again_as_a_redelivery(tmp_path):
    """delivered_seq is committed after the notify it records; a hub killed in between must not
    let a possible redelivery say attempt 1 (a file store, opened again without a clean close)."""
    from agentnet.hub.store.sqlite import SqliteStore

    path = tmp_path / "hub.db"
    h = CoreHarness(store=SqliteStore(path))  # type: ignore[arg-type]
    a, b, ch = h.pair()
    h.auto_commit = False  # from here on, commit only the envelopes, as if the hub died right after
    for i in range(3):
        h.send(a, {"kind": "request", "request_id": f"p{i}", "op": "post", "params": {"channel_id": ch, "data": {}}})
    batch = h.core.take_batch()
    assert batch is not None and len(batch.envelopes) == 3
    h.store.commit(batch)
    h._apply(h.core.batch_committed(batch.batch_id, h.now))
    assert [(n["envelope"]["seq"], n["attempt"]) for n in h.notifies(b)] == [(2, 1), (3, 1), (4, 1)]
    # the cursor row saying so is still in the core's open batch: never committed; the store is never closed

    h2 = CoreHarness(store=SqliteStore(path))  # type: ignore[arg-type]
    h2.connect("alice")
    b2 = h2.connect("bob")
    assert [(n["envelope"]["seq"], n["attempt"]) for n in h2.notifies(b2)] == [(2, 2), (3, 2), (4, 2)]


def test_deliveries_assumed_after_a_crash_stay_assumed_through_a_clean_restart(tmp_path):
    """The delivered_seq a core assumes after a crash (or a failed commit) is an upper bound it must
    write down: else a clean stop before the recipient comes back, and a start after it, would send
    those envelopes with attempt 1 a second time."""
    from agentnet.hub.store.sqlite import SqliteStore

    path = tmp_path / "hub.db"
    h = CoreHarness(store=SqliteStore(path))  # type: ignore[arg-type]
    a, b, ch = h.pair()
    h.auto_commit = False  # the hub dies after the envelopes' commit, before the cursor row's
    h.send(a, {"kind": "request", "request_id": "p", "op": "post", "params": {"channel_id": ch, "data": {}}})
    batch = h.core.take_batch()
    assert batch is not None
    h.store.commit(batch)
    h._apply(h.core.batch_committed(batch.batch_id, h.now))
    assert [(n["envelope"]["seq"], n["attempt"]) for n in h.notifies(b)] == [(2, 1)]

    store = SqliteStore(path)  # after the crash: bob does not come back before a clean stop
    h2 = CoreHarness(store=store)  # type: ignore[arg-type]
    h2.commit()
    store.close()

    h3 = CoreHarness(store=SqliteStore(path))  # type: ignore[arg-type]
    h3.connect("alice")
    b3 = h3.connect("bob")
    assert [(n["envelope"]["seq"], n["attempt"]) for n in h3.notifies(b3)] == [(2, 2)]


def test_a_dead_letter_during_a_replay_frees_its_slot_for_the_replay():
    """A resend that dead-letters in one channel frees a window slot that another channel's
    `since` replay must still get, though later acks come in below a full window."""
    h = CoreHarness(window=4, max_deliver=2, ack_wait=10)
    a, b, ch_a = h.pair()
    ch_b = h.ok(a, "open_channel", type="conversation", participants=["bob"])["channel_id"]
    h.ack_all(a)
    h.ack_all(b)
    for i in range(8):
        post(h, a, ch_a, i)
    while h.ack_all(b):
        pass
    post(h, a, ch_b, 99)  # bob never acks this one
    assert [n["attempt"] for n in h.notifies(b)] == [1]
    h.tick(11)  # ack_wait: attempt 2 = max_deliver
    assert [n["attempt"] for n in h.notifies(b)] == [2]
    h.drop(b)
    b2 = h.connect("bob", since={ch_a: 1})  # replay seqs 2..9 of A; B's resend dead-letters on the way
    replayed: list[int] = []
    while got := h.ack_all(b2):
        replayed += [n["envelope"]["seq"] for n in got if n["envelope"]["channel_id"] == ch_a]
    assert replayed == list(range(2, 10))
    assert [e["type"] for e in h.events if e["type"].startswith("replay")][-2:] == ["replay.start", "replay.end"]
