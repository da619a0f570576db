from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot

from agentnet.run.feed import QueueFeed
from agentnet.run.recording import RecordingReader
from agentnet.tui.app import DashboardApp
from agentnet.tui.widgets.tables import KeyedTable
from tests.tui.fakes import FakeLauncher
from tests.tui.sample import sample_feed_items, write_sample_recording
from tests.waiting import await_until

SIZE = (120, 36)


@pytest.fixture
def sample_recording(tmp_path: Path) -> Path:
    return write_sample_recording(tmp_path / "run" / "recording.jsonl")


def live_app(recording: Path | None = None, **kwargs: Any) -> tuple[DashboardApp, QueueFeed, FakeLauncher]:
    """A dashboard fed the sample run (or a recording of it) through an open feed, as from a live hub,
    with a fake launcher."""
    feed = QueueFeed()
    items = [item.item for item in RecordingReader(recording)] if recording else sample_feed_items()
    for kind, data in items:
        feed.put_nowait(kind, data)
    launcher = FakeLauncher(feed)
    kwargs.setdefault("title", "sample")
    app = DashboardApp(feed, launcher, **kwargs)
    return app, feed, launcher


async def settle(app: DashboardApp, pilot: Pilot[Any], feed: QueueFeed | None = None) -> None:
    """Wait until the feed has been applied, then refresh every pane and let it paint."""
    if feed is not None:
        for _ in range(500):
            if not feed.pending:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
    else:
        await asyncio.wait_for(app.feed_done.wait(), 5)
    await pilot.pause()
    app.sync_views()
    await pilot.pause()


async def wait_for(predicate: Callable[[], bool], pilot: Pilot[Any], timeout: float = 5.0) -> None:
    """Let the app run (it shares this event loop) until `predicate` holds."""
    await await_until("the dashboard to get there", predicate, timeout, poll=0.01)


def cell(app: DashboardApp, table_id: str, row: str, column: str) -> str:
    value = app.query_one(table_id, KeyedTable).get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


async def select_row(app: DashboardApp, pilot: Pilot[Any], table_id: str, key: str) -> None:
    """Focus a table and put its cursor on a row."""
    table = app.query_one(table_id, KeyedTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()
    assert table.selected_key == key
