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
from agentnet.protocol.vocab import HUB_SENDER, TURN_TYPES
from agentnet.run.items import ITEM_CLASSES, Caption, ControlItem, FaultItem, ProcessItem, decode_item

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
        line = Text(f"{self.clock()} ", style="dim") + Text(text, style=style)
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
            if self._snapshots > 1:
                return f"observer re-synced with the hub (snapshot at event {decoded.hub.event_seq})", "dim"
            return None
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


def status_block(status: dict[str, Any]) -> RenderableType:
    """The live status: a process table, counters and expectations (from `Run.status()`)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("process", "state", "pid", "restarts", "reason"):
        table.add_column(column, no_wrap=column != "reason", overflow="ellipsis")
    for proc in status.get("processes", []):
        state = proc.get("state", "?")
        table.add_row(
            proc.get("name", "?"),
            Text(state, style=STATE_STYLES.get(state, "")),
            str(proc.get("pid") or "-"),
            str(proc.get("restarts") or 0),
            _clip(proc.get("reason") or "", 70),
        )
    c = status.get("counts", {})
    counters = Text(
        f"{status.get('phase', '?')} {status.get('clock', '')}  posted {c.get('posted', 0)}  delivered "
        f"{c.get('delivered', 0)}  acked {c.get('acked', 0)}  redelivered {c.get('redelivered', 0)}  "
        f"dead {c.get('dead_lettered', 0)}",
        style="bold",
    )
    parts: list[RenderableType] = [Text("─" * 60, style="dim"), counters, table]
    checks = status.get("expect") or []
    if checks:
        line = Text("expect ")
        for check in checks:
            line.append("✓ " if check["ok"] else "· ", style="green" if check["ok"] else "yellow")
            line.append(check["check"] + "  ")
        parts.append(line)
    return Group(*parts)


# --------------------------------------------------------------------------- summary


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The end-of-run summary: outcome, counters, channels, expectations, faults, the check."""
    outcome = summary.get("outcome", "?")
    style = {"passed": "bold green", "finished": "bold green", "stopped": "bold"}.get(outcome, "bold red")
    head = Text(f"agentnet up {summary.get('scenario')}: ", style="bold")
    head.append(outcome.upper(), style=style)
    head.append(f" in {summary.get('elapsed', 0):.1f} s (exit code {summary.get('exit_code')})")
    console.print(head, highlight=False, markup=False)
    console.print(f"  run dir     {summary.get('run_dir')}", highlight=False, markup=False)
    c = summary.get("counts", {})
    console.print(
        f"  envelopes   posted {c.get('posted', 0)} · delivered {c.get('delivered', 0)} · acked {c.get('acked', 0)}"
        f" · redelivered {c.get('redelivered', 0)} · dead-lettered {c.get('dead_lettered', 0)}"
        f" · duplicates suppressed {c.get('duplicates_suppressed', 0)}",
        highlight=False,
        markup=False,
    )
    for ch in summary.get("channels", []):
        state = ch.get("state", "?")
        why = f" ({ch['close_reason']})" if ch.get("close_reason") else ""
        others = [p for p in ch.get("participants", []) if p != ch.get("creator")]
        line = (
            f"  channel     {ch.get('alias')} [{ch.get('type')}: {ch.get('creator')} → {', '.join(others)}]: "
            f"{state}{why}, {ch.get('envelopes', 0)} envelopes"
        )
        last = ch.get("last_text")
        if last:
            line += f"; last turn {last['sender']}: {_clip(last['text'], 100)!r}"
        console.print(line, highlight=False, markup=False)
    for check in summary.get("expect", []):
        mark = Text("  ✓ " if check["ok"] else "  ✗ ", style="green" if check["ok"] else "bold red")
        detail = f" — {check['detail']}" if check.get("detail") else ""
        console.print(mark + Text(f"expect {check['check']}{detail}"), highlight=False, markup=False)
    for fault in summary.get("faults", []):
        mark = Text("  ✓ " if fault["ok"] else "  ! ", style="green" if fault["ok"] else "yellow")
        target = f" {fault['target']}" if fault.get("target") else ""
        late = f" (+{fault['late']:.2f} s late)" if fault.get("late", 0) >= 0.05 else ""
        console.print(
            mark + Text(f"fault {fault['action']}{target} at {fault['at']:g} s{late}: {fault['result']}"),
            highlight=False,
            markup=False,
        )
    check = summary.get("check")
    if check:
        mark = Text("  ✓ " if check["ok"] else "  ✗ ", style="green" if check["ok"] else "bold red")
        console.print(mark + Text(f"check: {check['headline']}"), highlight=False, markup=False)
        if not check["ok"]:
            for line in check.get("lines", [])[1:]:
                if "VIOLATION" in line:
                    console.print(Text(line, style="red"), highlight=False, markup=False)
    for problem in summary.get("problems", []):
        console.print(Text(f"  ✗ {problem}", style="bold red"), highlight=False, markup=False)
    leftover = summary.get("leftover") or []
    if leftover:
        text = f"  ! the final sweep had to kill {len(leftover)} leftover process(es): {leftover}"
        console.print(Text(text, style="yellow"))
