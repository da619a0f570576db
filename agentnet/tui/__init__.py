"""The agentnet dashboard (Textual): live view of a run, read-only attach, and playback.

Entry points (wired into the CLI):

* :func:`run_dashboard` — ``agentnet up FILE`` (with the launcher's controls) and
  ``agentnet tui URL`` (read-only, ``controls=None``).
* :func:`run_playback` — ``agentnet replay RECORDING``.
* :func:`agentnet.tui.bench.run_tui_bench` — ``agentnet bench tui``.

Importing this package does not import Textual; the app is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnet.run.control import VERBS, ControlError, Controls
from agentnet.run.feed import QueueFeed, classify, frames_feed, merge_feeds, recording_feed
from agentnet.run.items import FeedItem
from agentnet.run.recording import RecordingReader, RecordingWriter
from agentnet.tui.controls import CONTROL_SPECS
from agentnet.tui.model import DashboardModel

if TYPE_CHECKING:
    from agentnet.tui.app import run_dashboard, run_playback

__all__ = [
    "CONTROL_SPECS",
    "VERBS",
    "ControlError",
    "Controls",
    "DashboardModel",
    "FeedItem",
    "QueueFeed",
    "RecordingReader",
    "RecordingWriter",
    "classify",
    "frames_feed",
    "merge_feeds",
    "recording_feed",
    "run_dashboard",
    "run_playback",
]


def __getattr__(name: str) -> Any:
    if name in ("run_dashboard", "run_playback"):
        from agentnet.tui import app

        return getattr(app, name)
    raise AttributeError(name)
