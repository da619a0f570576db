"""`agentnet up FILE`: run a scenario from start to summary.

    load + preflight  the scenario is validated once (`load_scenario`) and the hub's port checked;
                      any problem is one line and exit code 2, before anything starts
    run directory     .agentnet/runs/<scenario>-<timestamp>/: the hub's store, keys.yaml (auth),
                      logs/<process>.log, agents/<name>/processed.jsonl, recording.jsonl,
                      control.sock, run.json, summary.json
    start             the hub (ready when /healthz answers), the launcher's own hub connection
                      (role supervisor: it observes, and acts for agents in the script), then the
                      agents in dependency order (ready when the hub reports them registered)
    run               t = 0 when every agent is ready; script steps and faults fire at their `at`;
                      `expect` is evaluated continuously until it holds or `within` runs out
    stop              agents (SIGTERM, SIGKILL after a grace period), the launcher's connection,
                      the hub, then a sweep for anything left; then `agentnet check` on the run
                      directory and the summary. Exit code 0 only if `expect` and the check hold.

Signals, as in uvicorn: the first Ctrl-C (or SIGTERM, SIGHUP) stops gracefully, a second one
SIGKILLs every child at once.

Everything the launcher sees (hub snapshot and events, process events, captions, faults, controls)
goes to one `publish` that feeds the headless view or the dashboard, and the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from agentnet.agents.brains.templating import render
from agentnet.protocol import redact
from agentnet.protocol.events import (
    Ack,
    AgentConnected,
    AgentDisconnected,
    AgentRegistered,
    AnyEvent,
    ChannelClosed,
    ChannelOpened,
    ChannelView,
    CursorMoved,
    CursorView,
    DeadLetter,
    Deliver,
    EnvelopeView,
    EventError,
    ObserverLagged,
    Snapshot,
    WalAppend,
    decode_channel,
    decode_event,
    decode_snapshot,
    recipients_of,
)
from agentnet.protocol.ids import utc_iso
from agentnet.protocol.vocab import TURN_TYPES
from agentnet.run.control import RUNS_DIR, ControlError, Controls
from agentnet.run.feed import QueueFeed
from agentnet.run.items import ControlItem, decode_item
from agentnet.run.recording import RecordingWriter

from . import checker
from .control import ControlServer, LauncherControls
from .headless import HeadlessView, print_summary, status_block
from .scenario import LiveSpec, OpenStep, PostStep, Scenario, ScenarioError, StreamStep, load_scenario
from .supervisor import ProcessSpec, RestartPolicy, Supervisor, SupervisorError
from .yamlsource import YamlSourceError, load_yaml

log = logging.getLogger("agentnet.launcher")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
HUB_READY_TIMEOUT = 15.0
AGENTS_READY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 3.0  # after success: wait this long for in-flight deliveries to be acked before stopping
LAUNCHER_NAME = "launcher"
DASHBOARD_NAME = "dashboard"
HUB_POLICY = RestartPolicy("on-failure", initial=0.5, max=5.0, factor=2.0, jitter=0.2, max_restarts=3)
TRANSIENT = ("disconnected", "unavailable", "timeout", "overloaded")


class DashboardOpener(Protocol):
    """Runs a dashboard over `feed` until the user quits; `controls` act on this run."""

    async def __call__(
        self, feed: QueueFeed, controls: Controls, *, title: str, recording_path: Path | None
    ) -> str | None:
        """Returns "interrupt" if the user pressed Ctrl-C in it (the run stops as after a SIGINT)."""
        ...


class ConfigError(Exception):
    """A problem found before anything started: one line, exit code 2."""


@dataclass
class UpOptions:
    path: Path
    headless: bool = False
    timeout: float | None = None  # overrides expect.within; without expect: run this long
    runs_root: Path = RUNS_DIR
    run_dir: Path | None = None  # exact run directory (tests); default runs_root/<name>-<timestamp>
    stop_timeout: float = 5.0
    console: Console | None = None
    dashboard: DashboardOpener | None = None  # injected by the cli (agentnet.tui.app.run_dashboard); None: headless
    tty_check: bool = True  # headless when stdin/stdout are not a terminal (tests that inject a dashboard: False)


# --------------------------------------------------------------------------- preflight


def load_and_check(path: Path) -> Scenario:
    """Load the scenario and check what must hold before starting; ConfigError (one line) if not."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        more = f" (and {len(exc.more)} more: agentnet validate {path})" if exc.more else ""
        raise ConfigError(f"{exc}{more}") from None
    port = scenario.hub.port
    if port:
        problem = port_problem(port)
        if problem:
            raise ConfigError(f"{path}:{_line_of(path, ('hub', 'port'))}: hub.port: {problem}")
    if importlib.util.find_spec("agentnet.agents.cli") is None:
        raise ConfigError("the 'agentnet agent' command is not installed (agentnet.agents.cli is missing)")
    return scenario


def port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why the hub could not listen on `port` (None if it can), checked the way the hub binds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1)
    except OSError as exc:
        if exc.errno in (98, 48):  # EADDRINUSE on Linux / macOS
            return f"port {port} on {host} is already in use (stop what uses it, or set port: 0 for a free one)"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    finally:
        sock.close()
    return None


def _line_of(path: Path, key: tuple[str, ...]) -> int:
    try:
        return load_yaml(path).line_of(key)
    except YamlSourceError:
        return 1


