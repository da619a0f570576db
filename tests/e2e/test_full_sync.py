"""SQLite FULL's fsync after each commit (`Hub._sync`): on the event loop while fsyncs are fast, in
a worker thread once one was slow (the loop keeps serving), back on the loop after fast ones; and a
failed one stops the hub.

A real hub shell on a SQLite store in a tmp dir, with the fault point `AGENTNET_FAULT_SYNC=FILE`:
while FILE exists each sync sleeps the seconds it holds (`FILE.syncing` exists meanwhile) or, if it
says `fail`, fails with an I/O error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.waiting import await_until

from .test_group_commit import Pair, _delivered_and_acked, _pair

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    """A FULL hub whose syncs obey `tmp_path / "sync-fault"` (absent: real fsyncs)."""
    fault = tmp_path / "sync-fault"
    monkeypatch.setenv("AGENTNET_FAULT_SYNC", str(fault))
    async for pair in _pair(tmp_path, synchronous="FULL"):
        yield pair
        fault.unlink(missing_ok=True)  # a failed test must not leave the hub's last syncs slow


def _set_fault(path: Path, what: str) -> None:
    """Replace the fault file at once: a sync never reads it half written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(what)
    os.replace(tmp, path)


async def _quiet(pair: Pair, seq: int, tmp_path: Path) -> None:
    """Bob's receipt of `seq` stored and no sync under way: the next sync is the next post's."""
    await await_until("the receipt stored", lambda: pair.acked_in_store() >= seq)
    await await_until("no sync under way", lambda: not (tmp_path / "sync-fault.syncing").exists())


def _stored(pair: Pair, text: str) -> bool:
    db = pair.hub.store._reader  # type: ignore[attr-defined]
    rows = db.execute("SELECT body FROM envelopes WHERE channel_id=?", (pair.channel_id,))
    return any(text.encode() in bytes(body) for (body,) in rows)


async def test_a_slow_disk_is_synced_off_the_loop_and_a_fast_one_on_it(
    full: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pair, hub, fault = full, full.hub, tmp_path / "sync-fault"
    caplog.set_level(logging.INFO, logger="agentnet.hub")
    await _quiet(pair, await _delivered_and_acked(pair, "fast disk"), tmp_path)

    _set_fault(fault, "0.3")  # the disk turns slow: the next sync runs on the loop (unless a real
    await _quiet(pair, await _delivered_and_acked(pair, "first slow sync"), tmp_path)  # one was slow)
    assert hub._sync_slow, "a 0.3 s fsync did not send the next ones to a thread"

    # ... and the ones after it in a thread: this coroutine runs on the hub's loop, so it sees the
    # post's sync under way (FILE.syncing) only if the loop is free meanwhile.
    _set_fault(fault, "30")
    answered = len(pair.answers)
    pair.post("while the disk is slow")
    await await_until("a sync under way in a worker thread", (tmp_path / "sync-fault.syncing").exists)
    assert _stored(pair, "while the disk is slow"), "the sync under way is not the post's"
    assert len(pair.answers) == answered, "a post was answered before its commit was synced"

    fault.unlink()  # fast again: the sync under way ends, and fast syncs bring them back to the loop
    await await_until("the post answered once synced", lambda: len(pair.answers) > answered, timeout=15)
    assert pair.answers[-1].result()["ok"]
    for n in range(500):  # SYNC_FAST_AGAIN fast ones in a row (a loaded machine's may be slow)
        if not hub._sync_slow:
            break
        await _delivered_and_acked(pair, f"fast again {n}")
    assert not hub._sync_slow
    assert "syncing on the event loop again" in caplog.text, caplog.text


async def test_a_failed_sync_stops_the_hub_without_answering(full: Pair, tmp_path: Path) -> None:
    """SQLite has the rows, the disk may not: the post is neither stored nor failed as far as anyone
    is told, and the hub stops (exit 3 from the CLI) so that a supervisor restarts it."""
    pair, fault = full, tmp_path / "sync-fault"
    await _quiet(pair, await _delivered_and_acked(pair, "before the disk error"), tmp_path)
    answered = len(pair.answers)
    _set_fault(fault, "fail")
    pair.post("lost to the disk error")
    await await_until("the hub to step down", lambda: pair.hub.stepped_down is not None)
    assert "cannot make a commit durable" in str(pair.hub.stepped_down)
    assert "fault point" in str(pair.hub.stepped_down), pair.hub.stepped_down
    await await_until("the post's waiter told the session ended", lambda: len(pair.answers) > answered)
    assert pair.answers[-1].exception() is not None, pair.answers[-1].result()
