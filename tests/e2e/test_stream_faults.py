"""10,000 envelopes from one agent to another over real sockets and a real SQLite store, with faults.

Every run ends with `check_stream` (the test plan's C1, C2, C5, C6, C9, C10, C11): every envelope
processed at least once, first deliveries in seq order, nothing acked lost, every post answered ok
still in the WAL with the seq it was told, seqs gapless and never reused. Before each fault (but
the receiver's first kill, which lands wherever it lands) the receiver is paused until it owes
1,000 acks, so the fault is sure to hit a full window of deliveries in flight.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest
from websockets.sync.client import connect

from .procs import HubProc, KillRun, Procs, Stream, ack_floor, check_stream, db_rows, read_jsonl

pytestmark = pytest.mark.timeout(120)


def disconnect_via_observer(url: str, name: str) -> None:
    """The observer's `disconnect` op: the hub closes that agent's socket with 4000."""
    with connect(url, compression=None) as ws:
        ws.send(orjson.dumps({"kind": "hello", "name": "ops", "role": "observer"}).decode())
        assert orjson.loads(ws.recv(timeout=10))["kind"] == "welcome"
        request = {"kind": "request", "request_id": "d1", "op": "disconnect", "params": {"name": name}}
        ws.send(orjson.dumps(request).decode())
        response = orjson.loads(ws.recv(timeout=10))
        assert response == {"kind": "response", "request_id": "d1", "ok": True, "result": {}}, response


def test_receiver_connection_dropped_mid_stream(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    stream = Stream(procs, hub, evidence, run="drop")
    receiver = stream.start_receiver()
    stream.start_sender()

    # 1: the receiver's own side aborts the TCP connection (no closing handshake; frames in flight lost)
    stream.wait_processed(2_500)
    stream.pause_receiver()
    receiver.signal(signal.SIGUSR1)  # handled as soon as it runs again
    stream.resume_receiver()
    # 2: the hub drops it (an observer's `disconnect`: close 4000) while it owes acks
    stream.wait_processed(6_000)
    stream.pause_receiver()
    disconnect_via_observer(hub.url, stream.receiver)
    stream.resume_receiver()

    stream.wait_sent()
    stream.wait_drained()
    assert receiver.alive() and len(stream.receivers) == 1  # one process throughout: the SDK reconnected
    stream.stop()

    report = check_stream(stream)
    print(report)
    assert report.head == 10_001  # channel.opened + 10,000 posts
    assert report.redelivered > 0
    sessions = {r["session"] for r in read_jsonl(stream.processed_path)}
    assert sessions == {1, 2, 3}  # each drop was followed by a reconnect that delivered


def test_receiver_sigkilled_and_restarted(receiver_kill_run: KillRun) -> None:
    run = receiver_kill_run
    report = check_stream(run.stream)
    print(report)
    assert report.head == 10_001
    assert len(set(run.receiver_pids)) == run.kills + 1
    pids = {r["pid"] for r in read_jsonl(run.stream.processed_path)}
    assert pids == set(run.receiver_pids), "every incarnation of the receiver processed deliveries"
    assert report.redelivered > 0


def test_hub_sigkilled_mid_stream_and_restarted_on_the_same_file(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    hub = HubProc(procs, db).start()
    stream = Stream(procs, hub, evidence, run="hubkill")
    stream.start_receiver()
    stream.start_sender()

    stream.wait_processed(3_000)
    stream.pause_receiver()
    hub.kill()  # kill -9 with posts in flight and the receiver owing acks
    stream.resume_receiver()
    oks_at_kill = {op["envelope_id"]: op["seq"] for op in read_jsonl(stream.ops_path)}
    wal_at_kill = dict(db_rows(db, "SELECT envelope_id, seq FROM envelopes"))
    head_at_kill = max(wal_at_kill.values())
    floor_at_kill = ack_floor(db, stream.receiver, stream.channel_id)
    unacked_at_kill = set(range(floor_at_kill + 1, head_at_kill + 1))
    session_at_kill = max(r["session"] for r in read_jsonl(stream.processed_path))
    assert len(unacked_at_kill) >= 1_000
    # every post answered ok before the kill is in the file the dead hub left, with the seq it was told
    assert all(wal_at_kill.get(eid) == seq for eid, seq in oks_at_kill.items())

    hub.start()  # same port, same file
    assert hub.health()["channels"] == 1
    stream.wait_sent()
    stream.wait_drained()
    assert len(stream.receivers) == 1 and stream.receiver_proc.alive()  # the SDK reconnected on its own
    stream.stop()

    # After the crash every envelope the dead hub had committed counts as possibly delivered, so
    # attempt 1 only ever marks a first delivery: those still come in strictly increasing seq order.
    report = check_stream(stream)
    print(report, f"unacked at the kill: {len(unacked_at_kill)}")
    replayed = [
        r for r in read_jsonl(stream.processed_path) if r["session"] > session_at_kill and r["seq"] <= head_at_kill
    ]
    assert replayed and all(r["attempt"] >= 2 for r in replayed), "a possible redelivery said attempt 1"

    assert report.head == 10_001
    # seqs continue from the committed head with new envelopes, never an old seq for a new one
    after = db_rows(db, "SELECT envelope_id, seq FROM envelopes WHERE seq > ? ORDER BY seq", (head_at_kill,))
    assert after and after[0][1] == head_at_kill + 1
    assert not any(eid in wal_at_kill for eid, _ in after)
    oks_after = [op for op in read_jsonl(stream.ops_path) if op["envelope_id"] not in oks_at_kill]
    assert oks_after and all(
        op["seq"] > head_at_kill or wal_at_kill.get(op["envelope_id"]) == op["seq"] for op in oks_after
    ), "a post answered after the restart got a seq the dead hub had already used for another envelope"
    # the receiver got everything it had not acked at the kill (check_stream: every seq processed)
    processed = {r["seq"] for r in read_jsonl(stream.processed_path)}
    assert unacked_at_kill <= processed
    assert {r["session"] for r in read_jsonl(stream.processed_path)} == {1, 2}
    assert report.redelivered > 0
