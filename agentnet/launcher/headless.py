"""`agentnet up --headless`: a live status and an event log in the terminal (rich), then the summary.

On a terminal, a status block (processes, counters, expectations) stays at the bottom and is
redrawn four times a second, while log lines scroll above it. Without a terminal (CI, a pipe, a
test) only the log lines are printed, one per line, so the output is a readable transcript.

Log lines show what a person watching wants: process state changes with their reasons, captions,
faults, channels opening and closing, every text turn (not the notes of a stream), connections,
replays and dead letters. Deliveries, acks and cursor moves are counted in the status, not logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentnet.protocol.events import (
    AgentConnected,
    AgentDisconnected,
    AnyEvent,
    ChannelClosed,
    ChannelOpened,
    DeadLetter,
    EnvelopeView,
    EventError,
    ObserverLagged,
    ReplayEnd,
    ReplayStart,
    Snapshot,
    WalAppend,
    decode_event,
    decode_snapshot,
)
from agentnet.protocol.vocab import HUB_SENDER, TURN_TYPES, Outcome
from agentnet.run.items import ITEM_CLASSES, Caption, ControlItem, FaultItem, ProcessItem, decode_item

from .report import RunStatus, RunSummary

OUTCOME_STYLES = {Outcome.PASSED: "bold green", Outcome.FINISHED: "bold green", Outcome.STOPPED: "bold"}
STATE_STYLES = {
    "pending": "dim",
    "starting": "yellow",
    "ready": "green",
    "paused": "magenta",
    "exited": "dim",
    "crashed": "bold red",
    "killed": "red",
    "backoff": "yellow",
}


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class HeadlessView:
    """Prints feed items as log lines; on a terminal also keeps a live status block below them.

    `clock()` gives the time prefix of a line; `alias(channel_id)` the scenario's name for a
    channel; `status()` the renderable of the status block.
    """

    def __init__(
        self,
        console: Console,
        *,
        clock: Callable[[], str],
        alias: Callable[[str], str],
        status: Callable[[], RenderableType] | None = None,
        live: bool | None = None,
    ) -> None:
        self.console = console
        self.clock = clock
        self.alias = alias
        self.status = status
        self.live_enabled = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._states: dict[str, str] = {}
        self._snapshots = 0
        self._sessions: dict[str, str | None] = {}  # agent -> the session last said connected

    def start(self) -> None:
        if self.live_enabled and self.status is not None and self._live is None:
            self._live = Live(
                console=self.console,
                get_renderable=self.status,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, text: str, style: str = "") -> None:
        line = Text(f"{self.clock():>10} ", style="dim") + Text(text, style=style)  # numbers aligned
        self.console.print(line, highlight=False, markup=False)

    def item(self, kind: str, data: dict[str, Any], decoded: Snapshot | AnyEvent | None = None) -> None:
        line = self.describe(kind, data, decoded)
        if line is not None:
            self.note(*line)

    # ------------------------------------------------------------------ what to say about an item

    def describe(
        self, kind: str, data: dict[str, Any], decoded: Snapshot | AnyEvent | None = None
    ) -> tuple[str, str] | None:
        if kind in ITEM_CLASSES:
            try:
                item = decode_item(kind, data)
            except EventError:
                return None
            match item:
                case ProcessItem():
                    return self._process(item)
                case Caption(text=text):
                    return f"» {text}", "bold cyan"
                case FaultItem(action=action, target=target):
                    return f"fault: {action}{f' {target}' if target else ''}", "bold magenta"
                case ControlItem(verb=verb, target=target, origin=origin, message=message, error=error):
                    target_text = f" {target}" if target else ""
                    return f"control {verb}{target_text} ({origin}): {message}", "red" if error else "blue"
            return None
        if kind not in ("snapshot", "event"):
            return None
        if decoded is None:
            try:
                decoded = decode_snapshot(data) if kind == "snapshot" else decode_event(data)
            except EventError:
                return None
        if isinstance(decoded, Snapshot):
            self._snapshots += 1
            unseen = [a.name for a in decoded.agents if a.connected and self._sessions.get(a.name, "?") != a.session_id]
            self._sessions = {a.name: a.session_id for a in decoded.agents if a.connected}
            if self._snapshots > 1:
                # agents that reconnected before the observer did: the hub said nothing while unobserved
                already = f"; already reconnected (replay not seen): {', '.join(unseen)}" if unseen else ""
                return f"observer re-synced with the hub (snapshot at event {decoded.hub.event_seq}){already}", "dim"
            return None
        if isinstance(decoded, AgentConnected):
            self._sessions[decoded.name] = decoded.session_id
        return self._event(decoded)

    def _process(self, item: ProcessItem) -> tuple[str, str] | None:
        name, state = item.name, item.state
        before = self._states.get(name)
        self._states[name] = state
        if state == before and state != "backoff":
            return None
        if before is None and state == "pending":
            return None
        pid = f" pid {item.pid}" if item.pid and state in ("starting", "ready", "paused") else ""
        reason = f": {item.reason}" if item.reason else ""
        return f"{name} {state}{pid}{reason}", STATE_STYLES.get(state, "")

    def _event(self, ev: AnyEvent) -> tuple[str, str] | None:
        match ev:
            case WalAppend(envelope=EnvelopeView() as env):
                if env.type not in TURN_TYPES or env.sender == HUB_SENDER:
                    return None
                arrow = f" → {', '.join(env.audience)}" if env.audience else ""
                where = f"{self.alias(env.channel_id)} #{env.seq}"
                return f"{where} {env.sender}{arrow}: {_clip(env.text or '')}", ""
            case ChannelOpened(channel=ch):
                others = [p for p in ch.participants if p != ch.creator]
                topic = f" — {ch.topic}" if ch.topic else ""
                who = f"{ch.type}: {ch.creator} → {', '.join(others)}"
                return f"channel {self.alias(ch.channel_id)} opened ({who}){topic}", "bold"
            case ChannelClosed(channel=ch):
                why = ch.close_reason or "closed"
                return f"channel {self.alias(ch.channel_id)} closed ({why}) at seq {ch.head_seq}", "bold"
            case AgentConnected(name=name):
                return f"{name} connected to the hub", "green"
            case AgentDisconnected(name=name, code=code, reason=reason):
                return f"{name} disconnected from the hub ({code}{f' {reason}' if reason else ''})", "yellow"
            case ReplayStart(recipient=recipient, count=count):
                return f"{recipient}: replaying {count} unacked envelope(s)", "cyan"
            case ReplayEnd(recipient=recipient):
                return f"{recipient}: replay done", "cyan"
            case DeadLetter(recipient=recipient, channel_id=channel_id, seq=seq, reason=reason):
                return f"DEAD LETTER {self.alias(channel_id)} #{seq} for {recipient}: {reason}", "bold red"
            case ObserverLagged(dropped=dropped):
                return f"the launcher's observer lagged: {dropped} events lost", "yellow"
        return None


# --------------------------------------------------------------------------- status block


def status_block(status: RunStatus) -> RenderableType:
    """The live status: a process table, counters and expectations (from `Run.status()`)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("process", "state", "pid", "restarts", "reason"):
        table.add_column(column, no_wrap=column != "reason", overflow="ellipsis")
    for proc in status.processes:
        table.add_row(
            proc.name,
            Text(proc.state, style=STATE_STYLES.get(proc.state, "")),
            str(proc.pid or "-"),
            str(proc.restarts),
            _clip(proc.reason, 70),
        )
    c = status.counts
    counters = Text(
        f"{status.phase} {status.clock}  posted {c.posted}  delivered {c.delivered}  acked {c.acked}  "
        f"redelivered {c.redelivered}  dead {c.dead_lettered}",
        style="bold",
    )
    parts: list[RenderableType] = [Text("─" * 60, style="dim"), counters, table]
    if status.expect:
        line = Text("expect ")
        for check in status.expect:
            line.append("✓ " if check.ok else "· ", style="green" if check.ok else "yellow")
            line.append(check.check + "  ")
        parts.append(line)
    return Group(*parts)


