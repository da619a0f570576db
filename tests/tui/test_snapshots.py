"""SVG snapshots at 120x36 from a recording of the deterministic sample run (tests/tui/sample.py).

Update after an intended visual change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the diffs in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from agentnet.tui.app import playback_app
from agentnet.tui.widgets.streams import WalView
from tests.tui.conftest import SIZE, live_app, select_row, settle


def test_main_screen(snap_compare: Any, sample_recording: Path) -> None:
    app, feed, _ = live_app(sample_recording, title="consult.yaml")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(app, pilot, feed)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_sequence_diagram(snap_compare: Any, sample_recording: Path) -> None:
    app, feed, _ = live_app(sample_recording, title="consult.yaml")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#channels", "arith")
        await pilot.press("2")
        await settle(app, pilot, feed)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_inspector(snap_compare: Any, sample_recording: Path) -> None:
    app, feed, _ = live_app(sample_recording, title="consult.yaml")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(app, pilot, feed)
        wal = app.query_one("#wal", WalView)
        rows = list(wal.selection)
        wal.select(next(index for index, row in enumerate(rows) if (row.channel_id, row.seq) == ("arith", 5)))
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_playback_mode(snap_compare: Any, sample_recording: Path) -> None:
    app = playback_app(sample_recording, title="recording.jsonl")

    async def run_before(pilot: Pilot[Any]) -> None:
        assert app.playback is not None
        app.playback.seek(app.playback.reader.seek_time(6.5))
        app.sync_views()
        await pilot.pause()
        app.sync_views()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
