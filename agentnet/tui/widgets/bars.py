"""The dashboard's one-line panes and the cursor explanation: each owns its state, its text and its CSS.

The app only tells them what changed (`target`) and asks them to `sync` on its refresh tick; what
they draw is decided here. Their rules are not scoped (`SCOPED_CSS = False`) so a screen class such
as ``-playback`` or ``-compact`` can restyle them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer

from agentnet.tui.format import format_clock, format_t, plural, sparkline_text
from agentnet.tui.widgets.lines import TextLine

if TYPE_CHECKING:
    from agentnet.tui.model import DashboardModel
    from agentnet.tui.playback import PlaybackController

HELP_HINT = " ? help · tab next pane · 1/2 overview/sequence · enter inspect · ctrl+p commands"


class StatusBar(TextLine):
    """The top line: what the keys act on and where the run is first; the rest as room allows."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;
    }
    Screen.-playback StatusBar {
        background: $secondary-background;
    }
    """

    def __init__(self, *, mode: str, run_name: str, recording: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode = mode  # "live", "read-only" or "playback"
        self.run_name = run_name
        self.recording = recording
        self.target: str | None = None  # the process the control keys act on (live only)
        self._tooltip_origin: float | None = None

    def sync(self, model: DashboardModel, now: float) -> None:
        self.set(self.status_text(model, now))
        origin = model.origin
        if origin is not None and origin != self._tooltip_origin:  # hover: the wall time behind t
            self._tooltip_origin = origin
            zero = "the scenario's t = 0" if model.t0 is not None else "t = 0 (when the dashboard attached)"
            self.tooltip = f"times are scenario t: {zero} was {format_clock(origin)} UTC"

    def status_text(self, model: DashboardModel, now: float) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.mode == "live":
            text.append(" LIVE ", style="bold black on green")
            text.append(f" target: {self.target or '—'} ", style="bold reverse")
        elif self.mode == "read-only":
            text.append(" READ-ONLY ", style="bold black on yellow")
        else:
            text.append(" PLAYBACK ", style="bold white on magenta")
        t = model.t_of(now) if now else None  # no present yet (a playback before its first item)
        if t is not None:
            text.append(f"  {format_t(t)}", style="bold")
            if model.t0 is None:  # no scenario clock (attached to a hub, or still booting)
                text.append(" since attach", style="dim")
            upcoming = model.next_fault(now)
            if upcoming is not None:
                text.append(f"  next: {upcoming[1]} at {format_t(upcoming[0])}", style="bold yellow")
            elif model.schedule:
                text.append("  faults done", style="dim")
        if model.dropped_total or model.missed_total:
            text.append(f"  lost {model.dropped_total + model.missed_total}", style="bold red")
        text.append(f"  {model.event_rate.rate(now):.0f} ev/s", style="green")
        if self.recording:
            text.append("  ● REC", style="bold red")
        text.append(f"  {self.run_name}", style="bold")
        if self.mode == "read-only":
            text.append("  controls off", style="yellow")
        elif self.mode == "playback":
            text.append("  no side effects", style="magenta")
        text.append(f"  {plural(model.events_total, 'event')}", style="dim")
        if model.snapshots:
            text.append(
                f"  {plural(model.total_channels, 'channel')} · {plural(model.total_agents, 'agent')}", style="dim"
            )
        hub = model.hub
        if hub.hub_id:
            text.append(f"  hub {hub.hub_id}", style="cyan")
            if hub.store:
                text.append(f" ({hub.store})", style="dim")
        return text


class CaptionBar(TextLine):
    """The narration line: the launcher's latest caption, else the scenario's description, else help."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    CaptionBar {
        height: 1;
        width: 1fr;
        background: $boost;
    }
    """

    def __init__(self, *, description: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.description = description

    def sync(self, model: DashboardModel) -> None:
        self.set(self.caption_text(model))

    def caption_text(self, model: DashboardModel) -> Text:
        if model.captions:
            at, caption = model.captions[-1]
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(" ▌ ", style="bold cyan")
            text.append(caption, style="bold")
            text.append(f"   {model.format_at(at)}", style="dim")
            return text
        if self.description:
            return Text(f" {self.description}", style="dim", no_wrap=True, overflow="ellipsis")
        return Text(HELP_HINT, style="dim")


class PlaybackBar(TextLine):
    """Playback only: playing or paused, speed, position in the recording and a progress bar."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    PlaybackBar {
        height: 1;
        background: $boost;
    }
    """
    WIDTH = 24  # cells of the progress bar

    def __init__(self, controller: PlaybackController, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.controller = controller

    def sync(self) -> None:
        self.set(self.playback_text())

    def playback_text(self) -> Text:
        controller = self.controller
        total = len(controller)
        position = controller.position
        width = self.WIDTH
        filled = int(width * position / total) if total else 0
        text = Text(no_wrap=True, overflow="ellipsis")
        state = "▶ playing" if controller.playing else "⏸ paused"
        text.append(f" {state} {controller.speed:g}x ", style="bold white on magenta")
        model = controller.model
        now, end = model.format_at(controller.current_at), model.format_at(controller.end_at)
        text.append(f"  item {position}/{total}  {now} / {end}  ")
        text.append("━" * filled, style="magenta")
        text.append("─" * (width - filled), style="dim")
        return text


class CursorDetail(Widget):
    """Under the cursors table: the selected cursor (when that table has focus) or the first stuck
    one, explained in words, and its lag sparkline. Hidden on a compact screen."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    CursorDetail {
        layout: vertical;
        height: auto;
        width: 1fr;
    }
    CursorDetail > #cursor-detail {
        height: 3;
        padding: 0 1;
    }
    CursorDetail > #lag-spark {
        height: 1;
        padding: 0 1;
    }
    Screen.-compact CursorDetail {
        display: none;
    }
    """

    def compose(self) -> ComposeResult:
        yield TextLine(id="cursor-detail")
        yield TextLine(id="lag-spark")

    def sync(self, model: DashboardModel, now: float, selected: tuple[str, str] | None, *, table_focused: bool) -> None:
        selected = selected if selected in model.cursors else None
        stuck = model.stuck_cursors(now)
        if selected is not None and (table_focused or not stuck):
            key: tuple[str, str] | None = selected
        else:
            key = stuck[0][0] if stuck else None
        lines = Text()
        if key is None:
            lines.append("every cursor is moving", style="green")
        elif why := model.explain_cursor(key, now):
            lines.append("⚠ ", style="bold red")
            lines.append(f"[{key[1]}] {why}")
            if len(stuck) > 1:
                lines.append(f"  (+{len(stuck) - 1} more stuck)", style="dim")
        else:
            cursor = model.cursors[key]
            lines.append(f"{key[0]} in {key[1]}: ", style="bold")
            lines.append(f"floor {cursor.ack_floor}, {cursor.inflight} in flight, lag {cursor.lag}", style="green")
        self.query_one("#cursor-detail", TextLine).set(lines)
        spark = Text(no_wrap=True, overflow="ellipsis")
        if key is not None:
            series = model.lag_series(key, now, 30)
            spark.append(f"lag of {key[0]} in {key[1]}, 30 s ", style="dim")
            spark.append(sparkline_text(series), style="yellow")
            spark.append(f" now {series[-1]:.0f}, max {max(series):.0f}", style="dim")
        self.query_one("#lag-spark", TextLine).set(spark)


class KeysFooter(Footer):
    """The footer, narrowed below ``NARROW_BELOW`` columns so the most useful keys stay whole.

    At 80 columns the full footer cut off mid-label (``l l…``). When narrow, the keys in
    ``NARROW_HIDDEN`` (still listed in ``?`` help) and the ``^p palette`` key give way, so
    ``? help q quit t target k kill p pause r restart w post l log`` reads whole.
    """

    NARROW_BELOW = 100  # columns
    NARROW_HIDDEN = frozenset({"follow", "filter"})  # actions

    def __init__(self) -> None:
        super().__init__(compact=True)
        self.narrow = False

    def set_width(self, width: int) -> None:
        narrow = width < self.NARROW_BELOW
        if narrow != self.narrow:
            self.narrow = narrow
            self.show_command_palette = not narrow
            self.refresh(recompose=True)

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if self.narrow and getattr(widget, "action", None) in self.NARROW_HIDDEN:  # a FooterKey
                continue
            yield widget
