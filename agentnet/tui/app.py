"""The Textual dashboard: live (``agentnet up`` / ``agentnet tui URL``) and playback (``agentnet replay``).

Data flow: a feed worker applies feed items to the pure :class:`DashboardModel` (in time slices, so
keys stay responsive at thousands of events per second); a steady timer (10 Hz) syncs the visible
panes from the model. Controls go out through :class:`Controls` and come back as process events in
the feed: the dashboard never assumes a control worked, it shows what the launcher reports.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, TabbedContent, TabPane

from agentnet.run.items import FeedItem
from agentnet.run.recording import RecordingReader, RecordingWriter
from agentnet.tui.controls import (
    CONTROL_SPECS,
    IRREVERSIBLE,
    SPECS_BY_VERB,
    ControlError,
    Controls,
    Poster,
    confirm_text,
)
from agentnet.tui.diagram import to_mermaid
from agentnet.tui.entities import LogLine
from agentnet.tui.hints import LOG_KEY, OTHER_KEYS, PLAYBACK_KEYS, POST_KEY, after_control
from agentnet.tui.model import DashboardModel, EnvelopeRow, WalFilter
from agentnet.tui.playback import PlaybackController
from agentnet.tui.procstats import ProcessSampler
from agentnet.tui.screens import (
    ConfirmScreen,
    HelpScreen,
    InspectorScreen,
    LogLineScreen,
    PostScreen,
    ProcessLogScreen,
    PromptScreen,
)
from agentnet.tui.widgets.bars import CaptionBar, CursorDetail, KeysFooter, PlaybackBar, StatusBar
from agentnet.tui.widgets.streams import LadderView, LogView, StreamView, WalView
from agentnet.tui.widgets.tables import ChannelTable, CursorTable, ProcessTable

INGEST_SLICE = 0.002  # seconds of feed work before yielding to the UI
TABLE_INTERVAL = 0.5  # the tables repaint at most this often (seconds); streams every tick


class ControlDone(Message):
    """A control finished: what the launcher answered (or why it failed)."""

    def __init__(self, verb: str, target: str | None, message: str, error: bool) -> None:
        super().__init__()
        self.verb = verb
        self.target = target
        self.message = message
        self.error = error


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "close filter", id="wal.filter.close")]

    def action_close(self) -> None:
        self.app.call_later(self.app.close_filter)  # type: ignore[attr-defined]


FOOTER_CONTROLS = ("kill", "pause", "restart")  # the others are in ? help and the palette (ctrl+p)


def _control_bindings() -> list[BindingType]:
    return [
        Binding(
            spec.key,
            f"control('{spec.verb}')",
            spec.label,
            id=spec.binding_id,
            tooltip=spec.help,
            show=spec.verb in FOOTER_CONTROLS,
        )
        for spec in CONTROL_SPECS
    ]


def _run_dir_of(controls: object) -> Path | None:
    """The run directory of the launcher behind `controls` (exports go there, not to the cwd)."""
    run_dir = getattr(controls, "run_dir", None)
    if run_dir is None and callable(getattr(controls, "status", None)):
        try:
            run_dir = controls.status().get("run_dir")  # type: ignore[attr-defined]
        except Exception:
            run_dir = None
    return Path(run_dir) if run_dir else None


class DashboardApp(App[str | None]):
    """The agentnet dashboard."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "agentnet"
    BINDINGS: ClassVar[list[BindingType]] = [
        # the footer shows these first: help, quit and the control target always fit
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("q", "quit", "quit", id="app.quit"),
        Binding("t", "target(1)", "target", id="process.target.next"),
        *_control_bindings(),
        Binding("w", "post", "post", id="control.post", tooltip="Post a message as an agent (creates work)"),
        Binding("l", "process_log", "log", id="process.log", tooltip="The selected process's log (stdout/stderr)"),
        Binding("f", "follow", "follow", id="stream.follow", tooltip="Follow the newest rows (or pause)"),
        Binding("slash", "filter", "filter", id="wal.filter", tooltip="Filter the WAL stream"),
        Binding("m", "export_mermaid", "Mermaid", id="sequence.export", show=False),
        Binding("1", "show_tab('overview')", "overview", id="tab.overview", show=False),
        Binding("2", "show_tab('sequence')", "sequence", id="tab.sequence", show=False),
        Binding("z", "maximize_pane", "maximize", id="pane.maximize", show=False),
        Binding("T", "target(-1)", "previous target", id="process.target.previous", show=False),
        Binding("ctrl+c", "interrupt", "stop", id="app.interrupt", show=False, priority=True),
        Binding("space", "play_pause", "play/pause", id="playback.toggle"),
        Binding("left_square_bracket", "step(-1)", "back", id="playback.back"),
        Binding("right_square_bracket", "step(1)", "step", id="playback.forward"),
        Binding("left_curly_bracket", "step(-10)", "back 10", id="playback.back10", show=False),
        Binding("right_curly_bracket", "step(10)", "step 10", id="playback.forward10", show=False),
        Binding("plus,equals_sign", "speed(1)", "faster", id="playback.faster"),
        Binding("minus", "speed(-1)", "slower", id="playback.slower"),
        Binding("j", "jump", "jump", id="playback.jump"),
    ]

    def __init__(
        self,
        feed: AsyncIterable[FeedItem] | None = None,
        controls: Controls | None = None,
        *,
        title: str = "agentnet",
        playback: PlaybackController | None = None,
        recording_path: str | Path | None = None,
        clock: Callable[[], float] | None = None,
        refresh_hz: float = 10.0,
        sample_processes: bool = False,
        read_only_reason: str | None = None,
        keymap: dict[str, str] | None = None,
        export_dir: str | Path | None = None,
        model: DashboardModel | None = None,
        quit_stops_run: bool = False,
    ) -> None:
        super().__init__()
        self.quit_stops_run = quit_stops_run
        self.feed = feed
        self.controls = controls
        self.run_title = title
        self.playback = playback
        self.recording_path = Path(recording_path) if recording_path else None
        self._clock = clock
        self.refresh_interval = 1.0 / refresh_hz
        self.sample_processes = sample_processes and playback is None
        self.keymap_overrides = keymap or {}
        self.export_dir = (
            Path(export_dir)
            if export_dir
            else (self.recording_path.parent if self.recording_path else _run_dir_of(controls) or Path.cwd())
        )
        self._model = model or DashboardModel()
        if playback is not None:
            self.mode = "playback"
            self.read_only_reason = "playback of a recording has no side effects: controls are disabled"
        elif controls is None:
            self.mode = "read-only"
            self.read_only_reason = read_only_reason or "no launcher reachable: controls are disabled"
        else:
            self.mode = "live"
            self.read_only_reason = ""
        self.selected_process: str | None = None
        self.selected_channel: str | None = None
        self.selected_cursor: tuple[str, str] | None = None
        self.feed_done = asyncio.Event()
        self.control_results: list[ControlDone] = []
        self._writer: RecordingWriter | None = None
        self._sampler = ProcessSampler() if self.sample_processes else None
        self._synced_version = -1
        self._tables_version = -1
        self._last_table_sync = 0.0
        self._last_tick = time.monotonic()

    # ------------------------------------------------------------------ model and clock

    @property
    def model(self) -> DashboardModel:
        return self.playback.model if self.playback is not None else self._model

    def now(self) -> float:
        """The present for ages and rates: the wall clock live, the model's event time otherwise."""
        if self._clock is not None:
            return max(self._clock(), self.model.clock)
        return self.model.clock

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusBar(mode=self.mode, run_name=self.run_name, recording=self.recording_path is not None, id="status")
        yield CaptionBar(description=self.run_description, id="caption")
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("Overview", id="overview"):
                yield ProcessTable(id="processes")
                with Horizontal(id="row-b"):
                    yield ChannelTable(id="channels")
                    with Vertical(id="cursor-pane"):
                        yield CursorTable(id="cursors")
                        yield CursorDetail(id="cursor-explain")
                with Horizontal(id="row-c"):
                    with Vertical(id="wal-pane"):
                        yield FilterInput(
                            placeholder="filter: from:alice type:text to:bob words — enter apply, esc close",
                            id="wal-filter",
                        )
                        yield WalView(id="wal")
                    yield LogView(id="log")
            with TabPane("Sequence", id="sequence"):
                yield LadderView(id="ladder")
        if self.playback is not None:
            yield PlaybackBar(self.playback, id="playback-bar")
        yield KeysFooter()

    @property
    def main(self) -> Screen:
        """The dashboard's own screen (queries must not land on a modal on top of it)."""
        return self.screen_stack[0]

    def on_mount(self) -> None:
        self.title = self.run_title
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)
        self.main.query_one("#processes").border_title = "processes"
        self.main.query_one("#channels").border_title = "channels"
        self.main.query_one("#cursor-pane").border_title = "cursors"
        self.main.query_one("#wal-filter").display = False
        if self.mode == "playback":
            self.screen.add_class("-playback")
        if self.recording_path is not None:
            self._writer = RecordingWriter(self.recording_path, meta={"title": self.run_title, "source": "dashboard"})
        if self.feed is not None:
            self._consume_feed()
        else:
            self.feed_done.set()
        self.set_interval(self.refresh_interval, self._on_tick)
        if self._sampler is not None:
            self.set_interval(1.0, self._sample_processes)
        self.main.query_one("#wal", WalView).focus()
        self.sync_views()

    COMPACT_BELOW = (100, 30)  # columns, rows

    def on_resize(self) -> None:
        """Below about 100x30 the panes shrink so the WAL stream and the event log stay visible."""
        width, height = self.size
        compact = width < self.COMPACT_BELOW[0] or height < self.COMPACT_BELOW[1]
        self.main.set_class(compact, "-compact")
        self.query_one(KeysFooter).set_width(width)

    def on_unmount(self) -> None:
        if self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------------ feed

    def ingest(self, item: FeedItem) -> None:
        """Apply one item to the model (and record it)."""
        self._model.apply(item)
        if self._writer is not None:
            self._writer.write_item(item)

    @work(exclusive=True, group="feed", exit_on_error=False)
    async def _consume_feed(self) -> None:
        assert self.feed is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INGEST_SLICE
        ingest = self.ingest
        try:
            async for item in self.feed:
                ingest(item)
                if loop.time() >= deadline:
                    await asyncio.sleep(0)
                    deadline = loop.time() + INGEST_SLICE
            self.ingest(("status", {"state": "ended", "at": self.model.clock or None}))
        except Exception as exc:  # a broken feed must not take the dashboard down
            self.ingest(("status", {"state": "failed", "detail": f"{type(exc).__name__}: {exc}"}))
            raise
        finally:
            self.feed_done.set()

    def _sample_processes(self) -> None:
        assert self._sampler is not None
        item = self._sampler.sample_model(self._model, time.time())
        if item is not None:
            self.ingest(("stats", item))

    # ------------------------------------------------------------------ refresh

    def _on_tick(self) -> None:
        if not self.is_running:  # shutting down: the panes are being taken apart
            return
        wall = time.monotonic()
        elapsed, self._last_tick = wall - self._last_tick, wall
        if self.playback is not None:
            self.playback.advance(elapsed)
        version = self.model.version
        since_tables = wall - self._last_table_sync
        tables_due = (version != self._tables_version and since_tables >= TABLE_INTERVAL) or since_tables >= 1.0
        if version != self._synced_version or tables_due:
            self.sync_views(tables=tables_due)

    def sync_views(self, *, tables: bool = True) -> None:
        """Bring the visible panes up to date with the model (the steady-rate refresh).

        Streams (WAL, log, diagram) follow every tick; the tables, whose repaint is dearer, at most
        every ``TABLE_INTERVAL`` (and at least once a second, for ages and uptimes).
        """
        model = self.model
        now = self.now()
        self._synced_version = model.version
        with self.batch_update():
            status = self.main.query_one("#status", StatusBar)
            status.target = self.selected_process
            status.sync(model, now)
            self.main.query_one("#caption", CaptionBar).sync(model)
            if self.playback is not None:
                self.main.query_one("#playback-bar", PlaybackBar).sync()
            if self.main.query_one("#tabs", TabbedContent).active == "sequence":
                ladder = self.main.query_one("#ladder", LadderView)
                ladder.channel_id = self.selected_channel
                ladder.sync(model)
            else:
                if tables:
                    self._tables_version = model.version
                    self._last_table_sync = time.monotonic()
                    self.main.query_one("#processes", ProcessTable).sync(model, now)
                    self.main.query_one("#channels", ChannelTable).sync(model, now)
                    self.main.query_one("#cursors", CursorTable).sync(model, now, self.selected_channel)
                    self._sync_cursor_detail(model, now)
                wal = self.main.query_one("#wal", WalView)
                wal.channel_id = self.selected_channel
                wal.sync(model)
                self.main.query_one("#log", LogView).sync(model)
            if isinstance(self.screen, InspectorScreen):
                self.screen.refresh_content()

    def _sync_cursor_detail(self, model: DashboardModel, now: float) -> None:
        self.main.query_one("#cursor-explain", CursorDetail).sync(
            model, now, self.selected_cursor, table_focused=self.main.query_one("#cursors").has_focus
        )

    @property
    def run_name(self) -> str:
        """The title without the scenario's description (that goes to the caption line)."""
        return self.run_title.split(" — ", 1)[0]

    @property
    def run_description(self) -> str:
        parts = self.run_title.split(" — ", 1)
        return parts[1] if len(parts) > 1 else ""

    # ------------------------------------------------------------------ selection

    @on(DataTable.RowHighlighted, "#processes")
    def _process_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected_process = event.row_key.value

    @on(DataTable.RowHighlighted, "#channels")
    def _channel_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        channel = None if key == ChannelTable.ALL else key
        if channel != self.selected_channel:
            self.selected_channel = channel
            self.sync_views()

    @on(DataTable.RowHighlighted, "#cursors")
    def _cursor_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected_cursor = CursorTable.parse_key(event.row_key.value)
        self._sync_cursor_detail(self.model, self.now())

    @on(TabbedContent.TabActivated)
    def _tab_activated(self) -> None:
        self.sync_views()

    # ------------------------------------------------------------------ actions: controls

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "control":
            # playback: hidden (the footer shows playback keys); read-only: shown disabled
            return None if self.mode == "read-only" else self.mode == "live"
        if action == "process_log":
            return self.mode != "playback"
        if action == "post":
            return None if self.mode == "read-only" else self.mode == "live"
        if action in ("play_pause", "step", "speed", "jump"):
            return self.mode == "playback"
        return True

    def action_target(self, step: int) -> None:
        """Move the processes pane's cursor: the control keys act on the process it highlights."""
        table = self.main.query_one("#processes", DataTable)
        if not table.row_count:
            return
        table.move_cursor(row=(table.cursor_row + step) % table.row_count)
        self.selected_process = table.selected_key
        self.notify(f"control target: {self.selected_process}", timeout=2)

    def action_control(self, verb: str) -> None:
        if self.controls is None:
            self.notify(f"Controls are disabled: {self.read_only_reason}.", severity="warning", timeout=4)
            return
        spec = SPECS_BY_VERB[verb]
        target = self.selected_process if spec.needs_target else None
        if spec.needs_target:
            if not target:
                self.notify("Select a process in the processes pane first.", severity="warning")
                return
            proc = self.model.processes.get(target)
            if verb == "pause" and proc is not None and proc.state == "paused":
                verb = "resume"
            is_hub = (proc is not None and proc.role == "hub") or (proc is None and target == "hub")
            if verb == "disconnect" and is_hub:
                self.notify("disconnect drops an agent's connection; select an agent.", severity="warning")
                return
        if verb in IRREVERSIBLE:

            def confirmed(answer: bool | None) -> None:
                if answer:
                    self.run_control(verb, target)

            self.push_screen(ConfirmScreen(confirm_text(verb, target)), confirmed)
        else:
            self.run_control(verb, target)

    def action_process_log(self) -> None:
        """l: the selected process's log, from the run directory (logs/NAME.log)."""
        run_dir = _run_dir_of(self.controls)
        name = self.selected_process
        if run_dir is None:
            self.notify("No run directory: process logs are kept by `agentnet up` (attach with --run DIR).", timeout=4)
            return
        if not name:
            self.notify("Pick a process first (t).", severity="warning")
            return
        if name not in self.model.processes:
            # an identity with no process of its own (a gateway's, inside the hub): the hub's log has it
            hub = next((p.name for p in self.model.processes.values() if p.role == "hub"), None)
            if hub is None:
                self.notify(f"{name} has no process of its own, so no log.", severity="warning", timeout=4)
                return
            self.notify(f"{name} has no process of its own (the hub serves it): showing {hub}'s log", timeout=4)
            name = hub
        self.push_screen(ProcessLogScreen(name, run_dir / "logs" / f"{name}.log"))

    def action_post(self) -> None:
        """Post a message as an agent through the launcher (a new consulting channel)."""
        if not isinstance(self.controls, Poster):
            self.notify(
                f"Posting is disabled: {self.read_only_reason or 'this launcher cannot post'}.",
                severity="warning",
                timeout=4,
            )
            return
        agents = [p.name for p in self.model.processes.values() if p.role == "agent"] or sorted(self.model.agents)
        # an AutoGen worker takes RPCs and events through the gateway, never a channel's posts
        agents = [a for a in agents if (info := self.model.agents.get(a)) is None or info.via != "autogen"]
        if not agents:
            self.notify(
                "No agent here reads channel posts: AutoGen workers take RPCs and events through the gateway "
                "(send them from a worker).",
                severity="warning",
                timeout=5,
            )
            return
        target = self.selected_process if self.selected_process in agents else agents[-1]
        sender = next((a for a in agents if a != target), target)

        def posted(answer: tuple[str, list[str], str] | None) -> None:
            if answer:
                self.run_post(*answer)

        self.push_screen(PostScreen(sender, target, "What is 6 times 7?", agents), posted)

    @work(group="controls", exit_on_error=False)
    async def run_post(self, sender: str, recipients: list[str], text: str) -> None:
        assert isinstance(self.controls, Poster)
        try:
            message = await self.controls.post(sender, recipients, text)
            error = False
        except ControlError as exc:
            message, error = str(exc), True
        except Exception as exc:
            message, error = f"{type(exc).__name__}: {exc}", True
        self.post_message(ControlDone("post", f"{sender} → {', '.join(recipients)}", message, error))

    @work(group="controls", exit_on_error=False)
    async def run_control(self, verb: str, target: str | None) -> None:
        assert self.controls is not None
        try:
            message = await self.controls.act(verb, target)
            error = False
        except ControlError as exc:
            message, error = str(exc), True
        except Exception as exc:
            message, error = f"{type(exc).__name__}: {exc}", True
        self.post_message(ControlDone(verb, target, message, error))

    def on_control_done(self, event: ControlDone) -> None:
        self.control_results.append(event)
        label = f"{event.verb} {event.target}" if event.target else event.verb
        self.notify(f"{label}: {event.message}", severity="error" if event.error else "information", timeout=4)
        if self.playback is None:
            self.ingest(
                (
                    "control",
                    {
                        "at": self.now(),
                        "verb": event.verb,
                        "target": event.target,
                        "message": event.message,
                        "error": event.error,
                    },
                )
            )
            hint = after_control(event.verb, event.target, event.error)
            if hint:
                self.ingest(("caption", {"kind": "caption", "at": self.now(), "text": hint}))

    # ------------------------------------------------------------------ actions: quitting

    def running_processes(self) -> list[str]:
        return [p.name for p in self.model.processes.values() if p.state in ("starting", "ready", "paused", "backoff")]

    async def action_quit(self) -> None:
        """q: quit; under `agentnet up` (which stops the run with the dashboard) ask first while processes run."""
        running = self.running_processes() if self.quit_stops_run and self.mode == "live" else []
        if not running:
            self.exit()
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.exit()

        names = ", ".join(running[:6]) + (" ..." if len(running) > 6 else "")
        self.push_screen(
            ConfirmScreen(f"Quit and stop the run? The launcher stops {names}, then prints the summary."), confirmed
        )

    def action_interrupt(self) -> None:
        """Ctrl-C: stop now, gracefully (the launcher's summary follows); no questions asked."""
        self.exit("interrupt")

    # ------------------------------------------------------------------ actions: views

    def _focused_stream(self) -> StreamView:
        focused = self.focused
        if isinstance(focused, StreamView):
            return focused
        if self.main.query_one("#tabs", TabbedContent).active == "sequence":
            return self.main.query_one("#ladder", LadderView)
        return self.main.query_one("#wal", WalView)

    def action_follow(self) -> None:
        self._focused_stream().action_toggle_follow()

    def action_filter(self) -> None:
        self.main.query_one("#tabs", TabbedContent).active = "overview"
        box = self.main.query_one("#wal-filter", FilterInput)
        box.value = self.main.query_one("#wal", WalView).wal_filter.describe()
        box.display = True
        box.focus()

    @on(Input.Submitted, "#wal-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        wal = self.main.query_one("#wal", WalView)
        wal.wal_filter = WalFilter.parse(event.value)
        self.close_filter()
        self.sync_views()

    def close_filter(self) -> None:
        self.main.query_one("#wal-filter", FilterInput).display = False
        self.main.query_one("#wal", WalView).focus()

    def action_show_tab(self, tab: str) -> None:
        self.main.query_one("#tabs", TabbedContent).active = tab
        self.main.query_one("#ladder" if tab == "sequence" else "#wal", StreamView).focus()
        self.sync_views()

    def action_maximize_pane(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        elif self.focused is not None:
            # the pane itself: with container=True Textual would maximize the whole tabbed area
            self.screen.maximize(self.focused, container=False)

    def action_export_mermaid(self) -> Path | None:
        channel = self.selected_channel
        path = self.export_dir / f"sequence-{channel or 'all'}.mmd"
        try:
            path.write_text(to_mermaid(self.model, channel), encoding="utf-8")
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc}", severity="error")
            return None
        self.notify(f"sequence diagram written to {path}", timeout=4)
        return path

    def on_stream_view_inspect(self, event: StreamView.Inspect) -> None:
        item = event.item
        if isinstance(item, LogLine):  # the whole line first; enter there opens its envelope

            def then(envelope: bool | None) -> None:
                if envelope:
                    self._inspect(item)

            self.push_screen(LogLineScreen(item, self.model), then)
            return
        self._inspect(item)

    def _inspect(self, item: object) -> None:
        if isinstance(item, EnvelopeRow):
            row: EnvelopeRow | None = item
        else:
            row = self.model.envelope(
                getattr(item, "envelope_id", None),
                channel_id=getattr(item, "channel_id", None),
                seq=getattr(item, "seq", None),
            )
        if row is None:
            if getattr(item, "envelope_id", None) or getattr(item, "seq", None):
                self.notify("That envelope has left the dashboard's buffer.", severity="warning")
            return
        self.push_screen(InspectorScreen(self.model, row))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_keys(), self._mode_note()))

    def help_keys(self) -> list[tuple[str, str, str]]:
        keys: list[tuple[str, str, str]] = []
        if self.mode != "playback":
            keys += [
                (spec.key, spec.label, spec.help + (" — asks first" if spec.irreversible else ""))
                for spec in CONTROL_SPECS
            ]
            keys += [POST_KEY, LOG_KEY]
        else:
            keys += list(PLAYBACK_KEYS)
        return keys + list(OTHER_KEYS)

    def _mode_note(self) -> str:
        if self.mode == "live":
            return "LIVE: controls go to the launcher; only kill, restart hub and restart all ask first."
        if self.mode == "read-only":
            return f"READ-ONLY: {self.read_only_reason}."
        return "PLAYBACK: a recording, replayed with no side effects; controls are disabled."

    # ------------------------------------------------------------------ actions: playback

    def action_play_pause(self) -> None:
        assert self.playback is not None
        self.playback.toggle()
        self._last_tick = time.monotonic()
        self.sync_views()

    def action_step(self, count: int) -> None:
        assert self.playback is not None
        self.playback.playing = False
        self.playback.step(count)
        self.sync_views()

    def action_speed(self, direction: int) -> None:
        assert self.playback is not None
        speed = self.playback.faster() if direction > 0 else self.playback.slower()
        self.notify(f"speed {speed:g}x", timeout=1.5)
        self.sync_views()

    def action_jump(self) -> None:
        def jump(query: str | None) -> None:
            if not query or self.playback is None:
                return
            self.playback.playing = False
            try:
                done = self.playback.jump(query, self.selected_channel)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"jumped to {done}", timeout=2)
            self.sync_views()

        hint = "42 (seq) · #120 (item) · t+12.5s (scenario t) · 10:00:03 (UTC)"
        self.push_screen(PromptScreen("Jump to…", hint), jump)

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.mode != "playback":
            for spec in CONTROL_SPECS:
                target = "" if not spec.needs_target else f" {self.selected_process or '(select a process)'}"
                yield SystemCommand(
                    f"Control: {spec.label}{target} ({spec.key})",
                    spec.help,
                    lambda verb=spec.verb: self.action_control(verb),
                )
        else:
            yield SystemCommand("Playback: play / pause (space)", "Play the recording", self.action_play_pause)
            yield SystemCommand("Playback: step forward (])", "Apply the next item", lambda: self.action_step(1))
            yield SystemCommand("Playback: step back ([)", "Go back one item", lambda: self.action_step(-1))
            yield SystemCommand("Playback: jump (j)", "Jump to a seq, item or time", self.action_jump)
        yield SystemCommand(
            "View: overview (1)", "Processes, channels, cursors, WAL, log", lambda: self.action_show_tab("overview")
        )
        yield SystemCommand("View: sequence diagram (2)", "Lanes and arrows", lambda: self.action_show_tab("sequence"))
        yield SystemCommand("WAL: filter (/)", "Filter by text, sender (from:) or type (type:)", self.action_filter)
        yield SystemCommand("Stream: follow / pause (f)", "Follow the newest rows", self.action_follow)
        yield SystemCommand(
            "Export: sequence diagram as Mermaid (m)",
            f"Write the {'selected channel' if self.selected_channel else 'whole run'} to {self.export_dir}",
            self.action_export_mermaid,
        )
        yield SystemCommand("Help: keys and concepts (?)", "What every pane shows", self.action_help)


