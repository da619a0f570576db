"""Modal screens: envelope inspector, help, confirmation, one-line prompt."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, Static

from agentnet.tui.entities import LogLine
from agentnet.tui.model import DashboardModel, EnvelopeRow, format_clock
from agentnet.tui.widgets.streams import MARK_STYLES


def when_text(model: DashboardModel, at: float | None) -> str:
    """One moment on the dashboard's clock with its wall time: ``t+4.52s (10:00:04.520 UTC)``."""
    return f"{model.format_at(at)} ({format_clock(at)} UTC)"


def delivery_table(row: EnvelopeRow, model: DashboardModel) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("recipient", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("history")
    for mark in row.marks.values():
        history = Text()
        for index, (at, what, detail) in enumerate(mark.history):
            if index:
                history.append(" → ", style="dim")
            history.append(f"{model.format_at(at)} ", style="dim")
            history.append(what, style=MARK_STYLES.get(what.split(" ")[0], ""))
            if detail:
                history.append(f" ({detail})", style="dim")
        if not mark.history:
            history.append("not delivered yet", style="dim")
        table.add_row(
            mark.recipient,
            Text(f"{mark.glyph} {mark.state}", style=MARK_STYLES.get(mark.state, "")),
            str(mark.attempts),
            history,
        )
    return table


class InspectorScreen(ModalScreen[None]):
    """The envelope as JSON and its delivery history per recipient. Read-only: looking never acks."""

    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "close", id="inspector.close"),
    ]

    def __init__(self, model: DashboardModel, row: EnvelopeRow) -> None:
        super().__init__()
        self.model = model
        self.row = row
        self._version = -1
        self._composed = False

    def compose(self) -> ComposeResult:
        with Vertical(id="inspector"):
            yield Label(self._title(), id="inspector-title")
            with VerticalScroll(id="inspector-body"):
                yield Static(id="inspector-deliveries")
                yield Static(id="inspector-json")
            yield Label(
                "read-only: the dashboard is an observer — inspecting never acks · esc close",
                id="inspector-hint",
            )

    def _title(self) -> str:
        row = self.row
        to = ", ".join(row.marks) or "nobody"
        if row.audience is None:
            to += " (every participant but the sender)"
        return f"envelope #{row.seq} in {row.channel_id} · {row.sender} → {to} · {row.type}"

    def on_mount(self) -> None:
        self._composed = True
        self.refresh_content()

    def _times(self) -> str:
        """The wall time behind the t of the post (and of t = 0): the panes show only t."""
        model = self.model
        zero = "the scenario's t = 0" if model.t0 is not None else "when the dashboard attached"
        return f"posted at {when_text(model, self.row.at)}; t counts from {zero} ({format_clock(model.origin)} UTC)"

    def refresh_content(self) -> None:
        """Re-render if the envelope's delivery marks changed (called on the app's tick)."""
        if self.row.version == self._version or not self._composed:
            return
        self._version = self.row.version
        self.query_one("#inspector-deliveries", Static).update(
            Group(
                Text("deliveries", style="bold underline"),
                delivery_table(self.row, self.model),
                Text(self._times(), style="dim"),
                Text(""),
            )
        )
        pretty = json.dumps(self.row.envelope.to_dict(), indent=2, ensure_ascii=False, sort_keys=False)
        self.query_one("#inspector-json", Static).update(
            Group(Text("envelope", style="bold underline"), Syntax(pretty, "json", theme="ansi_dark", word_wrap=True))
        )


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "no", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel", id="prompt.cancel")]

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ProcessLogScreen(ModalScreen[None]):
    """The tail of one process's log file (stdout and stderr), followed while it is open."""

    BINDINGS = [Binding("escape,q,l", "dismiss", "close", id="process-log.close")]
    TAIL = 200  # lines

    def __init__(self, name: str, path: Path) -> None:
        super().__init__()
        self.process_name = name
        self.path = path
        self._seen: tuple[int, float] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="process-log"):
            yield Label(f"log of {self.process_name} · {self.path}", id="process-log-title")
            with VerticalScroll(id="process-log-body"):
                yield Static(id="process-log-text")
            yield Label("follows the file · esc close", id="process-log-hint")

    def on_mount(self) -> None:
        self.refresh_log()
        self.set_interval(1.0, self.refresh_log)

    def tail(self) -> str:
        try:
            with self.path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.path}: {exc.strerror or exc})"
        lines = data.splitlines()[-self.TAIL :]
        return "\n".join(lines) if lines else "(empty so far: the process has not written anything)"

    def refresh_log(self) -> None:
        try:
            stat = self.path.stat()
            seen: tuple[int, float] | None = (stat.st_size, stat.st_mtime)
        except OSError:
            seen = None
        if seen is not None and seen == self._seen:
            return
        self._seen = seen
        self.query_one("#process-log-text", Static).update(Text(self.tail()))
        self.query_one("#process-log-body", VerticalScroll).scroll_end(animate=False)


