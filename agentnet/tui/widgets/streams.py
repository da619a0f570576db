"""Line-API stream views: the WAL stream, the event log and the sequence diagram.

Each view is a window on a :class:`~agentnet.tui.model.Selection`; only the visible rows are rendered
(``render_line``), and rendered rows are cached by (serial, version, width, selected). Follow mode
keeps the newest row in view; any scroll or cursor move up pauses it, and the border then counts the
rows that arrived since ("12 new · f to follow").
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from agentnet.tui.diagram import arrow_label, draw_arrow, lane_centres
from agentnet.tui.format import middle_cut
from agentnet.tui.model import (
    Arrow,
    DashboardModel,
    EnvelopeRow,
    LogLine,
    Selection,
    WalFilter,
)

MARK_STYLES = {
    "pending": "dim",
    "delivered": "yellow",
    "acked": "green",
    "settled": "dim green",
    "nacked": "bold red",
    "dead": "bold magenta",
    "takeover": "bold white on dark_red",
}
LOG_STYLES = {
    "info": ("·", ""),
    "warn": ("!", "yellow"),
    "error": ("✗", "bold red"),
    "replay": ("↺", "cyan"),
    "caption": ("▌", "bold cyan"),
    "fault": ("⚡", "bold magenta"),
    "process": ("◆", "blue"),
    "control": ("▸", "green"),
}
ARROW_KIND_STYLES = {
    "post": "bold cyan",
    "deliver": "green",
    "redeliver": "bold yellow",
    "ack": "dim green",
    "nack": "bold red",
    "dead": "bold magenta",
    "takeover": "bold white on dark_red",
    "fault": "bold magenta",
    "connect": "cyan",
    "disconnect": "yellow",
}
STRIP_CACHE = 2_000


class StreamView(ScrollView, can_focus=True):
    """Base: a follow-mode, cursor-selectable window on a model selection."""

    DEFAULT_CSS = """
    StreamView {
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS = [
        Binding("up", "cursor_up", "up", show=False),
        Binding("down", "cursor_down", "down", show=False),
        Binding("pageup", "page_up", "page up", show=False),
        Binding("pagedown", "page_down", "page down", show=False),
        Binding("home", "first", "first", show=False),
        Binding("end", "last", "last (follow)", show=False),
        Binding("enter", "inspect", "inspect", id="stream.inspect", tooltip="Open the envelope inspector"),
    ]
    HEADER_ROWS = 0
    PANE_TITLE = "stream"

    class Inspect(Message):
        """The user asked to inspect ``item`` (an envelope row, an arrow or a log line)."""

        def __init__(self, view: StreamView, item: Any) -> None:
            super().__init__()
            self.view = view
            self.item = item

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.follow = True
        self.new_count = 0
        self._cursor_serial: int | None = None
        self._cursor_index: int | None = None
        self._selection: Selection | None = None
        self._selection_key: Any = None
        self._model: DashboardModel | None = None
        self._strips: dict[tuple[Any, ...], Strip] = {}
        self._auto_scroll = False
        self._render_key: Any = None
        self._version = -1

    # ---------------------------------------------------------------- to override

    def selection_key(self) -> Any:
        return None

    def make_selection(self, model: DashboardModel) -> Selection:
        raise NotImplementedError

    def render_item(self, item: Any, width: int) -> Text:
        raise NotImplementedError

    def item_version(self, item: Any) -> int:
        return 0

    def render_header(self, width: int) -> Text:
        return Text("")

    def render_context(self) -> Any:
        """Anything else a row's rendering depends on (lanes, column layout); part of the cache key."""
        return None

    def title(self) -> str:
        return self.PANE_TITLE

    def format_at(self, at: float | None) -> str:
        """A row's time on the dashboard's one clock (``t+12.34s``), padded to ``TIME_WIDTH``."""
        model = self._model
        return f"{model.format_at(at) if model is not None else '':>{self.TIME_WIDTH}}"

    TIME_WIDTH = 8  # "t+12.34s"; longer runs push the row right

    def _origin(self) -> float | None:
        """The clock's t = 0: rows are redrawn when it moves (the launcher's t0 arrives after boot)."""
        return self._model.origin if self._model is not None else None

    # ---------------------------------------------------------------- state

    @property
    def selection(self) -> Selection | None:
        return self._selection

    @property
    def cursor_index(self) -> int | None:
        return self._cursor_index

    @property
    def selected_item(self) -> Any:
        if self._selection is None or not len(self._selection):
            return None
        index = self._cursor_index if self._cursor_index is not None else len(self._selection) - 1
        return self._selection[index]

    @property
    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - self.HEADER_ROWS)

    def sync(self, model: DashboardModel, *, force: bool = False) -> None:
        """Catch up with the model (called on the app's refresh tick)."""
        key = self.selection_key()
        if not force and model is self._model and key == self._selection_key and model.version == self._version:
            return  # nothing new (the app still ticks once a second for the tables' ages)
        self._version = model.version
        if force or model is not self._model or key != self._selection_key or self._selection is None:
            self._model = model
            self._selection_key = key
            self._selection = self.make_selection(model)
            self._strips.clear()
            self.new_count = 0
            added, dropped = 0, 0
        else:
            added = self._selection.sync()
            dropped = self._selection.dropped
        context = (self.render_context(), self._origin())
        if context != self._render_key:
            self._render_key = context
            self._strips.clear()
        total = len(self._selection)
        self._cursor_index = (
            self._selection.index_of_serial(self._cursor_serial) if self._cursor_serial is not None else None
        )
        if self._cursor_serial is not None and self._cursor_index is None:
            self._cursor_serial = None  # the row under the cursor left the ring or the filter
        self.virtual_size = Size(self.scrollable_content_region.width, total + self.HEADER_ROWS)
        if self.follow:
            self.new_count = 0
            self._scroll_to_end()
        else:
            self.new_count += added
            if dropped:
                self._scroll_quietly(max(0, self.scroll_y - dropped))
        if len(self._strips) > STRIP_CACHE:
            self._strips.clear()
        self._update_labels()
        self.refresh()

    def _scroll_quietly(self, y: float) -> None:
        self._auto_scroll = True
        try:
            self.scroll_to(y=y, animate=False, force=True)
        finally:
            self._auto_scroll = False

    def _scroll_to_end(self) -> None:
        """Follow: show the newest row now, and again once a pending layout has settled."""
        self._scroll_quietly(self.max_scroll_y)
        self.call_after_refresh(self._settle_follow)

    def _settle_follow(self) -> None:
        if self.follow and self.scroll_y != self.max_scroll_y:
            self._scroll_quietly(self.max_scroll_y)

    def on_resize(self) -> None:
        if self.follow:
            self._scroll_to_end()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # a user scrolling up pauses follow; a pane that was hidden (another tab) and gets its size
        # back has its scroll clamped to the new end, which is no reason to stop following
        if not self._auto_scroll and self.follow and new_value < old_value and new_value < self.max_scroll_y:
            self.set_follow(False)

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        if follow:
            self._cursor_serial = None
            self._cursor_index = None
            self.new_count = 0
            self._scroll_to_end()
        self._update_labels()
        self.refresh()

    def _update_labels(self) -> None:
        title = self.title()
        total = len(self._selection) if self._selection is not None else 0
        if self.follow:
            subtitle = f"{total} · ● following"
        elif self.new_count:
            subtitle = f"{total} · ⏸ paused · {self.new_count} new · f to follow"
        else:
            subtitle = f"{total} · ⏸ paused · f to follow"
        if title != self.border_title:
            self.border_title = title
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle

    # ---------------------------------------------------------------- cursor

    def select(self, index: int) -> None:
        """Put the cursor on row ``index`` of the selection (pauses follow)."""
        self._move_to(index)

    def _move_to(self, index: int) -> None:
        if self._selection is None or not len(self._selection):
            return
        index = max(0, min(index, len(self._selection) - 1))
        self.follow = False
        self._cursor_index = index
        self._cursor_serial = self._selection[index].serial
        top = int(self.scroll_y)
        rows = self.visible_rows
        if index < top:
            self._scroll_quietly(index)
        elif index >= top + rows:
            self._scroll_quietly(index - rows + 1)
        self._update_labels()
        self.refresh()

    def _start_index(self) -> int:
        if self._cursor_index is not None:
            return self._cursor_index
        total = len(self._selection) if self._selection is not None else 0
        return min(total - 1, int(self.scroll_y) + self.visible_rows - 1) + 1

    def action_cursor_up(self) -> None:
        self._move_to(self._start_index() - 1)

    def action_cursor_down(self) -> None:
        start = self._cursor_index if self._cursor_index is not None else self._start_index() - 2
        self._move_to(start + 1)

    def action_page_up(self) -> None:
        self._move_to(self._start_index() - self.visible_rows)

    def action_page_down(self) -> None:
        start = self._cursor_index if self._cursor_index is not None else self._start_index() - 1
        self._move_to(start + self.visible_rows)

    def action_first(self) -> None:
        self._move_to(0)

    def action_last(self) -> None:
        self.set_follow(True)

    def action_toggle_follow(self) -> None:
        self.set_follow(not self.follow)

    def action_inspect(self) -> None:
        item = self.selected_item
        if item is not None:
            self.post_message(self.Inspect(self, item))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self._selection is None:
            return
        index = int(self.scroll_y) + offset.y - self.HEADER_ROWS
        if 0 <= index < len(self._selection):
            if index == self._cursor_index or event.chain >= 2:
                self.post_message(self.Inspect(self, self._selection[index]))
            self._move_to(index)

    # ---------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y < self.HEADER_ROWS:
            return self._to_strip(self.render_header(width), width, base)
        index = int(self.scroll_y) + y - self.HEADER_ROWS
        selection = self._selection
        if selection is None or not 0 <= index < len(selection):
            return Strip.blank(width, base)
        item = selection[index]
        selected = index == self._cursor_index
        key = (item.serial, self.item_version(item), selected, width)
        strip = self._strips.get(key)
        if strip is None:
            text = self.render_item(item, width)
            if selected:
                text.stylize("reverse")
            strip = self._strips[key] = self._to_strip(text, width, base)
        return strip

    def _to_strip(self, text: Text, width: int, base: Style) -> Strip:
        text.no_wrap = True
        text.truncate(width, overflow="ellipsis")
        return Strip(list(text.render(self.app.console))).crop_extend(0, width, base).apply_style(base)


