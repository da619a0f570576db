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
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from agentnet.protocol.ids import utc_iso
from agentnet.protocol.vocab import Outcome
from agentnet.run.control import RUNS_DIR, Controls
from agentnet.run.feed import QueueFeed
from agentnet.run.items import ControlItem, ProcessItem, decode_item
from agentnet.run.recording import RecordingWriter

from . import checker
from .control import ControlServer, LauncherControls
from .expect import Expect
from .headless import HeadlessView, status_block
from .live import HubItem, RunModel, StoreCounts
from .preflight import ConfigError, load_and_check, new_run_dir
from .processes import HUB_READY_TIMEOUT, LAUNCHER_NAME, Processes
from .replicas import Replicas
from .report import Check, Counts, FaultResult, RunStatus, to_json
from .rundir import RunFiles
from .scenario import Scenario
from .summary import EXIT_CONFIG, Summary
from .supervisor import Supervisor
from .timeline import Timeline

log = logging.getLogger("agentnet.launcher")

DRAIN_TIMEOUT = 3.0  # after success: wait this long for in-flight deliveries to be acked before stopping


class DashboardOpener(Protocol):
    """Runs a dashboard over `feed` until the user quits; `controls` act on this run."""

    async def __call__(
        self, feed: QueueFeed, controls: Controls, *, title: str, recording_path: Path | None
    ) -> str | None:
        """Returns "interrupt" if the user pressed Ctrl-C in it (the run stops as after a SIGINT)."""
        ...


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


# --------------------------------------------------------------------------- the run


class Run(Processes, Timeline, Replicas, Expect, Summary, RunFiles):
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
            status=lambda: to_json(self.status()),
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
        """Seconds since launch until t = 0 (everything ready), then since t = 0, as the dashboard
        writes them: `boot+0.43`, `t+2.00`."""
        now = time.monotonic()
        if self.t0 is None:
            return f"boot+{now - self.launched:.2f}"
        return f"t+{now - self.t0:.2f}"

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

    @staticmethod
    def _process_item(info: dict[str, Any]) -> ProcessItem | None:
        item = decode_item("process", info)
        return item if isinstance(item, ProcessItem) else None

    def status(self) -> RunStatus:
        now = time.monotonic()
        counts = self.counts()
        return RunStatus(
            scenario=self.scenario.name,
            run_dir=str(self.run_dir),
            hub_url=self.hub_url if self.hub_port else None,
            phase=self.phase,
            clock=self.clock(),
            elapsed=round(now - self.launched, 3),
            t=round(now - self.t0, 3) if self.t0 is not None else None,
            processes=[p for p in map(self._process_item, self.supervisor.status()) if p is not None],
            connected=dict(self.model.connected),
            counts=Counts(**{k: v for k, v in counts.items() if k in Counts.__dataclass_fields__}),
            expect=list(self.checks),
            channels={alias: self.model.channel_state(cid) for alias, cid in self.aliases.items()},
            launcher_pid=os.getpid(),
        )

    # ------------------------------------------------------------------ processes

    # ------------------------------------------------------------------ controls that need the hub

    # ------------------------------------------------------------------ script and faults

    # ------------------------------------------------------------------ hub replicas (postgresql)

    # ------------------------------------------------------------------ live questions (dashboard only)

    # ------------------------------------------------------------------ expect

    # ------------------------------------------------------------------ lifecycle

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Stray errors of background tasks go to launcher.log, not over the live view."""
        exc = context.get("exception")
        log.warning("%s: %r", context["message"], exc, exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)

    @contextlib.contextmanager
    def _captured(self) -> Iterator[None]:
        """For the run's duration: SIGINT, SIGTERM and SIGHUP go to `_on_signal`, stray errors of
        background tasks to launcher.log; both are put back as they were afterwards (as uvicorn's
        `capture_signals`)."""
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            loop.set_exception_handler(previous_handler)

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
        """Run the scenario; returns the exit code. Everything started is stopped before it returns.

        startup (files, processes declared, the view, the control socket) -> the main loop (`_run`:
        start everything, t = 0, the timeline, `expect` until decided) -> shutdown (`_stop`), all
        inside `_captured()` (signals); then the summary (`_finish`)."""
        log_handler = self._log_to_file()
        dashboard: asyncio.Task | None = None
        outcome = Outcome.ERROR
        try:
            with self._captured():
                try:
                    dashboard = await self._startup()
                    outcome = await self._run(dashboard)
                except Exception as exc:  # startup failures: a process not ready, the hub unreachable, ...
                    log.debug("run failed", exc_info=True)
                    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                    self.problems.append(f"startup failed: {message}{self._last_words()}")
                    outcome = Outcome.ERROR
                finally:
                    self.phase = "stopping"
                    leftover = await self._stop(dashboard)
        finally:
            self._unlog(log_handler)
        try:
            return self._finish(outcome, leftover)
        finally:
            if self.pg is not None:
                await asyncio.to_thread(self.pg.stop)

    async def _startup(self) -> asyncio.Task | None:
        s = self.scenario
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
        return dashboard

    def _unlog(self, handler: logging.Handler) -> None:
        logger = logging.getLogger("agentnet")
        logger.removeHandler(handler)
        logger.setLevel(self._saved_logging[0])
        logger.propagate = self._saved_logging[1]
        handler.close()

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

    async def _run(self, dashboard: asyncio.Task | None) -> Outcome:
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
                return Outcome.INTERRUPTED
            if not startup.done() and self._time_left() == 0:
                startup.cancel()
                self.problems.append(f"not started within {within:g} s")
                return Outcome.FAILED
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
        verdict: Outcome | None = None  # PASSED or FAILED once expect is decided
        ended = Outcome.STOPPED if s.expect is None else Outcome.INTERRUPTED  # what a stop before a verdict means
        while True:
            self.checks = self.evaluate()
            met = s.expect is not None and self.timeline_done() and all(c.ok for c in self.checks)
            if met and verdict is None:
                verdict = Outcome.PASSED
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
                    return Outcome.FINISHED
                verdict = Outcome.FAILED
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

    # ------------------------------------------------------------------ files


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
