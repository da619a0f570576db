"""Keyed tables: processes, channels, cursors. Rows are keyed by a stable id and updated in place,
cell by cell, only where the value changed (no clear-and-refill, so the cursor and scroll stay put)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import TypeVar

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

from agentnet.tui.format import middle_cut
from agentnet.tui.model import (
    CONNECTED,
    ChannelInfo,
    CursorInfo,
    DashboardModel,
    format_bytes,
    format_duration,
    sparkline_text,
)

Cell = str | Text
K = TypeVar("K")
V = TypeVar("V")

STATE_STYLES = {
    "ready": "green",
    "starting": "cyan",
    "pending": "dim",
    "paused": "yellow",
    "backoff": "yellow",
    "exited": "red",
    "crashed": "bold red",
    "killed": "bold red",
    "connected": "green",
    "disconnected": "red",
    "superseded": "yellow",
    "open": "green",
    "closed": "dim",
}


def with_badge(name: str, via: str | None, style: str = "") -> Text:
    """An agent's name, with its protocol badge when it came through an adapter (ag2, autogen)."""
    text = Text(name, style=style, no_wrap=True)
    if via:
        text.append(f" {via}", style="bold magenta")
    return text


def styled(value: str, style: str | None = None) -> Text:
    return Text(value, style=style or STATE_STYLES.get(value.split(" ")[0], ""), no_wrap=True)


class KeyedTable(DataTable[Cell]):
    """A DataTable whose rows are replaced by ``sync_rows`` with a keyed, cell-level diff."""

    COLUMNS: tuple[tuple[str, str, int], ...] = ()  # (key, label, width); width 0: sized to content
    # A hub with tens of thousands of channels: only this many rows are built and kept (the most
    # relevant, see `pick`), so a refresh costs about the same at 50k channels as at 500.
    MAX_ROWS = 100
    REPICK = 5.0  # seconds between choosing which rows those are (a choice walks every key)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=1)
        self._rows: dict[str, tuple[Cell, ...]] = {}
        self._picked: list | None = None
        self._picked_at = 0.0

    def pick(self, keys: dict[K, V], rank: Callable[[K], tuple], row_key: Callable[[K], str] = str) -> list[K]:
        """The keys to show: all of them up to MAX_ROWS; else the MAX_ROWS ranked highest by
        `rank(key)` (rows already shown first among equals: removing a DataTable row is dear), chosen
        again every REPICK seconds and meanwhile only refreshed, in `keys`' order."""
        if len(keys) <= self.MAX_ROWS:
            self._picked = None
            return list(keys)
        wall = time.monotonic()
        if self._picked is not None and wall - self._picked_at < self.REPICK:
            return [k for k in self._picked if k in keys]
        shown = self._rows

        def key(k: K) -> tuple:
            ranked = rank(k)
            return (ranked[0], row_key(k) in shown, *ranked[1:])

        chosen = set(heapq.nlargest(self.MAX_ROWS, keys, key=key))
        self._picked, self._picked_at = [k for k in keys if k in chosen], wall
        return self._picked

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, width=width or None, key=key)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except CellDoesNotExist:
            return None
        return row_key.value

    def sync_rows(self, rows: list[tuple[str, tuple[Cell, ...]]]) -> bool:
        """Make the table show exactly ``rows`` (in order of first appearance). True if anything changed."""
        changed = False
        wanted = {key for key, _ in rows}
        for key in [key for key in self._rows if key not in wanted]:
            self.remove_row(RowKey(key))
            del self._rows[key]
            changed = True
        columns = [key for key, _, _ in self.COLUMNS]
        auto = {key for key, _, width in self.COLUMNS if not width}
        for key, cells in rows:
            old = self._rows.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                changed = True
            elif old != cells:
                for column, before, after in zip(columns, old, cells, strict=True):
                    if before != after:
                        self.update_cell(key, column, after, update_width=column in auto)
                changed = True
            self._rows[key] = cells
        return changed


