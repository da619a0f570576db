"""A stream through a hub whose store fills up and frees again (real SQLITE_FULL commits).

The fault point `AGENTNET_FAULT_DISK_FULL=FILE` keeps the database from growing while FILE exists,
so commits that need a page fail exactly as on a full disk. The hub answers the posts of a failed
commit with `overloaded` (the SDK retries them with the same idempotency key), rebuilds its state
from the store and makes every client reconnect. Afterwards `check_stream` holds (nothing acked
lost, every post once, first deliveries in seq order) and `attempt: 1` was never sent twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .procs import HubProc, Procs, Stream, check_stream, read_jsonl, wait_until

pytestmark = pytest.mark.timeout(150)

EPISODES = 5


def test_disk_full_episodes_never_repeat_attempt_one(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    full = tmp_path / "disk-full"
    hub = HubProc(procs, tmp_path / "hub.db", env={"AGENTNET_FAULT_DISK_FULL": str(full)}).start()
    stream = Stream(procs, hub, evidence, run="full", count=4_000)
    stream.start_receiver()
    stream.start_sender()

    def failures() -> int:
        return hub.proc.log().count("store commit failed") if hub.proc else 0

    for episode in range(EPISODES):
        stream.wait_processed(600 * (episode + 1))
        before = failures()
        full.touch()  # the disk is full ...
        wait_until("a commit to fail on the full disk", lambda b=before: failures() >= b + 2, 60)
        full.unlink()  # ... and has room again
    stream.wait_sent(120)
    stream.wait_drained()
    stream.stop()

    report = check_stream(stream)
    print(report, f"failed commits: {failures()}")
    assert failures() >= 2 * EPISODES
    records = [r for r in read_jsonl(stream.processed_path) if r["channel"] == stream.channel_id]
    firsts = Counter(r["seq"] for r in records if r["attempt"] == 1)
    twice = sorted(seq for seq, n in firsts.items() if n > 1)
    assert not twice, f"{len(twice)} seqs delivered twice with attempt 1, e.g. {twice[:10]}"
    assert len({r["session"] for r in records}) > EPISODES  # each failure made the receiver reconnect
    assert report.redelivered > 0


def test_a_store_unreadable_after_a_failed_commit_stops_the_hub(procs: Procs, evidence: Path, tmp_path: Path) -> None:
    """After a failed commit the hub rebuilds its state from the store; if the store cannot even be
    read, nothing in memory can be trusted: the hub says why and exits 3 (a supervisor restarts it)
    instead of living on with a dead writer that answers no post."""
    full, unreadable = tmp_path / "disk-full", tmp_path / "unreadable"
    env = {"AGENTNET_FAULT_DISK_FULL": str(full), "AGENTNET_FAULT_UNREADABLE": str(unreadable)}
    hub = HubProc(procs, tmp_path / "hub.db", env=env).start()
    stream = Stream(procs, hub, evidence, run="unreadable", count=100_000)
    stream.start_receiver()
    stream.start_sender()
    stream.wait_processed(200)
    unreadable.touch()
    full.touch()
    assert hub.proc is not None
    assert hub.proc.popen.wait(timeout=60) == 3, hub.proc.log()
    log = hub.proc.log()
    assert "cannot read the store back after a failed commit" in log and "fault point" in log, log
    stream.stop_receiver()  # its peers wait to reconnect; the procs fixture proves every one is gone