# ------------------------------------------------------------------------------------------ WAL


class WalView(StreamView):
    PANE_TITLE = "WAL stream"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.channel_id: str | None = None
        self.wal_filter = WalFilter()

    def selection_key(self) -> Any:
        return (self.channel_id, self.wal_filter.key())

    def make_selection(self, model: DashboardModel) -> Selection:
        return model.select_wal(self.channel_id, self.wal_filter)

    def item_version(self, item: EnvelopeRow) -> int:
        return item.version

    def render_context(self) -> Any:
        return self.channel_id is None, self.sender_width

    @property
    def sender_width(self) -> int:
        """Room for a sender's name: 8 cells, up to 12 as longer names appear (`autogen-gw`)."""
        longest = self._model.longest_sender if self._model is not None else 0
        return min(12, max(8, longest))

    def title(self) -> str:
        where = f"channel {self.channel_id}" if self.channel_id else "all channels"
        title = f"WAL stream · {where}"
        if not self.wal_filter.empty:
            title += f" · filter: {self.wal_filter.describe()}"
        return title

    MARKS_WIDTH = 16

    NARROW = 72  # below this many columns a row drops its clock and pads less: the text stays visible

    def render_item(self, row: EnvelopeRow, width: int) -> Text:
        text = Text(no_wrap=True)
        narrow = 0 < width < self.NARROW
        if self.channel_id is None:
            text.append(f"{row.channel_id[:7]:<7}", style="dim cyan")
        text.append(f"{row.seq:>5} ", style="bold")
        if narrow:
            text.append(f"{middle_cut(row.sender, 8)}→ ", style="cyan")
        else:
            text.append(f"{self.format_at(row.at)} ", style="dim")
            width = self.sender_width
            text.append(f"{middle_cut(row.sender, width):>{width}}→ ", style="cyan")
        marks = Text(no_wrap=True)
        for mark in row.marks.values():
            marks.append(mark.recipient)
            marks.append(mark.glyph, style=MARK_STYLES.get(mark.state, ""))
            marks.append(" ")
        if marks.cell_len < self.MARKS_WIDTH and not narrow:
            marks.append(" " * (self.MARKS_WIDTH - marks.cell_len))
        text.append_text(marks)
        if row.type != "text":
            text.append(f"[{row.type}] ", style="magenta")
        text.append(row.text.replace("\n", " "))
        return text