def new_run_dir(root: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a run directory under {root}")


# --------------------------------------------------------------------------- what the hub tells us


HubItem = Snapshot | AnyEvent


class RunModel:
    """The launcher's view of the hub, from its observer feed: enough for expect, status, summary."""

    def __init__(self) -> None:
        self.channels: dict[str, ChannelView] = {}
        self.heads: dict[str, int] = {}
        self.cursors: dict[tuple[str, str], CursorView | CursorMoved] = {}
        self.texts: dict[str, list[tuple[int, str, str]]] = {}  # channel_id -> [(seq, sender, text)]
        self.counts = {"posted": 0, "delivered": 0, "acked": 0, "redelivered": 0, "dead_lettered": 0}
        self.acked: set[tuple[str, str, int]] = set()
        self.addressed: dict[tuple[str, str], int] = {}  # (recipient, channel_id) -> highest seq addressed
        self.connected: dict[str, bool] = {}
        self.snapshots = 0
        self.lost_events = 0
        self.bad_events = 0
        self.last_event_seq: int | None = None

    def apply(self, kind: str, data: dict[str, Any], decoded: HubItem | None = None) -> HubItem | None:
        """Apply a feed item; returns the snapshot or event it decoded (None for launcher items)."""
        if decoded is None:
            decoded = self.decode(kind, data)
        if isinstance(decoded, Snapshot):
            self.apply_snapshot(decoded)
        elif decoded is not None:
            self.apply_event(decoded)
        return decoded

    def decode(self, kind: str, data: dict[str, Any]) -> HubItem | None:
        try:
            if kind == "snapshot":
                return decode_snapshot(data)
            if kind == "event":
                return decode_event(data)
        except EventError:
            self.bad_events += 1
        return None

    def apply_snapshot(self, snap: Snapshot) -> None:
        self.snapshots += 1
        self.last_event_seq = snap.hub.event_seq
        for ch in snap.channels:
            self.channel(ch)
        for agent in snap.agents:
            self.connected[agent.name] = agent.connected
        for cur in snap.cursors:
            self.cursors[(cur.recipient, cur.channel_id)] = cur

    def apply_event(self, ev: AnyEvent) -> None:
        seq = ev.event_seq
        if seq is not None and self.last_event_seq is not None and seq > self.last_event_seq + 1:
            self.lost_events += seq - self.last_event_seq - 1
        if seq is not None:
            self.last_event_seq = seq
        c = self.counts
        match ev:
            case WalAppend(envelope=EnvelopeView() as env):
                ch = env.channel_id
                c["posted"] += 1
                self.heads[ch] = max(self.heads.get(ch, 0), env.seq)
                known = self.channels.get(ch)
                for recipient in recipients_of(env, known.participants if known else ()):
                    self.addressed[(recipient, ch)] = max(self.addressed.get((recipient, ch), 0), env.seq)
                text = env.text
                if env.type in TURN_TYPES and text is not None:
                    self.texts.setdefault(ch, []).append((env.seq, env.sender, text))
            case Deliver(attempt=attempt):
                c["delivered"] += 1
                if attempt > 1:
                    c["redelivered"] += 1
            case Ack(recipient=recipient, channel_id=channel_id, seq=seq):
                c["acked"] += 1
                self.acked.add((recipient, channel_id, seq))
            case DeadLetter():
                c["dead_lettered"] += 1
            case ChannelOpened(channel=channel) | ChannelClosed(channel=channel):
                self.channel(channel)
            case CursorMoved(recipient=recipient, channel_id=channel_id):
                self.cursors[(recipient, channel_id)] = ev
            case AgentConnected(name=name):
                self.connected[name] = True
            case AgentDisconnected(name=name):
                self.connected[name] = False
            case ObserverLagged(dropped=dropped):
                self.lost_events += dropped

    def channel(self, info: ChannelView) -> None:
        if info.channel_id:
            self.channels[info.channel_id] = info
            self.heads[info.channel_id] = max(self.heads.get(info.channel_id, 0), info.head_seq)

    def channel_state(self, channel_id: str | None) -> str | None:
        info = self.channels.get(channel_id or "")
        return info.state if info is not None else None

    def settled(self) -> bool:
        """Every recipient has acked (or dead-lettered) everything addressed to it, nothing in flight."""
        if not self.addressed:
            return False
        for key, last in self.addressed.items():
            cur = self.cursors.get(key)
            if cur is None or cur.ack_floor < last or cur.inflight:
                return False
        return True

    def lagging(self) -> list[str]:
        out = []
        for (recipient, ch), last in self.addressed.items():
            cur = self.cursors.get((recipient, ch))
            floor = cur.ack_floor if cur is not None else 0
            if floor < last or (cur is not None and cur.inflight):
                out.append(f"{recipient} at {floor}/{last}")
        return out


class StoreCounts:
    """Exact counts from the hub's SQLite store, read-only beside the running hub (WAL mode).

    `expected` (envelope x recipient pairs) is kept up to date incrementally, by rowid."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._rowid = 0
        self._participants: dict[str, tuple[str, ...]] = {}
        self.expected = 0

    url: str | None = None  # a PostgreSQL store instead of the sqlite file (read with `_read_pg`)

    def _read_pg(self) -> dict[str, int] | None:
        import psycopg

        assert self.url is not None
        try:
            with psycopg.connect(self.url, connect_timeout=1, autocommit=True) as db:
                receipts = dict(db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall())
                posted = db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
                redelivered = db.execute("SELECT COALESCE(SUM(redelivered), 0) FROM cursors").fetchone()[0]
                expected = db.execute(
                    "SELECT COALESCE(SUM(CASE WHEN e.audience IS NOT NULL THEN json_array_length(e.audience::json)"
                    " ELSE json_array_length(c.participants::json)"
                    " - CASE WHEN c.participants::jsonb ? e.sender THEN 1 ELSE 0 END END), 0)"
                    " FROM envelopes e JOIN channels c ON c.channel_id = e.channel_id"
                ).fetchone()[0]
        except psycopg.Error:
            return None
        return {
            "posted": posted,
            "acked": receipts.get("acked", 0),
            "dead_lettered": receipts.get("dead", 0),
            "redelivered": int(redelivered),
            "expected": int(expected),
        }

    def read(self) -> dict[str, int] | None:
        if self.url is not None:
            return self._read_pg()
        if self.path is None or not self.path.exists():
            return None
        try:
            if self._db is None:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)
            db = self._db
            receipts = dict(db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall())
            posted = db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
            redelivered = db.execute("SELECT COALESCE(SUM(redelivered), 0) FROM cursors").fetchone()[0]
            rows = db.execute(
                "SELECT rowid, channel_id, sender, audience FROM envelopes WHERE rowid > ? ORDER BY rowid",
                (self._rowid,),
            ).fetchall()
            for rowid, channel_id, sender, audience in rows:
                if audience is not None:
                    self.expected += len(json.loads(audience))
                else:
                    if channel_id not in self._participants:
                        row = db.execute("SELECT participants FROM channels WHERE channel_id=?", (channel_id,))
                        found = row.fetchone()
                        self._participants[channel_id] = tuple(json.loads(found[0])) if found else ()
                    self.expected += sum(1 for p in self._participants[channel_id] if p != sender)
                self._rowid = rowid
        except (sqlite3.Error, ValueError):
            self.close()
            return None
        return {
            "posted": posted,
            "acked": receipts.get("acked", 0),
            "dead_lettered": receipts.get("dead", 0),
            "redelivered": redelivered,
            "expected": self.expected,
        }

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


# --------------------------------------------------------------------------- the run


@dataclass
class FaultResult:
    at: float
    action: str
    target: str | None
    late: float = 0.0
    result: str = "pending"
    ok: bool = False


@dataclass
class Check:
    check: str
    ok: bool
    detail: str = ""


class Run:
    """One `agentnet up`: owns the run directory, the supervisor, the hub connection and the timeline."""

    def __init__(self, scenario: Scenario, opts: UpOptions, console: Console) -> None:
        self.scenario, self.opts, self.console = scenario, opts, console
        s = scenario
        if opts.run_dir is not None:
            opts.run_dir.mkdir(parents=True, exist_ok=True)
            self.run_dir = opts.run_dir
        else:
            self.run_dir = new_run_dir(opts.runs_root, s.name)
        self.run_id = f"{self.run_dir.name}-{os.getpid()}"
        self.store_path = s.store_path(self.run_dir)
        self.supervisor = Supervisor(run_id=self.run_id, on_event=self._on_process, stop_timeout=opts.stop_timeout)
        self.model = RunModel()
        self.store_counts = StoreCounts(self.store_path)
        self.controls = LauncherControls(
            self.supervisor,
            disconnect=self._disconnect,
            restart_hub=self._restart_hub,
            resolve=self._resolve,
            status=self.status,
            on_action=self._on_control,
            post=self._post_question,
        )
        self.control_server = ControlServer(self.controls, self.run_dir)
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.dashboard_feed: QueueFeed | None = None
        self.recorder: RecordingWriter | None = None
        self.view: HeadlessView | None = None
        self.observer: Any = None
        self.hub_port: int | None = s.hub.port or None
        # Hub replicas (postgresql): "hub" first, then hub-2, hub-3, ...; each keeps its port across restarts.
        self.hub_names = ["hub"] + [f"hub-{i}" for i in range(2, s.hub.replicas + 1)]
        self.hub_ports: dict[str, int] = {}
        self.active_hub: str | None = None  # which replica leads (postgresql), as /healthz says
        self._term: int | None = None  # its leadership term
        self.pg: Any = None  # the throwaway PostgreSQL of `store: postgresql`
        self.store_url: str | None = (
            s.hub.store if s.hub.store.startswith("postgres") and "://" in s.hub.store else None
        )
        self.store_counts.url = self.store_url  # exact counts from PostgreSQL too (set again if started here)
        self.autogen_port: int | None = None  # with gateways: [autogen], kept across hub restarts
        self.tokens: dict[str, str] = {}
        self.aliases: dict[str, str] = {}  # alias -> channel_id
        self.alias_of: dict[str, str] = {}  # channel_id -> alias
        self.alias_ready: dict[str, asyncio.Event] = {}
        self.faults = [FaultResult(f.at, f.action, f.target) for f in s.faults]
        self.problems: list[str] = []
        self.checks: list[Check] = []
        self.phase = "starting"
        self.launched = time.monotonic()
        self.t0: float | None = None
        self.deadline: float | None = None
        self.timeline: list[asyncio.Task] = []
        self.tasks: list[asyncio.Task] = []
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.exit_signal: int | None = None
        self.expect_met_at: float | None = None
        self._store_cache: tuple[float, dict[str, int] | None] = (0.0, None)

    # ------------------------------------------------------------------ feed

    def publish(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        decoded: HubItem | None = None,
        dashboard: bool = True,
        view: bool = True,
    ) -> None:
        decoded = self.model.apply(kind, data, decoded)
        if self.recorder is not None:
            try:
                self.recorder.write(kind, data)
            except Exception:
                log.exception("recording failed; recording stops")
                self.recorder = None
        if view and self.view is not None:
            self.view.item(kind, data, decoded)
        if dashboard and self.dashboard_feed is not None:
            self.dashboard_feed.put_nowait(kind, data)
        for listener in self.listeners:
            listener(kind, data)

    def caption(self, text: str) -> None:
        self.publish("caption", {"kind": "caption", "at": utc_iso(), "text": text})

    def _on_process(self, event: dict[str, Any]) -> None:
        self.publish("process", event)

    def _on_control(self, action: dict[str, Any]) -> None:
        item = decode_item("control", action)
        assert isinstance(item, ControlItem)
        if item.source == "fault":
            return  # faults have their own items
        self.publish("control", action, dashboard=item.origin != "dashboard")

    def clock(self) -> str:
        now = time.monotonic()
        if self.t0 is None:
            return f"boot+{now - self.launched:5.2f}"
        return f"t={now - self.t0:7.2f}"

    def alias(self, channel_id: str) -> str:
        return self.alias_of.get(channel_id, channel_id)

    def _resolve(self, name: str) -> tuple[str, ...]:
        return self.scenario.resolve(name) or (name,)

    # ------------------------------------------------------------------ status (ctl status, live view)

    def counts(self) -> dict[str, int]:
        out = dict(self.model.counts)
        now = time.monotonic()
        if now - self._store_cache[0] > 0.5:
            self._store_cache = (now, self.store_counts.read())
        exact = self._store_cache[1]
        if exact:
            out.update(exact)
        return out

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "scenario": self.scenario.name,
            "run_dir": str(self.run_dir),
            "hub_url": self.hub_url if self.hub_port else None,
            "phase": self.phase,
            "clock": self.clock(),
            "elapsed": round(now - self.launched, 3),
            "t": round(now - self.t0, 3) if self.t0 is not None else None,
            "processes": self.supervisor.status(),
            "connected": dict(self.model.connected),
            "counts": self.counts(),
            "expect": [check.__dict__ for check in self.checks],
            "channels": {alias: self.model.channel_state(cid) for alias, cid in self.aliases.items()},
            "launcher_pid": os.getpid(),
        }

    # ------------------------------------------------------------------ processes

    @property
    def hub_url(self) -> str:
        """The hub's URL; with replicas, every replica's, comma-separated (clients find the active one)."""
        if len(self.hub_names) == 1:
            return f"ws://127.0.0.1:{self.hub_port}/v1"
        ports = [self.hub_port if n == "hub" else self.hub_ports.get(n) for n in self.hub_names]
        return ",".join(f"ws://127.0.0.1:{port}/v1" for port in ports if port)

    def _store_arg(self) -> str:
        if self.scenario.hub.store_kind == "postgresql":
            assert self.store_url is not None, "the PostgreSQL store is not started"
            return self.store_url
        return "memory" if self.store_path is None else f"sqlite:{self.store_path}"

    def _declare_hub(self, name: str) -> None:
        s, run = self.scenario, self.run_dir
        port_file = run / ("hub.port" if name == "hub" else f"{name}.port")

        def hub_command() -> list[str]:
            port = self.hub_port if name == "hub" else self.hub_ports.get(name)
            argv = [
                sys.executable, "-m", "agentnet.cli", "hub",
                "--host", "127.0.0.1", "--port", str(port or 0), "--port-file", str(port_file),
                "--store", self._store_arg(), "--keep-receipts",
                *s.hub.delivery.cli_args(), *s.hub.keepalive.cli_args(),
                "--log-level", os.environ.get("AGENTNET_LOG_LEVEL", "warning"), "--exit-with-parent",
            ]  # fmt: skip
            if s.hub.store_kind == "postgresql":
                argv += ["--lease", str(s.hub.lease)]
            if s.hub.auth:
                argv += ["--auth-file", str(run / "keys.yaml")]
            if "autogen" in s.gateways:  # the gateway runs inside the hub process
                argv += ["--autogen", f"127.0.0.1:{self.autogen_port or 0}"]
                argv += ["--autogen-port-file", str(run / "autogen.port"), "--autogen-log-dir", str(run / "agents")]
            return argv

        def forget_port() -> None:
            for path in (port_file, run / "autogen.port"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        hub = ProcessSpec(name, "hub", hub_command, run / "logs" / f"{name}.log", policy=HUB_POLICY)
        if name == "hub":
            hub.probe = self._hub_probe
        else:
            hub.probe = lambda p, name=name, port_file=port_file: self._replica_probe(p, name, port_file)
        hub.before_start = forget_port
        self.supervisor.add(hub)

    def _declare(self) -> None:
        s, run = self.scenario, self.run_dir
        for name in self.hub_names:
            self._declare_hub(name)
        for inst in s.expanded_agents():
            spec = inst.spec

            def agent_command(
                name: str = inst.name, brain: str = spec.brain or "", options: str = json.dumps(spec.options)
            ) -> list[str]:
                return [
                    sys.executable, "-m", "agentnet.cli", "agent", "--name", name, "--hub", self.hub_url,
                    "--brain", brain, "--options", options, "--state-dir", str(run / "agents" / name),
                    "--exit-with-parent",
                ]  # fmt: skip

            def program_command(name: str = inst.name, argv: tuple[str, ...] = tuple(spec.command or ())) -> list[str]:
                values = {
                    "name": name,
                    "hub_url": self.hub_url,
                    "hub_host": "127.0.0.1",
                    "hub_port": str(self.hub_port or 0),
                    "run_dir": str(run),
                    "autogen_address": f"127.0.0.1:{self.autogen_port or 0}",
                }
                return [render(arg, values) for arg in argv]

            env = {"AGENTNET_HUB_URL": "", "AGENTNET_AGENT_NAME": inst.name, "AGENTNET_RUN_DIR": str(run)}
            env.update(spec.env)
            if inst.name in self.tokens:
                env["AGENTNET_TOKEN"] = self.tokens[inst.name]
            b = spec.backoff
            policy = RestartPolicy(spec.restart, b.initial, b.max, b.factor, b.jitter, spec.max_restarts)
            log_path = run / "logs" / f"{inst.name}.log"
            if spec.command is not None:  # any program (e.g. an ag2 agent); it is ready once the hub sees it
                base = s.source.resolve().parent if s.source is not None else Path.cwd()
                agent = ProcessSpec(inst.name, "agent", program_command, log_path, env=env, cwd=base, policy=policy)
            else:
                agent = ProcessSpec(inst.name, "agent", agent_command, log_path, env=env, policy=policy)
            agent.depends_on = inst.depends_on
            self.supervisor.add(agent)

    async def _replica_probe(self, p: Any, name: str, port_file: Path) -> None:
        """A hub replica is ready when /healthz answers, active (200) or standby (503)."""
        while p.alive:
            try:
                port = int(port_file.read_text())
            except (OSError, ValueError):
                port = None
            if port and await healthz("127.0.0.1", port, standby_too=True) is not None:
                self.hub_ports[name] = port
                for agent in self.supervisor.processes.values():
                    if agent.role == "agent":
                        agent.spec.env["AGENTNET_HUB_URL"] = self.hub_url
                return
            await asyncio.sleep(0.05)
        raise SupervisorError(f"{name} exited before it was ready")

    async def _hub_probe(self, p: Any) -> None:
        """Ready = the port file is written and GET /healthz answers 200 (or 503 standby, with replicas:
        the first hub restarted after a takeover comes back as a standby)."""
        port_file = self.run_dir / "hub.port"
        standby_too = len(self.hub_names) > 1 and self.hub_port is not None
        while p.alive:
            try:
                port = int(port_file.read_text())
            except (OSError, ValueError):
                port = None
            if port and self.scenario.gateways and not self._gateway_ports():
                port = None  # the hub answers agentnet clients before its gateways listen
            if port and await healthz("127.0.0.1", port, standby_too=standby_too) is not None:
                self.hub_port = port
                for agent in self.supervisor.processes.values():
                    if agent.role == "agent":
                        agent.spec.env["AGENTNET_HUB_URL"] = self.hub_url
                return
            await asyncio.sleep(0.05)
        raise SupervisorError("the hub exited before it was ready")

    def _gateway_ports(self) -> bool:
        """With gateways: [autogen], read the gateway's port (written once it listens); True once known."""
        try:
            self.autogen_port = int((self.run_dir / "autogen.port").read_text())
        except (OSError, ValueError):
            return False
        for agent in self.supervisor.processes.values():
            if agent.role == "agent":
                agent.spec.env["AGENTNET_AUTOGEN_ADDRESS"] = f"127.0.0.1:{self.autogen_port}"
        return True

    def _agent_names(self) -> list[str]:
        return [p.name for p in self.supervisor.processes.values() if p.role == "agent"]

    def _on_hub_item(self, item: HubItem | None) -> None:
        """Readiness: an agent is ready when the hub reports it registered with the child's pid."""
        if isinstance(item, AgentRegistered):
            self.supervisor.mark_ready(item.name, item.pid, "registered with the hub")
        elif isinstance(item, Snapshot):
            for agent in item.agents:
                if agent.connected:  # pid None: a `command:` agent, which does not say it
                    self.supervisor.mark_ready(agent.name, agent.pid, "registered with the hub")

    async def _observe(self) -> None:
        assert self.observer is not None
        try:
            async for kind, item in self.observer:
                decoded = self.model.decode(kind, item)
                self._on_hub_item(decoded)
                self.publish(kind, item, decoded=decoded)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the hub refused us for good: nothing will be observed any more
            log.exception("the observer feed ended")
            message = getattr(exc, "message", None) or repr(exc)
            self.problems.append(f"the launcher lost its hub feed: {message}")
            self.should_exit.set()

    async def _start_agents(self) -> None:
        sup = self.supervisor

        async def bring_up(name: str) -> None:
            p = sup.get(name)
            waiting = [d for d in p.spec.depends_on if not sup.get(d).ready.is_set()]
            if waiting:
                sup.note(name, f"waiting for {', '.join(waiting)} (depends_on)")
                for dep in p.spec.depends_on:
                    await sup.wait_ready(dep, AGENTS_READY_TIMEOUT)
            await sup.start(name, reason="started")
            await sup.wait_ready(name, AGENTS_READY_TIMEOUT)

        tasks = [asyncio.create_task(bring_up(n)) for n in self._agent_names()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # ------------------------------------------------------------------ controls that need the hub

    async def _disconnect(self, name: str) -> None:
        if self.observer is None:
            raise ControlError("the launcher is not connected to the hub")
        await self.observer.request("disconnect", name=name)

    async def _restart_hub(self, reason: str) -> str:
        old = self.supervisor.get("hub").pid
        p = await self.supervisor.restart("hub", reason=reason)
        await self.supervisor.wait_ready("hub", HUB_READY_TIMEOUT)
        return f"restarted the hub (pid {old} -> {p.pid}) on port {self.hub_port}, same store"

    # ------------------------------------------------------------------ script and faults

    def _schedule(self) -> None:
        assert self.t0 is not None
        for i, step in enumerate(self.scenario.script):
            self.timeline.append(asyncio.create_task(self._at(step.at, self._step(i, step)), name=f"step-{i}"))
        for i, fault in enumerate(self.scenario.faults):
            self.timeline.append(asyncio.create_task(self._at(fault.at, self._fault(i)), name=f"fault-{i}"))

    async def _at(self, at: float, coro: Any) -> None:
        assert self.t0 is not None
        delay = self.t0 + at - time.monotonic()
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            coro.close()  # stopped before its time: it never runs (and is not "never awaited")
            raise
        await coro

    async def _fault(self, index: int) -> None:
        assert self.t0 is not None
        fault = self.scenario.faults[index]
        result = self.faults[index]
        result.late = max(0.0, time.monotonic() - self.t0 - fault.at)
        item = {"kind": "fault", "at": utc_iso(), "action": fault.action, "target": fault.target}
        self.publish("fault", {**item, "caption": fault.caption})
        if fault.caption:
            self.caption(fault.caption)
        try:
            if fault.action in ("kill-hub", "freeze-hub", "failover"):
                result.result = await self._hub_fault(fault.action, fault.duration)
            else:
                result.result = await self.controls.act(fault.action, fault.target, source="fault", origin="script")
            result.ok = True
        except ControlError as exc:
            result.result = f"not applied: {exc}"
            if self.view is not None:
                self.view.note(f"fault {fault.action} not applied: {exc}", "yellow")

    # ------------------------------------------------------------------ hub replicas (postgresql)

    async def _start_postgres(self) -> None:
        from agentnet.pglocal import LocalPostgres, PgLocalError

        try:
            self.pg = await asyncio.to_thread(lambda: LocalPostgres(self.run_dir / "pg").start())
        except PgLocalError as exc:
            raise SupervisorError(f"cannot start the local PostgreSQL: {exc}") from None
        self.store_url = self.pg.url
        self.store_counts.url = self.store_url
        self._write_run_file()
        self.caption(f"PostgreSQL started for the hubs' store (pid {self.pg.pid}, {self.pg.url})")

    async def _find_active(self, timeout: float = 0.5) -> str | None:
        for name in self.hub_names:
            port = self.hub_port if name == "hub" else self.hub_ports.get(name)
            proc = self.supervisor.processes.get(name)
            if port is None or proc is None or not proc.alive:
                continue
            info = await healthz("127.0.0.1", port, timeout=timeout)
            if info is not None and info.get("role", "active") == "active":
                return name
        return None

    def _annotate_hubs(self, term: int | None) -> None:
        """Label each running hub replica active or standby (the reason column of the processes table;
        the dashboard shows it as the hub's connection)."""
        if term is not None:
            self._term = term
        for name in self.hub_names:
            p = self.supervisor.processes.get(name)
            if p is None or not p.alive or p.state.value not in ("ready", "running"):
                continue
            self.supervisor.note(name, "active" if name == self.active_hub else "standby")

    async def _watch_leader(self) -> None:
        """Which replica leads, from their /healthz: a takeover is marked in the event log, and each hub
        process is labelled active or standby."""
        while True:
            await asyncio.sleep(0.2)
            name = await self._find_active()
            if name is None or name == self.active_hub:
                self._annotate_hubs(None)  # a restarted replica comes back labelled standby
                continue
            before, self.active_hub = self.active_hub, name
            port = self.hub_port if name == "hub" else self.hub_ports.get(name)
            info = await healthz("127.0.0.1", port or 0, timeout=0.5) or {}
            self._annotate_hubs(info.get("term"))
            self.caption(f"failover: {name} is now the active hub (took over from {before}; term {info.get('term')})")

    async def _hub_fault(self, action: str, duration: float | None) -> str:
        sup = self.supervisor
        # /healthz first; on a loaded machine it may not answer in time: then the last one seen active
        active = await self._find_active(timeout=2.0) or self.active_hub
        if active is None:
            raise ControlError("no hub is active right now")
        p = sup.get(active)
        pid = p.pid
        if action == "kill-hub":
            await sup.kill(active, fault=True, reason="killed by a fault (SIGKILL, active hub)")
            return f"killed the active hub {active} (pid {pid}); a standby takes over"
        if action == "freeze-hub":
            await sup.pause(active, reason=f"frozen by a fault (SIGSTOP, {duration:g} s)")

            async def thaw() -> None:
                await asyncio.sleep(duration or 0)
                # The thaw is part of the fault: the woken hub may still send what it had committed
                # before it froze, then finds its session gone and steps down.
                text = f"the frozen hub {active} wakes up (SIGCONT): its commits are refused, it steps down"
                self.publish(
                    "fault", {"kind": "fault", "at": utc_iso(), "action": "freeze-hub", "target": None, "caption": text}
                )
                with contextlib.suppress(Exception):
                    await sup.resume(active, reason="woken by the fault (SIGCONT); it must step down")

            self.timeline.append(asyncio.create_task(thaw(), name=f"thaw-{active}"))
            return f"froze the active hub {active} (pid {pid}) for {duration:g} s; a standby takes over after the lease"
        p = await sup.restart(active, reason="restarted by a fault (failover: a standby takes over)")
        await sup.wait_ready(active, HUB_READY_TIMEOUT)
        return f"restarted the active hub {active} (pid {pid} -> {p.pid}); it came back as a standby"

    async def _step(self, index: int, step: Any) -> None:
        try:
            if isinstance(step, OpenStep):
                await self._open(index, step)
            elif isinstance(step, PostStep):
                cid = await self._channel(step.channel)
                await self._post(cid, step.from_, step.type, {"text": step.text}, f"{self.run_id}-s{index}")
            elif isinstance(step, StreamStep):
                await self._stream(index, step)
        except Exception as exc:
            what = f"script[{index}] {step.action} {getattr(step, 'channel', '')} at {step.at:g} s"
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.problems.append(f"{what} failed: {message}")
            if self.view is not None:
                self.view.note(f"{what} failed: {message}", "bold red")

    async def _open(self, index: int, step: OpenStep) -> None:
        participants = [name for recipient in step.to for name in self.scenario.resolve(recipient)]
        params: dict[str, Any] = {"as_agent": step.from_, "type": step.type, "participants": participants}
        if step.topic is not None:
            params["topic"] = step.topic
        if step.knobs:
            params["knobs"] = step.knobs
        info = await self.observer.request("open_channel", **params)
        cid = info["channel_id"]
        self.aliases[step.channel] = cid
        self.alias_of[cid] = step.channel
        self.model.channel(decode_channel(info))
        self._alias_event(step.channel).set()
        # The dashboard knows channels by id; say which one the scenario calls by this name.
        text = f"channel {step.channel} is {cid} ({step.type}: {step.from_} → {', '.join(participants)})"
        self.publish("caption", {"kind": "caption", "at": utc_iso(), "text": text}, view=False)
        if step.text is not None:
            await self._post(cid, step.from_, "text", {"text": step.text}, f"{self.run_id}-s{index}")

    def _alias_event(self, alias: str) -> asyncio.Event:
        return self.alias_ready.setdefault(alias, asyncio.Event())

    async def _channel(self, alias: str) -> str:
        if alias not in self.aliases:
            async with asyncio.timeout(10):
                await self._alias_event(alias).wait()
        return self.aliases[alias]

    async def _post(self, channel_id: str, sender: str, typ: str, data: dict[str, Any], key: str) -> dict[str, Any]:
        """Post as `sender`; retried with the same idempotency key while the hub is unreachable."""
        from agentnet.client import HubError

        delay = 0.05
        while True:
            try:
                return await self.observer.request(
                    "post", channel_id=channel_id, type=typ, data=data, as_agent=sender, idempotency_key=key
                )
            except HubError as exc:
                if exc.code not in TRANSIENT or self.should_exit.is_set():
                    raise
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

    async def _stream(self, index: int, step: StreamStep) -> None:
        cid = await self._channel(step.channel)
        loop = asyncio.get_running_loop()
        start = loop.time()
        inflight = asyncio.Semaphore(256)
        failures: list[BaseException] = []
        pending: set[asyncio.Task] = set()

        async def one(n: int) -> None:
            try:
                data = {"text": step.text_for(n), "n": n, "count": step.count}
                await self._post(cid, step.from_, step.type, data, f"{self.run_id}-s{index}-{n}")
            except Exception as exc:
                failures.append(exc)
            finally:
                inflight.release()

        for n in range(1, step.count + 1):
            delay = start + (n - 1) / step.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await inflight.acquire()
            task = asyncio.create_task(one(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        if failures:
            raise RuntimeError(f"{len(failures)} of {step.count} posts failed; first: {failures[0]}")

    # ------------------------------------------------------------------ live questions (dashboard only)

    async def _post_question(self, sender: str, recipients: list[str], text: str) -> str:
        """Open a consulting channel as `sender` to `recipients` and post `text` (the dashboard's post key)."""
        if self.observer is None:
            raise ControlError("the launcher is not connected to the hub yet")
        participants = [name for recipient in recipients for name in self._resolve(recipient)]
        info = await self.observer.request(
            "open_channel", as_agent=sender, type="consulting", participants=participants, topic=text[:100]
        )
        cid = info["channel_id"]
        await self._post(cid, sender, "text", {"text": text}, f"{self.run_id}-{cid}-q")
        return f"{sender} asked {', '.join(participants)} in {cid}"

    async def _live(self, live: LiveSpec) -> None:
        """After the script (and its verdict), ask a new question every `live.every` s until the run stops."""
        while not self.timeline_done():
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while self.expect_met_at is None and self.scenario.expect is not None:
                    await asyncio.sleep(0.1)
        if live.caption:
            self.caption(live.caption)
        n = 0
        while not self.should_exit.is_set():
            n += 1
            try:
                async with asyncio.timeout(max(5.0, live.every * 3)):
                    await self._post_question(live.from_, list(live.to), live.text_for(n))
            except Exception as exc:  # the hub restarting, a refused post: try again next time
                log.info("live question %d not posted: %s", n, getattr(exc, "message", None) or exc)
            await asyncio.sleep(live.every)

    # ------------------------------------------------------------------ expect

    def evaluate(self) -> list[Check]:
        expect = self.scenario.expect
        if expect is None:
            return []
        model = self.model
        checks: list[Check] = []

        def channel(alias: str) -> ChannelView | None:
            cid = self.aliases.get(alias)
            return model.channels.get(cid) if cid else None

        closed = list(expect.channels_closed)
        if expect.all_channels_closed:
            closed = list(self.scenario.channels())
        for alias in closed:
            ch = channel(alias)
            ok = ch is not None and ch.state == "closed"
            detail = (ch.close_reason or "" if ch is not None else "") if ok else ("open" if ch else "not opened yet")
            checks.append(Check(f"{alias} closed", ok, detail))
        for reply in expect.replies:
            senders = set(self.scenario.resolve(reply.from_))
            cid = self.aliases.get(reply.channel)
            found = next(
                (
                    text
                    for _, sender, text in model.texts.get(cid or "", [])
                    if sender in senders and re.search(reply.matches, text)
                ),
                None,
            )
            detail = repr(found) if found is not None else "no matching reply yet"
            label = f"reply from {reply.from_} in {reply.channel} matches {reply.matches}"
            checks.append(Check(label, found is not None, detail))
        counts = self.counts()
        want = expect.counts
        if want.dead_letters is not None:
            n = counts["dead_lettered"]
            checks.append(Check(f"dead letters = {want.dead_letters}", n == want.dead_letters, f"{n}"))
        if want.min_delivered is not None:
            exact = self.store_path is not None or self.store_counts.url is not None
            n = counts["acked"] if exact else len(model.acked)
            checks.append(Check(f"delivered >= {want.min_delivered}", n >= want.min_delivered, f"{n} acked"))
        if expect.all_acked:
            done = self.timeline_done()
            if "expected" in counts:  # exact, from the store
                missing = counts["expected"] - counts["acked"]
                ok = done and missing == 0
                detail = f"{counts['acked']} of {counts['expected']} deliveries acked"
            else:
                ok = done and model.settled()
                detail = "every recipient at its last envelope" if ok else ", ".join(model.lagging()[:4])
            if not done:
                detail = "script still running; " + detail
            checks.append(Check("all acked", ok, detail))
        return checks

    def timeline_done(self) -> bool:
        return self.t0 is not None and all(task.done() for task in self.timeline)

    # ------------------------------------------------------------------ lifecycle

    def _last_words(self) -> str:
        """The last log line of each process that ended badly, to say why at once."""
        out = []
        for p in self.supervisor.processes.values():
            if p.state in ("crashed", "killed", "backoff") or (p.state == "exited" and p.exit_code not in (0, None)):
                line = _last_line(p.spec.log_path)
                if line:
                    out.append(f"{p.name}: {line}")
        return "".join(f"\n      {line}" for line in out)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Stray errors of background tasks go to launcher.log, not over the live view."""
        exc = context.get("exception")
        log.warning("%s: %r", context.get("message"), exc, exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)

    def _install_signals(self) -> list[int]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        return installed

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:
            self._terminal_gone()
        if not self.should_exit.is_set():
            self.exit_signal = sig
            self.should_exit.set()
            name = signal.Signals(sig).name
            if self.view is not None:
                self.view.note(f"{name}: stopping gracefully (again to force)", "bold yellow")
            return
        self.force_exit = True
        self.phase = "forced"
        killed = self.supervisor.force_kill_all()
        if self.view is not None:
            self.view.note(f"forced: SIGKILL to every child ({len(killed)} swept)", "bold red")

    def _terminal_gone(self) -> None:
        """SIGHUP: the terminal is gone. Writes to it would fail (and can wedge the dashboard's writer
        thread), so they go to /dev/null; a watchdog ends the launcher if stopping still hangs (the
        children get SIGTERM from their lifeline when it dies)."""
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
        grace = self.opts.stop_timeout + 10.0
        timer = threading.Timer(grace, os._exit, args=(128 + signal.SIGHUP,))
        timer.daemon = True
        timer.start()

    async def execute(self) -> int:
        """Run the scenario; returns the exit code. Everything started is stopped before it returns."""
        s = self.scenario
        log_handler = self._log_to_file()
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        installed = self._install_signals()
        dashboard: asyncio.Task | None = None
        outcome = "error"
        try:
            self._write_run_file()
            if s.hub.auth:
                self._write_keys()
            self._declare()
            self.recorder = RecordingWriter(
                self.run_dir / checker.RECORDING_FILE, {"scenario": s.name, "run_dir": str(self.run_dir)}
            )
            dashboard = await self._open_view()
            await self.control_server.start()
            for p in self.supervisor.processes.values():
                self.publish("process", p.info())
            outcome = await self._run(dashboard)
        except Exception as exc:  # startup failures: a process not ready, the hub unreachable, ...
            log.debug("run failed", exc_info=True)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.problems.append(f"startup failed: {message}{self._last_words()}")
            outcome = "error"
        finally:
            self.phase = "stopping"
            leftover = await self._stop(dashboard)
            for sig in installed:
                loop.remove_signal_handler(sig)
            loop.set_exception_handler(previous_handler)
            logger = logging.getLogger("agentnet")
            logger.removeHandler(log_handler)
            logger.setLevel(self._saved_logging[0])
            logger.propagate = self._saved_logging[1]
            log_handler.close()
        try:
            return self._finish(outcome, leftover)
        finally:
            if self.pg is not None:
                await asyncio.to_thread(self.pg.stop)

    async def _open_view(self) -> asyncio.Task | None:
        s = self.scenario
        headless = self.opts.headless
        reason = None
        if not headless and self.opts.dashboard is None:
            headless = True  # a caller that gives no dashboard wants none (the cli gives one)
        elif not headless and self.opts.tty_check and not (sys.stdout.isatty() and sys.stdin.isatty()):
            headless, reason = True, "not a terminal"
        if not headless:
            assert self.opts.dashboard is not None
            self.dashboard_feed = QueueFeed()
            title = f"agentnet up {s.name}" + (f" — {s.description}" if s.description else "")
            task = asyncio.create_task(
                self.opts.dashboard(self.dashboard_feed, self.controls, title=title, recording_path=None)
            )
            await asyncio.sleep(0)
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            return task
        self.view = HeadlessView(
            self.console, clock=self.clock, alias=self.alias, status=lambda: status_block(self.status())
        )
        if reason:
            self.view.note(f"running headless: {reason}", "yellow")
        self.view.note(f"run directory {self.run_dir}", "dim")
        self.view.start()
        return None

    async def _run(self, dashboard: asyncio.Task | None) -> str:
        s = self.scenario
        within = self.opts.timeout if self.opts.timeout is not None else (s.expect.within if s.expect else None)
        if within is not None:
            self.deadline = self.launched + within
        startup = asyncio.create_task(self._start_all(), name="startup")
        self.tasks.append(startup)
        while not startup.done():
            stopper = asyncio.ensure_future(self.should_exit.wait())
            watch = [startup, stopper] + ([dashboard] if dashboard else [])
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED, timeout=self._time_left())
            stopper.cancel()
            if self.should_exit.is_set() or (dashboard is not None and dashboard.done()):
                startup.cancel()
                if dashboard is not None and dashboard.done():
                    self._dashboard_failed(dashboard)
                return "interrupted"
            if not startup.done() and self._time_left() == 0:
                startup.cancel()
                self.problems.append(f"not started within {within:g} s")
                return "failed"
        startup.result()  # raise its error
        self.phase = "running"
        self.t0 = time.monotonic()
        ready = len(self._agent_names())
        agents = f"{ready} agent{'s' if ready != 1 else ''}"
        # t0 and the fault timeline ride on this caption: the dashboard shows the scenario clock and the next fault
        faults = [{"at": f.at, "action": f.action, "target": f.target} for f in s.faults]
        self.publish(
            "caption",
            {
                "kind": "caption",
                "at": utc_iso(),
                "text": f"hub and {agents} ready after {self.t0 - self.launched:.1f} s; t = 0",
                "t0": True,
                "faults": faults,
            },
        )
        self._schedule()
        if dashboard is not None and s.live is not None:
            self.tasks.append(asyncio.create_task(self._live(s.live), name="live"))
        verdict: str | None = None  # "passed" or "failed" once expect is decided
        ended = "stopped" if s.expect is None else "interrupted"  # what a stop before a verdict means
        while True:
            self.checks = self.evaluate()
            met = s.expect is not None and self.timeline_done() and all(c.ok for c in self.checks)
            if met and verdict is None:
                verdict = "passed"
                self.expect_met_at = time.monotonic()
                n = len(self.checks)
                held = "the 1 check holds" if n == 1 else f"all {n} checks hold"
                self.caption(f"expect: {held} at t = {self.expect_met_at - self.t0:.1f} s")
                if dashboard is None:
                    return verdict
            if self.should_exit.is_set():
                return verdict or ended
            if dashboard is not None and dashboard.done():
                self._dashboard_failed(dashboard)
                return verdict or ended
            if verdict is None and self._time_left() == 0:
                if s.expect is None:
                    return "finished"
                verdict = "failed"
                if dashboard is None:
                    return verdict
                failing = "; ".join(f"{c.check} ({c.detail})" for c in self.checks if not c.ok)
                self.caption(f"expect failed by its deadline: {failing}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self.should_exit.wait()

    def _dashboard_failed(self, dashboard: asyncio.Task) -> None:
        if dashboard.cancelled():
            return
        if dashboard.exception() is None:
            if dashboard.result() == "interrupt" and not self.should_exit.is_set():
                # Ctrl-C in the dashboard: a graceful stop, as after SIGINT (a second Ctrl-C forces)
                self.exit_signal = signal.SIGINT
                self.should_exit.set()
            return
        exc = dashboard.exception()
        log.error("the dashboard failed", exc_info=exc)
        self.problems.append(f"the dashboard failed: {exc!r} (traceback in {self.run_dir / 'launcher.log'})")

    def _time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    async def _start_all(self) -> None:
        from agentnet.client import ObserverClient

        sup = self.supervisor
        if self.scenario.hub.store_kind == "postgresql" and self.store_url is None:
            await self._start_postgres()
        await sup.start("hub")
        await sup.wait_ready("hub", HUB_READY_TIMEOUT)
        for name in self.hub_names[1:]:
            await sup.start(name)
            await sup.wait_ready(name, HUB_READY_TIMEOUT)
        if len(self.hub_names) > 1:
            self.active_hub = "hub"
            self._annotate_hubs(None)
            self.tasks.append(asyncio.create_task(self._watch_leader(), name="watch-leader"))
        self.observer = ObserverClient(
            self.hub_url,
            LAUNCHER_NAME,
            token=self.tokens.get(LAUNCHER_NAME),
            role="supervisor",
            backoff_max=0.5,
            request_timeout=10.0,
        )
        await self.observer.__aenter__()
        self.tasks.append(asyncio.create_task(self._observe(), name="observe"))
        await self._start_agents()

    async def _stop(self, dashboard: asyncio.Task | None) -> list[int]:
        for task in self.timeline:
            task.cancel()
        if not self.force_exit and self.expect_met_at is not None and self.observer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    while not self.model.settled():
                        await asyncio.sleep(0.05)
        if dashboard is not None and not dashboard.done():
            dashboard.cancel()
            with contextlib.suppress(BaseException):
                await dashboard
        sup = self.supervisor
        await sup.stop_all(self._agent_names())
        if self.observer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self.observer.__aexit__(None, None, None)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        leftover = await sup.shutdown([list(self.hub_names)])
        await self.control_server.close()
        self.store_counts.close()
        if self.view is not None:
            self.view.stop()
        if self.dashboard_feed is not None:
            self.dashboard_feed.close()
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        return leftover

    def _finish(self, outcome: str, leftover: list[int]) -> int:
        s = self.scenario
        elapsed = time.monotonic() - self.launched
        summary: dict[str, Any] = {
            "scenario": s.name,
            "run_dir": str(self.run_dir),
            "outcome": outcome,
            "elapsed": round(elapsed, 3),
            "expect": [c.__dict__ for c in self.checks],
            "faults": [f.__dict__ for f in self.faults],
            "problems": list(self.problems),
            "leftover": leftover,
            "processes": [
                {k: p[k] for k in ("name", "role", "state", "reason", "restarts", "exit_code")}
                for p in self.supervisor.status()
            ],
        }
        report = None
        if not self.force_exit and self.t0 is not None:
            try:
                report = checker.check_run(self.run_dir)
            except checker.CheckError as exc:
                self.problems.append(f"check: {exc}")
        counts = dict(self.model.counts)
        if report is not None:
            st = report.stats
            counts.update(
                posted=st["envelopes"], acked=st["acked"], dead_lettered=st["dead"],
                redelivered=max(st["redelivered"], counts["redelivered"]),
                duplicates_suppressed=st["duplicates_suppressed"],
            )  # fmt: skip
            if self.store_path is None:
                counts["posted"] = max(counts["posted"], self.model.counts["posted"])
            lines = report.lines()
            summary["check"] = {
                "ok": report.ok,
                "headline": ("delivery invariants hold" if report.ok else f"{report.violation_count} violations")
                + f" ({st['expected']} deliveries, {st['duplicates']} duplicates"
                + (f", {st['pending']} still pending when it stopped" if st["pending"] else "")
                + f"; agentnet check {self.run_dir})",
                "lines": lines,
            }
            if not report.ok:
                outcome = summary["outcome"] = "failed" if outcome == "passed" else outcome
        if self.problems and outcome == "passed":
            outcome = summary["outcome"] = "failed"
        counts.setdefault("duplicates_suppressed", 0)
        summary["counts"] = counts
        summary["channels"] = self._channel_summary()
        summary["problems"] = list(self.problems)
        if self.force_exit:
            code = 128 + signal.SIGINT
        elif outcome in ("passed", "finished", "stopped") and not self.problems and (report is None or report.ok):
            code = EXIT_OK
        elif outcome == "interrupted" and self.exit_signal is not None:
            code = 128 + self.exit_signal
        else:
            code = EXIT_FAILED
        summary["exit_code"] = code
        with contextlib.suppress(OSError):
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print_summary(self.console, summary)
        return code

    def _channel_summary(self) -> list[dict[str, Any]]:
        out = []
        for alias, step in self.scenario.channels().items():
            cid = self.aliases.get(alias)
            info = self.model.channels.get(cid or "")
            texts = self.model.texts.get(cid or "", [])
            last = texts[-1] if texts else None
            out.append(
                {
                    "alias": alias,
                    "channel_id": cid,
                    "type": step.type,
                    "creator": step.from_,
                    "participants": list(info.participants if info else ()) or list(self.scenario.participants(alias)),
                    "state": info.state if info else "not opened",
                    "close_reason": info.close_reason if info else None,
                    "envelopes": max(info.head_seq if info else 0, self.model.heads.get(cid or "", 0)),
                    "last_text": {"seq": last[0], "sender": last[1], "text": last[2]} if last else None,
                }
            )
        return out

    # ------------------------------------------------------------------ files

    def _store_label(self) -> str:
        kind = self.scenario.hub.store_kind
        if kind == "postgresql":
            from agentnet.hub.store.postgres import redact

            if self.scenario.hub.store == "postgresql":  # the launcher's own server, in the run directory
                return f"postgresql-local:{(self.run_dir / 'pg').resolve()}"
            return redact(self.store_url or self.scenario.hub.store)
        return "memory" if self.store_path is None else f"sqlite:{self.store_path.resolve()}"

    def _write_run_file(self) -> None:
        s = self.scenario
        if s.source is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(s.source, self.run_dir / "scenario.yaml")
        info = {
            "scenario": s.name,
            "scenario_file": str(s.source.resolve()) if s.source else None,
            "store": self._store_label(),
            "store_url": self.store_url if self.pg is not None else None,  # the local PostgreSQL while it runs
            "agents": s.agent_names(),
            "launcher_pid": os.getpid(),
            "run_id": self.run_id,
            "started_at": utc_iso(),
        }
        (self.run_dir / checker.RUN_FILE).write_text(json.dumps(info, indent=2) + "\n")

    def _write_keys(self) -> None:
        from agentnet.hub.auth import TokenEntry, new_token, write_auth_file

        entries = [TokenEntry(name=name, role="agent", token=new_token()) for name in self.scenario.agent_names()]
        entries.append(TokenEntry(name=LAUNCHER_NAME, role="supervisor", token=new_token()))
        entries.append(TokenEntry(name=DASHBOARD_NAME, role="observer", token=new_token()))
        self.tokens = {e.name: e.token for e in entries}
        for token in self.tokens.values():
            redact.add_secret(token)
        write_auth_file(self.run_dir / "keys.yaml", entries)

    def _log_to_file(self) -> logging.Handler:
        handler = logging.FileHandler(self.run_dir / "launcher.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        redact.protect_handler(handler)
        logger = logging.getLogger("agentnet")
        self._saved_logging = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.propagate = False  # during the run, the launcher's log goes to the file, not over the view
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        return handler


def _last_line(path: Path) -> str | None:
    """The line of a log that best says why the process ended: the last error among its last lines."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    lines = [line.strip() for line in lines if line.strip() and not line.startswith("==== ")][-12:]
    errors = [line for line in lines if "error" in line.lower()]
    found = (errors or lines or [None])[-1]
    return found[:300] if found else None


async def healthz(host: str, port: int, timeout: float = 1.0, *, standby_too: bool = False) -> dict[str, Any] | None:
    """GET /healthz; its JSON body if it answered 200 (or 503 with `standby_too`: a standby hub), else None."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not (head.startswith(b"HTTP/1.1 200") or (standby_too and head.startswith(b"HTTP/1.1 503"))):
                return None
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else await reader.read()
            parsed = json.loads(body or b"{}")
            return parsed if isinstance(parsed, dict) else {}
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --------------------------------------------------------------------------- entry point


def up(opts: UpOptions) -> int:
    """`agentnet up`: returns the exit code (2 for a configuration problem, nothing started)."""
    console = opts.console or Console(highlight=False, soft_wrap=True)
    try:
        scenario = load_and_check(opts.path)
    except ConfigError as exc:
        print(f"agentnet up: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    run = Run(scenario, opts, console)
    return asyncio.run(run.execute())