# --------------------------------------------------------------------------- summary


def print_summary(console: Console, summary: RunSummary) -> None:
    """The end-of-run summary: outcome, counters, channels, expectations, faults, the check."""

    def say(text: str | Text) -> None:
        console.print(text, highlight=False, markup=False)

    outcome = summary.outcome
    head = Text(f"agentnet up {summary.scenario}: ", style="bold")
    head.append(outcome.upper(), style=OUTCOME_STYLES.get(outcome, "bold red"))
    head.append(f" in {summary.elapsed:.1f} s (exit code {summary.exit_code})")
    say(head)
    say(f"  run dir     {summary.run_dir}")
    c = summary.counts
    say(
        f"  envelopes   posted {c.posted} · delivered {c.delivered} · acked {c.acked}"
        f" · redelivered {c.redelivered} · dead-lettered {c.dead_lettered}"
        f" · duplicates suppressed {c.duplicates_suppressed}"
    )
    if c.duplicates_suppressed:
        # not a subset of `redelivered`: a turn resumed after a reconnect, or a repeated post the hub
        # answered with the earlier envelope, is suppressed without any redelivery
        say(
            "              (suppressed: work an agent had already done and did not repeat — after a"
            " redelivery, a resumed turn or a repeated post)"
        )
    for ch in summary.channels:
        why = f" ({ch.close_reason})" if ch.close_reason else ""
        others = [p for p in ch.participants if p != ch.creator]
        line = (
            f"  channel     {ch.alias} [{ch.type}: {ch.creator} → {', '.join(others)}]: "
            f"{ch.state}{why}, {ch.envelopes} envelopes"
        )
        if ch.last_text is not None:
            line += f"; last turn {ch.last_text.sender}: {_clip(ch.last_text.text, 100)!r}"
        say(line)
    for check in summary.expect:
        mark = Text("  ✓ " if check.ok else "  ✗ ", style="green" if check.ok else "bold red")
        detail = f" — {check.detail}" if check.detail else ""
        say(mark + Text(f"expect {check.check}{detail}"))
    for fault in summary.faults:
        mark = Text("  ✓ " if fault.ok else "  ! ", style="green" if fault.ok else "yellow")
        target = f" {fault.target}" if fault.target else ""
        late = f" (+{fault.late:.2f} s late)" if fault.late >= 0.05 else ""
        say(mark + Text(f"fault {fault.action}{target} at {fault.at:g} s{late}: {fault.result}"))
    if summary.check is not None:
        ok = summary.check.ok
        say(
            Text("  ✓ " if ok else "  ✗ ", style="green" if ok else "bold red")
            + Text(f"check: {summary.check.headline}")
        )
        if not ok:
            for line in summary.check.lines[1:]:
                if "VIOLATION" in line:
                    say(Text(line, style="red"))
    for problem in summary.problems:
        say(Text(f"  ✗ {problem}", style="bold red"))
    if summary.leftover:
        text = f"  ! the final sweep had to kill {len(summary.leftover)} leftover process(es): {summary.leftover}"
        console.print(Text(text, style="yellow"))