# ------------------------------------------------------------------------------------------ log


class LogView(StreamView):
    PANE_TITLE = "event log"

    def make_selection(self, model: DashboardModel) -> Selection:
        return model.select_log()

    def render_item(self, line: LogLine, width: int) -> Text:
        icon, style = LOG_STYLES.get(line.level, ("·", ""))
        text = Text(no_wrap=True)
        text.append(f"{self.format_at(line.at)} ", style="dim")
        text.append(f"{icon} ", style=style)
        text.append(line.text, style=style if line.level in ("caption", "fault", "error") else "")
        return text


# ------------------------------------------------------------------------------------------ ladder


class LadderView(StreamView):
    """The sequence diagram: a lane per agent plus the hub, one arrow per row."""

    PANE_TITLE = "sequence"
    HEADER_ROWS = 1
    GUTTER = 16

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.channel_id: str | None = None
        self._lanes: tuple[str, ...] = ("hub",)

    def selection_key(self) -> Any:
        return self.channel_id

    def make_selection(self, model: DashboardModel) -> Selection:
        return model.select_arrows(self.channel_id)

    def sync(self, model: DashboardModel, *, force: bool = False) -> None:
        channel = model.channels.get(self.channel_id) if self.channel_id else None
        if channel is not None:
            lanes = ["hub", *[lane for lane in model.lanes if lane in channel.participants]]
            lanes += [name for name in channel.participants if name not in lanes]
        else:
            lanes = list(model.lanes)
        self._lanes = tuple(lanes)
        super().sync(model, force=force)

    def render_context(self) -> Any:
        return self._lanes

    def title(self) -> str:
        where = f"channel {self.channel_id}" if self.channel_id else "all channels"
        return f"sequence diagram · {where} · m export Mermaid"

    def _centres(self, width: int) -> dict[str, int]:
        return lane_centres(list(self._lanes), 0, max(8, width - self.GUTTER))

    def render_header(self, width: int) -> Text:
        area = max(8, width - self.GUTTER)
        cells = [" "] * area
        for lane, x in self._centres(width).items():
            start = max(0, x - len(lane) // 2)
            for offset, char in enumerate(lane):
                if start + offset < area:
                    cells[start + offset] = char
        text = Text(" " * self.GUTTER, no_wrap=True)
        text.append("".join(cells), style="bold")
        return text

    def render_item(self, arrow: Arrow, width: int) -> Text:
        model = self._model
        area = max(8, width - self.GUTTER)
        label_text = None
        if arrow.kind == "post" and model is not None:
            row = model.envelope(arrow.envelope_id, channel_id=arrow.channel_id, seq=arrow.seq)
            label_text = row.text if row is not None else None
        line, (start, end) = draw_arrow(arrow, self._centres(width), area, arrow_label(arrow, label_text))
        text = Text(no_wrap=True)
        text.append(f"{self.format_at(arrow.at):<9}", style="dim")
        channel = arrow.channel_id
        if channel.startswith("ch-"):  # generated ids share "ch-00…": show the part that tells them apart
            channel = channel[3:]
        text.append(f" {channel[:5]:<5} "[: self.GUTTER - 9], style="dim cyan")
        body = Text(line, style="dim")
        if end > start:
            body.stylize(ARROW_KIND_STYLES.get(arrow.kind, ""), start, end)
        text.append_text(body)
        return text