# ---------------------------------------------------------------------------------------- entry points


@contextmanager
def relaxed_gc(gen0: int = 50_000) -> Iterator[None]:
    """Collect cyclic garbage less often while the dashboard runs.

    The model keeps ~10^5 long-lived objects in its ring buffers and allocates a few per event; with
    the default threshold (700) the collector rescans them constantly, which cuts the event rate
    several times over and shows as pauses. The model makes no reference cycles, so its garbage is
    freed by reference counting anyway. The previous thresholds are restored on exit.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(gen0, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


async def run_dashboard(
    feed: AsyncIterable[FeedItem],
    controls: Controls | None,
    *,
    title: str = "agentnet",
    recording_path: str | Path | None = None,
    keymap: dict[str, str] | None = None,
    read_only_reason: str | None = None,
    sample_processes: bool = True,
    quit_stops_run: bool = False,
    scenario_t0: float | None = None,
) -> str | None:
    """Run the live dashboard until the user quits. ``controls=None`` makes it read-only.

    ``scenario_t0``: the scenario's t = 0 (wall time) when known before its caption arrives (a
    dashboard attached to a running `up`), so its clock matches the launcher's.

    Returns "interrupt" when the user pressed Ctrl-C (the caller stops the run as after a SIGINT).

    ``recording_path``: also record every item the dashboard consumes (and its process samples and
    control results) there, for ``agentnet replay``.
    """
    model = DashboardModel()
    model.t0 = scenario_t0
    app = DashboardApp(
        feed,
        controls,
        title=title,
        model=model,
        recording_path=recording_path,
        clock=time.time,
        sample_processes=sample_processes,
        keymap=keymap,
        read_only_reason=read_only_reason,
        quit_stops_run=quit_stops_run,
    )
    with relaxed_gc():
        return await app.run_async()


def playback_app(recording_path: str | Path, *, title: str | None = None, start: str = "begin") -> DashboardApp:
    path = Path(recording_path)
    controller = PlaybackController(RecordingReader(path))
    if start == "end":
        controller.seek(len(controller))
    return DashboardApp(None, None, title=title or f"replay {path.name}", playback=controller, export_dir=path.parent)


async def run_playback(recording_path: str | Path, *, title: str | None = None, start: str = "begin") -> None:
    """Open a recording in the dashboard, in playback mode (``agentnet replay RECORDING``)."""
    app = playback_app(recording_path, title=title, start=start)
    with relaxed_gc():
        await app.run_async()


__all__ = ["ControlDone", "DashboardApp", "playback_app", "relaxed_gc", "run_dashboard", "run_playback"]