class LogLineScreen(ModalScreen[bool]):
    """One event-log line, whole and wrapped (the pane cuts long lines with `…`). Dismissed with
    True when the user asks for the envelope the line is about."""

    BINDINGS = [
        Binding("escape,q", "dismiss(False)", "close", id="log-line.close"),
        Binding("enter,i", "envelope", "inspect envelope", id="log-line.envelope"),
    ]

    def __init__(self, line: LogLine, model: DashboardModel | None = None) -> None:
        super().__init__()
        self.line = line
        self.model = model

    def compose(self) -> ComposeResult:
        line = self.line
        with Vertical(id="log-line"):
            when = when_text(self.model, line.at) if self.model is not None else f"{format_clock(line.at)} UTC"
            yield Label(f"event log · {when} · {line.level}", id="log-line-title")
            with VerticalScroll(id="log-line-body"):
                yield Static(Text(line.text), id="log-line-text")
            more = " · enter inspect its envelope" if line.envelope_id else ""
            yield Label(f"esc close{more}", id="log-line-hint")

    def action_envelope(self) -> None:
        self.dismiss(bool(self.line.envelope_id))


class PostScreen(ModalScreen[tuple[str, list[str], str] | None]):
    """Post a message as an agent: a new consulting channel from `from` to `to`, asking `text`."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="post.cancel")]

    def __init__(self, sender: str, recipients: str, text: str, agents: Iterable[str]) -> None:
        super().__init__()
        self.defaults = (sender, recipients, text)
        self.agents = list(agents)

    def compose(self) -> ComposeResult:
        sender, recipients, text = self.defaults
        with Vertical(id="post"):
            yield Label("Post a message as an agent: it opens a consulting channel and asks.", id="post-title")
            yield Label(f"agents: {', '.join(self.agents) or '(none yet)'}", id="post-agents")
            yield Label("as (the sender)")
            yield Input(value=sender, id="post-from")
            yield Label("to (comma-separated)")
            yield Input(value=recipients, id="post-to")
            yield Label("text")
            yield Input(value=text, id="post-text")
            yield Label("enter post · tab next field · esc cancel", id="post-hint")

    def on_mount(self) -> None:
        self.query_one("#post-text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        sender = self.query_one("#post-from", Input).value.strip()
        recipients = [r.strip() for r in self.query_one("#post-to", Input).value.split(",") if r.strip()]
        text = self.query_one("#post-text", Input).value.strip()
        if not sender or not recipients or not text:
            self.notify("post needs a sender, a recipient and a text", severity="warning")
            return
        self.dismiss((sender, recipients, text))

    def action_cancel(self) -> None:
        self.dismiss(None)


CONCEPTS = """
## Reading the panes

* **Processes** — what the launcher runs (state, pid, CPU, RSS, uptime, restarts and how long ago the
  last one was; `1+2 you` is 1 automatic restart by the restart policy and 2 you asked for) and each
  agent's connection to the hub (connected, disconnected, superseded; ping).
* **Channels** — head seq is the last sequence number appended to the channel's WAL; the sparkline is
  envelopes per second over the last 30 s of event time. Select a row to focus the WAL stream and the
  sequence diagram on that channel; `(all)` shows every channel.
* **Cursors** — per recipient and channel: *deliv* is the highest seq delivered, *floor* the ack floor
  (everything up to it is acked, or skipped: a sender's own envelopes are never delivered to it, so
  a sender's deliv shows `—` or `≤floor` rather than a number below its floor), *in flight* the
  delivered-but-unacked count (and the oldest one's age), *lag* how far the floor is behind the head,
  *redeliv* redeliveries, *dead* dead letters. A cursor that is not moving is marked ⚠ and explained
  in words under the table.
* **WAL stream** — every envelope, with a delivery mark per recipient:
  `·` not delivered yet, `→` delivered, `✓` acked, `⊘` acked unhandled (the recipient said why),
  `✗` nacked, `†` dead-lettered, `↻N` redelivered N times. Follow mode keeps the newest in view;
  scrolling up pauses it and counts what is new.
  Filter with `/`: `from:alice type:text to:bob words`.
* **Event log** — connections, replays with counts, faults, nacks, dead letters, process changes and
  the scenario's captions. Enter on a line shows it whole (long lines end in `…` in the pane); enter
  again opens the envelope it is about, if any.
* **Sequence** tab — one lane per agent and one for the hub; post `─▶`, deliver `─▶`, redelivery `╌▷`,
  ack `┈▷`, nack `✗`, dead letter `†`. Enter on an arrow opens its envelope; `m` exports Mermaid.

The dashboard is an observer: it never acks, and the inspector only reads. *Playback* replays a
recording of what the dashboard saw; it has no side effects (unlike a *redelivery*, which the hub
does).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close", id="help.close")]

    def __init__(self, keys: Iterable[tuple[str, str, str]], mode_note: str) -> None:
        super().__init__()
        self.keys = list(keys)
        self.mode_note = mode_note

    def compose(self) -> ComposeResult:
        lines = [
            "# agentnet dashboard",
            "",
            f"*{self.mode_note}*",
            "",
            "## Keys",
            "",
            "| key | action | |",
            "|---|---|---|",
        ]
        for key, label, help_text in self.keys:
            lines.append(f"| `{key}` | {label} | {help_text} |")
        lines.append("")
        lines.append("All of these are also in the command palette (`ctrl+p`).")
        with VerticalScroll(id="help"):
            yield Markdown("\n".join(lines) + "\n" + CONCEPTS)