class ProcessTable(KeyedTable):
    COLUMNS = (
        ("name", "name", 0),
        ("role", "role", 5),
        ("pid", "pid", 6),
        ("state", "state", 8),
        ("conn", "connection", 12),
        ("ping", "ping", 6),
        ("cpu", "cpu", 5),
        ("rss", "rss", 8),
        ("uptime", "uptime", 10),
        ("restarts", "restarts", 0),  # sized to content: `0`, `0+1 you`, `0+1 fault`
        ("last", "last restart", 12),
    )

    def sync(self, model: DashboardModel, now: float) -> None:
        rows = []
        names = dict.fromkeys(model.process_names())
        for name in self.pick(names, lambda key: _process_rank(model, key)):
            proc = model.processes.get(name)
            agent = model.agents.get(name)
            role = proc.role if proc is not None else (agent.role if agent is not None else "?")
            conn: Cell
            ping: Cell
            if proc is not None and proc.role == "hub" and proc.reason.startswith(("active", "standby")):
                # hub replicas (postgresql): the launcher labels which one leads
                active = proc.reason.startswith("active")
                conn, ping = styled(proc.reason, "bold green" if active else "dim"), "—"
            elif proc is not None and proc.role == "hub":
                feed = {"waiting": "—", "connected": "feed ok"}.get(model.feed_state, f"feed {model.feed_state}")
                conn, ping = styled(feed, "cyan"), "—"
            elif agent is not None:
                label = model.connection_label(name)
                conn = styled(label, "cyan" if label.startswith("replay") else None)
                connected = agent.connected and agent.latency_ms is not None
                ping = f"{agent.latency_ms:.0f} ms" if connected else "—"
            else:
                conn, ping = styled("—", "dim"), "—"
            if proc is None:
                label_name: Cell = with_badge(name, agent.via) if agent is not None and agent.via else name
                cells: tuple[Cell, ...] = (
                    label_name,
                    role,
                    "—",
                    styled("—", "dim"),
                    conn,
                    ping,
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                )
            else:
                uptime = proc.uptime(now)
                since = proc.last_restart_at
                cells = (
                    with_badge(name, agent.via) if agent is not None and agent.via else name,
                    role,
                    str(proc.pid) if proc.pid is not None else "—",
                    styled(proc.state),
                    conn,
                    ping,
                    f"{proc.cpu:.0f}%" if proc.cpu is not None else "—",
                    format_bytes(proc.rss),
                    format_duration(uptime),
                    restarts_text(proc.restarts, proc.operator_restarts, proc.fault_restarts),
                    f"{format_duration(now - since)} ago" if since is not None else "—",
                )
            rows.append((name, cells))
        self.sync_rows(rows)


def restarts_text(automatic: int, by_operator: int, by_fault: int = 0) -> str:
    """The restarts cell: the policy's count, plus the operator's and the scenario's faults' restarts
    when there were any (so `last restart 6 s ago` never sits beside a bare `0`): `0+1 you`,
    `0+1 fault`, `0+1 you+2 fault`."""
    asked = [f"{n} {who}" for n, who in ((by_operator, "you"), (by_fault, "fault")) if n]
    return f"{automatic}+{'+'.join(asked)}" if asked else str(automatic)


def delivered_text(floor: int, delivered: int) -> Text:
    """The deliv cell. A sender's own envelopes are skipped, not delivered to it, so its floor can
    pass its highest delivered seq (`floor 1202, deliv 1`): shown dim as `—` (nothing delivered) or
    `≤1202` (everything up to the floor is done) instead of a number that reads as missing work."""
    if delivered >= floor:
        return Text(str(delivered))
    return Text("—" if delivered == 0 else f"≤{floor}", style="dim")


