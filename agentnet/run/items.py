"""Feed items: what the launcher hands its views (the dashboard, the headless log) and its recording.

A feed item is ``(kind, payload)``: ``snapshot`` and ``event`` come from the hub's observer feed
(decode them with `agentnet.protocol.events`); ``process``, ``caption``, ``fault``, ``control``,
``stats`` and ``status`` come from the launcher or the dashboard's own sources.
"""

from __future__ import annotations

from typing import Any

FeedItem = tuple[str, dict[str, Any]]
"""One item of a feed: ``(kind, payload)`` with kind in :data:`FEED_KINDS`."""

FEED_KINDS = ("snapshot", "event", "process", "caption", "fault", "stats", "status", "control")
