"""SQLite FULL's fsync after each commit (`Hub._sync`): on the event loop while syncs are fast, in a
worker thread while they are slow (the loop keeps serving), and a failed one stops the hub.

A real hub shell on a SQLite store in a tmp dir, with the fault point `AGENTNET_FAULT_SYNC=FILE`:
while FILE exists each sync sleeps the seconds it holds (`FILE.syncing` exists meanwhile) or, if it
says `fail`, fails with an I/O error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.waiting import await_until

from .test_group_commit import Pair, _delivered_and_acked, _pair

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    """A FULL hub whose syncs obey `tmp_path / "sync-fault"` (absent: real fsyncs)."""
    monkeypatch.setenv("AGENTNET_FAULT_SYNC", str(tmp_path / "sync-fault"))
    async for pair in _pair(tmp_path, synchronous="FULL"):
        yield pair


async def test_a_slow_disk_is_synced_off_the_loop_and_a_fast_one_on_it(
    full: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pair, fault = full, tmp_path / "sync-fault"
    caplog.set_level(logging.INFO, logger="agentnet.hub")
    await _delivered_and_acked(pair, "fast disk")

    fault.write_text("0.3")  # the disk turns slow: the next sync still runs on the loop ...
    await _delivered_and_acked(pair, "first slow sync")
    assert "syncing in a worker thread while syncs are slow" in caplog.text, caplog.text

    # ... and the ones after it in a thread: this coroutine runs on the hub's loop, so it sees the
    # sync under way (FILE.syncing) only if the loop is free meanwhile.
    fault.write_text("5")
    answered = len(pair.answers)
    pair.post("while the disk is slow")
    await await_until("a sync under way in a worker thread", (tmp_path / "sync-fault.syncing").exists)
    assert len(pair.answers) == answered, "a post was answered before its commit was synced"

    fault.unlink()  # fast again: the sync under way ends, and syncs return to the loop
    await await_until("the post answered once synced", lambda: len(pair.answers) > answered, timeout=15)
    assert pair.answers[-1].result()["ok"]
    for n in range(100):  # a loaded machine's own fsync may be slow now and then
        if "syncing on the event loop again" in caplog.text:
            break
        await _delivered_and_acked(pair, f"fast again {n}")
    assert "syncing on the event loop again" in caplog.text, caplog.text


async def test_a_failed_sync_stops_the_hub_without_answering(full: Pair, tmp_path: Path) -> None:
    """SQLite has the rows, the disk may not: the post is neither stored nor failed as far as anyone
    is told, and the hub stops (exit 3 from the CLI) so that a supervisor restarts it."""
    pair, fault = full, tmp_path / "sync-fault"
    await _delivered_and_acked(pair, "before the disk error")
    answered = len(pair.answers)
    fault.write_text("fail")
    pair.post("lost to the disk error")
    await await_until("the hub to step down", lambda: pair.hub.stepped_down is not None)
    assert "cannot make a commit durable" in pair.hub.stepped_down
    assert "fault point" in pair.hub.stepped_down, pair.hub.stepped_down
    await await_until("the post's waiter told the session ended", lambda: len(pair.answers) > answered)
    assert pair.answers[-1].exception() is not None, pair.answers[-1].result()