class ChannelTable(KeyedTable):
    ALL = "*"
    COLUMNS = (
        ("id", "channel", 0),
        ("head", "head", 4),
        ("rate", "rate/s 30s", 10),
        ("state", "state", 6),
        ("type", "type", 10),
        ("topic", "topic", 12),
        ("who", "participants", 16),
    )
    SPARK = 10

    def sync(self, model: DashboardModel, now: float) -> None:
        total = model.wal_rate.series(now, self.SPARK)
        channels = model.channels
        heads = sum(channel.head_seq for channel in channels.values()) if len(channels) <= self.MAX_ROWS else None
        picked = self.pick(channels, lambda key: _channel_rank(channels[key]))
        total_channels, total_agents = model.total_channels, model.total_agents
        shown = f"{len(picked):,} of {total_channels:,} shown" if len(picked) < total_channels else ""
        title = f"channels · {total_channels:,} total · {total_agents:,} agents"
        if self.border_title != title:
            self.border_title = title
        rows: list[tuple[str, tuple[Cell, ...]]] = [
            (
                self.ALL,
                (
                    Text("(all)", style="bold"),
                    str(heads) if heads is not None else "",
                    Text(sparkline_text(total), style="cyan"),
                    "",
                    "",
                    shown,
                    f"{total_agents:,} agents",
                ),
            )
        ]
        for channel_id in picked:
            channel = model.channels[channel_id]
            rows.append(
                (
                    channel_id,
                    (
                        channel_id,
                        str(channel.head_seq),
                        Text(sparkline_text(channel.rate.series(now, self.SPARK)), style="green"),
                        styled(channel.state),
                        channel.type,
                        middle_cut(channel.topic or "", 12),  # `autogen inbox: echo`: `autogen…echo`
                        ",".join(channel.participants),
                    ),
                )
            )
        self.sync_rows(rows)

    @property
    def selected_channel(self) -> str | None:
        key = self.selected_key
        return None if key in (None, self.ALL) else key


class CursorTable(KeyedTable):
    COLUMNS = (
        ("who", "recipient", 0),
        ("channel", "channel", 0),
        ("lag", "lag", 4),
        ("inflight", "in flight", 9),
        ("floor", "floor", 5),
        ("delivered", "deliv", 5),
        ("redelivered", "redeliv", 7),
        ("dead", "dead", 4),
        ("spark", "lag 30s", 8),
    )
    SPARK = 8

    @staticmethod
    def row_key(key: tuple[str, str]) -> str:
        return f"{key[0]}\x1f{key[1]}"

    @staticmethod
    def parse_key(value: str | None) -> tuple[str, str] | None:
        if not value or "\x1f" not in value:
            return None
        recipient, channel_id = value.split("\x1f", 1)
        return (recipient, channel_id)

    def sync(self, model: DashboardModel, now: float, channel_id: str | None = None) -> None:
        rows = []
        cursors = model.cursors
        if channel_id is not None:
            cursors = {key: cursor for key, cursor in cursors.items() if cursor.channel_id == channel_id}
        for key in self.pick(cursors, lambda key: _cursor_rank(cursors[key]), self.row_key):
            cursor = cursors[key]
            stuck = model.explain_cursor(key, now) is not None
            age = cursor.oldest_age(now)
            inflight = str(cursor.inflight)
            if cursor.inflight and age is not None:
                inflight += f" ({format_duration(age)})"
            agent = model.agents.get(cursor.recipient)
            who_style = "bold red" if stuck else ("" if agent is None or agent.connection == CONNECTED else "dim")
            series = model.lag_series(key, now, self.SPARK)
            rows.append(
                (
                    self.row_key(key),
                    (
                        with_badge(("⚠ " if stuck else "") + cursor.recipient, agent.via if agent else None, who_style),
                        cursor.channel_id,
                        Text(str(cursor.lag), style="bold yellow" if cursor.lag else ""),
                        Text(inflight, style="yellow" if stuck else ""),
                        str(cursor.ack_floor),
                        delivered_text(cursor.ack_floor, cursor.delivered_seq),
                        Text(str(cursor.redelivered), style="yellow" if cursor.redelivered else ""),
                        Text(str(cursor.dead), style="bold magenta" if cursor.dead else ""),
                        Text(sparkline_text(series), style="red" if stuck else "yellow"),
                    ),
                )
            )
        self.sync_rows(rows)

    @property
    def selected_cursor(self) -> tuple[str, str] | None:
        return self.parse_key(self.selected_key)


def _channel_rank(channel: ChannelInfo) -> tuple[bool, int, int]:
    """Open before closed, then the most recently active, then the deepest."""
    return (channel.state == "open", channel.rate.last_second, channel.head_seq)


def _cursor_rank(cursor: CursorInfo) -> tuple[bool, int, int]:
    """Cursors with something in flight or lagging first, then the deepest."""
    return (cursor.inflight > 0 or cursor.lag > 0, cursor.lag, cursor.delivered_seq)


def _process_rank(model: DashboardModel, name: str) -> tuple[bool, bool]:
    """Processes the launcher runs, then connected agents."""
    agent = model.agents.get(name)
    return (name in model.processes, agent is not None and agent.connected)
