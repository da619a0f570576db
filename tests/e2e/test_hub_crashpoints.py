"""The hub dies at each of its crash points in the middle of a stream (SQLite), is restarted on the
same file, and the stream's invariants hold (`check_stream`: nothing acked lost, every post once
with the seq it was told, first deliveries in seq order, gapless seqs).

`AGENTNET_CRASHPOINT=<point>:N` makes the hub exit (137) the N-th time it reaches the point, so each
window the design reasons about is hit on purpose instead of by luck:

* after_insert_before_commit: posts inserted, COMMIT not run: none of them may be in the WAL or ok'd;
* after_commit_before_response: committed, nobody told: the retries get the original seqs;
* after_notify_before_cursor_write: notifies on the wire, delivered_seq not durable: after the
  restart those envelopes go out again, never with attempt 1 twice;
* after_receipt_before_cursor_commit: an ack decided, not durable: the envelope is redelivered.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .procs import HubProc, Procs, Stream, check_stream, read_jsonl, wait_until

pytestmark = pytest.mark.timeout(150)

POINTS = {
    "after_insert_before_commit": 20,
    "after_commit_before_response": 20,
    "after_notify_before_cursor_write": 20,
    "after_receipt_before_cursor_commit": 600,
}


@pytest.mark.parametrize("point", list(POINTS))
def test_hub_killed_at_a_crash_point_mid_stream(point: str, procs: Procs, evidence: Path, tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    hub = HubProc(procs, db, env={"AGENTNET_CRASHPOINT": f"hub.{point}:{POINTS[point]}"}).start()
    stream = Stream(procs, hub, evidence, run=point, count=2_000)
    stream.start_receiver()
    stream.start_sender()
    assert hub.proc is not None
    died = hub.proc
    wait_until(f"the hub to die at {point}", lambda: not died.alive(), 60)
    assert died.popen.returncode == 137, died.log()
    processed_at_crash = stream.processed()
    hub.env = {}
    hub.start()  # same port, same file, no crash point
    stream.wait_sent(120)
    stream.wait_drained()
    stream.stop()

    report = check_stream(stream)
    print(point, report, f"processed before the crash: {processed_at_crash}")
    assert report.head == 2_001
    records = [r for r in read_jsonl(stream.processed_path) if r["channel"] == stream.channel_id]
    firsts = Counter(r["seq"] for r in records if r["attempt"] == 1)
    assert not [seq for seq, n in firsts.items() if n > 1], "attempt 1 sent twice for one seq"
    assert len({r["session"] for r in records}) >= 2, "the receiver reconnected to the restarted hub"
    if point == "after_commit_before_response":
        assert report.duplicate_oks >= 1, "a committed post whose answer was lost was not retried"
    if point in ("after_notify_before_cursor_write", "after_receipt_before_cursor_commit"):
        assert report.redelivered >= 1
