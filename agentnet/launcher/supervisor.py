"""The supervisor: child processes, their states, the restart policy and the stop sequence.

Each child runs in its own process group (so a signal reaches everything it started), with stdin
from /dev/null and stdout+stderr appended to its own log file in the run directory. The children
are started with `--exit-with-parent` (see `agentnet/child.py`), so they also go when the launcher dies
without a chance to stop them (SIGKILL). The groups stay in the launcher's session: when the
launcher dies, a group that holds a stopped (SIGSTOP'd) process becomes orphaned and the kernel
sends it SIGHUP + SIGCONT, so even a paused child does not outlive it.

States (`ProcState`), each with a human reason:

    pending   declared, not started yet (waiting for its dependencies)
    starting  the process runs; not ready yet
    ready     hub: /healthz answers; agent: the hub reports it connected and registered
    paused    SIGSTOP'd (resume with SIGCONT)
    exited    ended on purpose: exit code 0, or stopped (SIGTERM) by the operator or the shutdown
    crashed   ended on its own with a non-zero exit code or a signal
    killed    SIGKILL'd, by the operator (never restarted) or by a `kill` fault (a crash: policy applies)
    backoff   waiting to be restarted by the restart policy

Restart policy (per process): `no`, `on-failure` (a crash or a fault kill) or `always` (any end
that was not asked for), with a delay of min(max, initial * factor**(n-1)) plus up to `jitter` of
it before restart n, and at most `max_restarts` restarts. An operator's kill or stop never leads to
an automatic restart; an operator's restart does not count against `max_restarts`.

Readiness is decided outside: the hub's probe (`ProcessSpec.probe`) or the runner, which calls
`mark_ready` when the hub's observer feed shows the agent's registration with the child's pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from agentnet.protocol.errors import EXIT_SUPERSEDED
from agentnet.protocol.ids import utc_iso
from agentnet.protocol.vocab import ProcState

log = logging.getLogger("agentnet.launcher")

RUN_ID_ENV = "AGENTNET_RUN_ID"  # every child carries it: the final sweep finds stragglers by it


class SupervisorError(Exception):
    """A control the supervisor cannot carry out, or a process that did not become ready."""


@dataclass(frozen=True)
class RestartPolicy:
    mode: Literal["no", "on-failure", "always"] = "on-failure"
    initial: float = 0.5
    max: float = 10.0
    factor: float = 2.0
    jitter: float = 0.0  # fraction of the delay added at random (0..1)
    max_restarts: int | None = 5

    def delay(self, restart: int, rng: random.Random | None = None) -> float:
        """Seconds before restart number `restart` (1-based), jitter included."""
        base = min(self.max, self.initial * self.factor ** max(0, restart - 1))
        if self.jitter:
            base += base * self.jitter * (rng or random).random()
        return base

    def wants_restart(self, failed: bool) -> bool:
        return self.mode == "always" or (self.mode == "on-failure" and failed)


@dataclass
class ProcessSpec:
    """How to run one child. `command` is called at every (re)start, so it may change (hub port)."""

    name: str
    role: Literal["hub", "agent"]
    command: Callable[[], list[str]]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    depends_on: tuple[str, ...] = ()
    # Awaited after every spawn; returning marks the process ready (the hub's /healthz probe).
    probe: Callable[[Process], Awaitable[None]] | None = None
    before_start: Callable[[], None] | None = None  # e.g. remove a stale port file


@dataclass(eq=False)
class Process:
    """The runtime record of one child (one per name, across restarts)."""

    spec: ProcessSpec
    state: ProcState = ProcState.PENDING
    reason: str = "not started"
    pid: int | None = None
    restarts: int = 0  # automatic restarts (the policy's count)
    operator_restarts: int = 0  # restarts the operator asked for (not counted by the policy)
    fault_restarts: int = 0  # restarts a scenario's fault made (not counted by the policy either)
    started_at: float | None = None
    last_restart_at: float | None = None
    exit_code: int | None = None
    proc: asyncio.subprocess.Process | None = None
    intent: str | None = None  # what we asked of it: stop | kill | fault-kill | restart | shutdown
    intent_reason: str = ""
    paused_from: ProcState | None = None
    generation: int = 0  # bumped at every spawn
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    waiter: asyncio.Task | None = None
    backoff_task: asyncio.Task | None = None
    probe_task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def info(self) -> dict[str, Any]:
        """The process event the dashboard and the recording get (`kind: process`)."""
        return {
            "kind": "process",
            "at": utc_iso(),
            "name": self.name,
            "role": self.role,
            "pid": self.pid,
            "state": str(self.state),
            "reason": self.reason,
            "restarts": self.restarts,
            "operator_restarts": self.operator_restarts,
            "fault_restarts": self.fault_restarts,
            "started_at": utc_iso(self.started_at) if self.started_at else None,
            "last_restart_at": utc_iso(self.last_restart_at) if self.last_restart_at else None,
            "exit_code": self.exit_code,
        }


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Supervisor:
    """Starts, watches, signals and stops the children. One per run; call from the event loop.

    `on_event(process_event_dict)` is called at every state change.
    """

    def __init__(
        self,
        *,
        run_id: str,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        stop_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.run_id = run_id
        self.on_event = on_event
        self.stop_timeout = stop_timeout
        self.rng = rng or random.Random()
        self.processes: dict[str, Process] = {}
        self.closing = False  # set by shutdown: nothing restarts any more
        self._pgids: set[int] = set()

    # ------------------------------------------------------------------ declaration

    def add(self, spec: ProcessSpec) -> Process:
        if spec.name in self.processes:
            raise ValueError(f"duplicate process name {spec.name!r}")
        p = Process(spec)
        self.processes[spec.name] = p
        self._emit(p)
        return p

    def process(self, name: str) -> Process:
        """The process called `name`; SupervisorError naming the known ones if there is none."""
        try:
            return self.processes[name]
        except KeyError:
            known = ", ".join(self.processes) or "none"
            raise SupervisorError(f"no process named {name!r} (processes: {known})") from None

    def status(self) -> list[dict[str, Any]]:
        return [p.info() for p in self.processes.values()]

    def note(self, name: str, reason: str) -> None:
        """Change the reason shown for a process without changing its state (e.g. what it waits for)."""
        p = self.process(name)
        if p.reason != reason:
            self._set(p, p.state, reason)

    def _set(self, p: Process, state: ProcState, reason: str) -> None:
        p.state, p.reason = state, reason
        self._emit(p)

    def _emit(self, p: Process) -> None:
        if self.on_event is not None:
            try:
                self.on_event(p.info())
            except Exception:  # a listener's bug must not break supervision
                log.exception("process event listener failed")

    # ------------------------------------------------------------------ start

    async def start(self, name: str, reason: str = "started") -> Process:
        """Spawn the process (it must not be running). Returns once it is spawned, not ready."""
        p = self.process(name)
        if p.alive:
            raise SupervisorError(f"{name} is already running (pid {p.pid})")
        if self.closing:
            raise SupervisorError("the launcher is shutting down")
        self._cancel_backoff(p)
        spec = p.spec
        if spec.before_start is not None:
            spec.before_start()
        argv = spec.command()
        env = {**os.environ, **spec.env, RUN_ID_ENV: self.run_id, "PYTHONUNBUFFERED": "1"}
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as out:
            out.write(f"==== {utc_iso()} launcher: starting {name} ({reason})\n".encode())
            out.flush()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=spec.cwd,
                    process_group=0,  # its own group, in our session (see the module docstring)
                )
            except OSError as exc:
                why = f"{exc.strerror or exc}: {argv[0]}"  # e.g. a command agent's interpreter is not installed
                if spec.cwd is not None and not Path(argv[0]).is_absolute() and "/" in argv[0]:
                    why += f" (relative to {spec.cwd})"
                self._set(p, ProcState.CRASHED, f"cannot start: {why}")
                raise SupervisorError(f"cannot start {name}: {why}") from None
        p.proc, p.pid = proc, proc.pid
        self._pgids.add(proc.pid)
        p.generation += 1
        p.started_at = time.time()
        p.exit_code = None
        p.intent, p.intent_reason, p.paused_from = None, "", None
        p.ready.clear()
        p.ended.clear()
        self._set(p, ProcState.STARTING, reason)
        p.waiter = asyncio.create_task(self._watch(p, proc, p.generation), name=f"watch-{name}")
        if spec.probe is not None:
            p.probe_task = asyncio.create_task(self._run_probe(p, p.generation), name=f"probe-{name}")
        return p

    async def _run_probe(self, p: Process, generation: int) -> None:
        assert p.spec.probe is not None
        try:
            await p.spec.probe(p)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the process will be judged by its exit; say why it is not ready
            if p.generation == generation and p.state is ProcState.STARTING:
                self._set(p, ProcState.STARTING, f"not ready: {exc}")
            return
        if p.generation == generation:
            self.mark_ready(p.name, reason="healthy")

    def mark_ready(self, name: str, pid: int | None = None, reason: str = "ready") -> bool:
        """The process is ready (e.g. the hub saw it register). `pid`, if given, must be the current one."""
        p = self.processes.get(name)
        if p is None or not p.alive or (pid is not None and pid != p.pid):
            return False
        if p.state is ProcState.STARTING:
            self._set(p, ProcState.READY, reason)
        elif p.state is ProcState.PAUSED and p.paused_from is ProcState.STARTING:
            p.paused_from = ProcState.READY
        p.ready.set()
        return True

    async def wait_ready(self, name: str, timeout: float) -> None:
        """Wait until `name` is ready; SupervisorError if it ends for good or the time runs out."""
        p = self.process(name)
        deadline = time.monotonic() + timeout
        while not (p.ready.is_set() and p.alive):
            if p.state in (ProcState.EXITED, ProcState.KILLED) or (
                p.state is ProcState.CRASHED and p.backoff_task is None
            ):
                raise SupervisorError(f"{name} {p.state} before it was ready ({p.reason}); see {p.spec.log_path}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SupervisorError(f"{name} not ready within {timeout:g} s ({p.reason}); see {p.spec.log_path}")
            waiters = [asyncio.ensure_future(p.ready.wait()), asyncio.ensure_future(p.ended.wait())]
            try:
                await asyncio.wait(waiters, timeout=min(left, 0.5), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if p.ended.is_set() and not p.alive:
                await asyncio.sleep(0)  # let the exit handling set the state (backoff or final)

    # ------------------------------------------------------------------ exits and the restart policy

    async def _watch(self, p: Process, proc: asyncio.subprocess.Process, generation: int) -> None:
        returncode = await proc.wait()
        if p.generation != generation:
            return
        if p.probe_task is not None:
            p.probe_task.cancel()
            p.probe_task = None
        p.exit_code = returncode
        p.ready.clear()
        self._killpg(p, signal.SIGKILL)  # anything the leader left behind in its group
        how = describe_exit(returncode)
        intent, why = p.intent, p.intent_reason
        p.intent, p.intent_reason = None, ""
        failed = False
        if intent in ("stop", "shutdown", "restart"):
            self._set(p, ProcState.EXITED, f"{why} ({how})" if why else how)
        elif intent == "kill":
            self._set(p, ProcState.KILLED, why or "killed by the operator (SIGKILL)")
        elif intent == "fault-kill":
            self._set(p, ProcState.KILLED, why or "killed by a fault (SIGKILL)")
            failed = True
        elif returncode == 0:
            self._set(p, ProcState.EXITED, "exited on its own (exit code 0)")
        elif returncode == EXIT_SUPERSEDED and p.role == "agent":
            # another process connected with this name: restarting would only take the name back
            self._set(
                p, ProcState.EXITED, f"superseded: another process connected as {p.name} (exit code {EXIT_SUPERSEDED})"
            )
        else:
            self._set(p, ProcState.CRASHED, how)
            failed = True
        if intent not in ("stop", "shutdown", "restart", "kill") and not self.closing:
            self._maybe_restart(p, failed)
        p.ended.set()

    def _maybe_restart(self, p: Process, failed: bool) -> None:
        policy = p.spec.policy
        if not policy.wants_restart(failed):
            return
        if policy.max_restarts is not None and p.restarts >= policy.max_restarts:
            self._set(p, p.state, f"{p.reason}; gave up after {p.restarts} restarts (max_restarts)")
            return
        n = p.restarts + 1
        delay = policy.delay(n, self.rng)
        limit = f" of {policy.max_restarts}" if policy.max_restarts is not None else ""
        self._set(p, ProcState.BACKOFF, f"{p.reason}; restarting in {delay:.1f} s (restart {n}{limit})")
        p.backoff_task = asyncio.create_task(self._restart_later(p, n, delay, p.reason), name=f"backoff-{p.name}")

    async def _restart_later(self, p: Process, n: int, delay: float, why: str) -> None:
        await asyncio.sleep(delay)
        p.backoff_task = None
        if p.state is not ProcState.BACKOFF or self.closing:
            return
        p.restarts = n
        p.last_restart_at = time.time()
        try:
            await self.start(p.name, reason=f"restart {n} by policy after: {why.split(';')[0]}")
        except SupervisorError as exc:
            log.warning("%s", exc)

    def _cancel_backoff(self, p: Process) -> bool:
        if p.backoff_task is not None:
            p.backoff_task.cancel()
            p.backoff_task = None
            return True
        return False

    # ------------------------------------------------------------------ signals

    def _killpg(self, p: Process, sig: int) -> bool:
        if p.pid is None:
            return False
        try:
            os.killpg(p.pid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:  # the pgid was reused by someone else's process: not ours to touch
            return False

    def _signal_running(self, p: Process, sig: int) -> None:
        if not p.alive:
            raise SupervisorError(f"{p.name} is not running ({p.state}: {p.reason})")
        self._killpg(p, sig)

    async def kill(self, name: str, *, fault: bool = False, reason: str | None = None) -> Process:
        """SIGKILL the group. By the operator: never restarted. As a fault: a crash (policy applies)."""
        p = self.process(name)
        if not p.alive:
            if not fault and self._cancel_backoff(p):
                self._set(p, ProcState.KILLED, reason or "killed by the operator while waiting to restart")
                return p
            raise SupervisorError(f"{name} is not running ({p.state}: {p.reason})")
        p.intent = "fault-kill" if fault else "kill"
        p.intent_reason = reason or ("killed by a fault (SIGKILL)" if fault else "killed by the operator (SIGKILL)")
        self._signal_running(p, signal.SIGKILL)
        await self._wait_ended(p, self.stop_timeout)
        return p

    async def stop(self, name: str, *, reason: str = "stopped by the operator (SIGTERM)") -> Process:
        """SIGTERM, then SIGKILL after `stop_timeout`. Never restarted by the policy."""
        p = self.process(name)
        if not p.alive:
            if self._cancel_backoff(p) or p.state is ProcState.PENDING:
                self._set(p, ProcState.EXITED, reason.replace(" (SIGTERM)", "") + " (was not running)")
                return p
            raise SupervisorError(f"{name} is not running ({p.state}: {p.reason})")
        await self._terminate(p, "stop", reason)
        return p

    async def pause(self, name: str, reason: str = "paused (SIGSTOP)") -> Process:
        p = self.process(name)
        if p.state is ProcState.PAUSED:
            raise SupervisorError(f"{name} is already paused")
        self._signal_running(p, signal.SIGSTOP)
        p.paused_from = p.state
        self._set(p, ProcState.PAUSED, reason)
        return p

    async def resume(self, name: str, reason: str = "resumed (SIGCONT)") -> Process:
        p = self.process(name)
        if p.state is not ProcState.PAUSED:
            raise SupervisorError(f"{name} is not paused ({p.state})")
        self._signal_running(p, signal.SIGCONT)
        back = p.paused_from or ProcState.STARTING
        p.paused_from = None
        self._set(p, back, reason)
        return p

    async def restart(self, name: str, *, reason: str = "restarted by the operator", by_fault: bool = False) -> Process:
        """Stop it if it runs (SIGTERM, then SIGKILL), then start it again. Not counted as a restart
        by the policy, but as the operator's (or, `by_fault`, a scenario fault's); also starts a
        process that is not running."""
        p = self.process(name)
        self._cancel_backoff(p)
        if p.alive:
            await self._terminate(p, "restart", "restarting")
        p.last_restart_at = time.time()
        if by_fault:
            p.fault_restarts += 1
        else:
            p.operator_restarts += 1
        return await self.start(name, reason=reason)

    async def _terminate(self, p: Process, intent: str, reason: str, timeout: float | None = None) -> None:
        timeout = self.stop_timeout if timeout is None else timeout
        if p.intent != "kill":  # a forced shutdown's SIGKILL already decided how this ends
            p.intent, p.intent_reason = intent, reason
        self._killpg(p, signal.SIGTERM)
        if p.state is ProcState.PAUSED:
            self._killpg(p, signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
        if await self._wait_ended(p, timeout):
            return
        log.warning("%s did not exit within %.1f s of SIGTERM; sending SIGKILL", p.name, timeout)
        p.intent_reason = f"{reason}; SIGKILL after {timeout:g} s"
        self._killpg(p, signal.SIGKILL)
        await self._wait_ended(p, 5.0)

    async def _wait_ended(self, p: Process, timeout: float) -> bool:
        proc, waiter = p.proc, p.waiter
        if proc is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
                if waiter is not None:
                    await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ shutdown

    def begin_shutdown(self) -> None:
        """From now on nothing is restarted; pending restarts are cancelled."""
        self.closing = True
        for p in self.processes.values():
            if self._cancel_backoff(p):
                self._set(p, ProcState.EXITED, "not restarted: the launcher is shutting down")

    async def stop_all(self, names: Iterable[str], timeout: float | None = None) -> None:
        """Stop these processes in parallel (SIGTERM, SIGKILL after the timeout)."""
        self.begin_shutdown()
        batch = [self.processes[n] for n in names if n in self.processes and self.processes[n].alive]
        await asyncio.gather(*(self._terminate(p, "shutdown", "stopped by the launcher", timeout) for p in batch))

    async def shutdown(self, order: Iterable[Iterable[str]] = (), timeout: float | None = None) -> list[int]:
        """Stop everything: each group of names in parallel, groups in order (agents first, the hub
        last), then whatever still runs; then sweep. Returns the pids the sweep had to kill."""
        self.begin_shutdown()
        for names in order:
            await self.stop_all(names, timeout)
        await self.stop_all(list(self.processes), timeout)
        return self.sweep()

    def force_kill_all(self) -> list[int]:
        """SIGKILL every group now (the second Ctrl-C), then sweep. Synchronous: safe in any state."""
        self.closing = True
        for p in self.processes.values():
            self._cancel_backoff(p)
            if p.alive:
                p.intent, p.intent_reason = "kill", "killed: forced shutdown"
                self._killpg(p, signal.SIGKILL)
        return self.sweep()

    def sweep(self) -> list[int]:
        """SIGKILL any process left from this run: in one of our process groups, or carrying our
        run id in its environment. Returns their pids (normally none)."""
        me = os.getpid()
        victims: list[psutil.Process] = []
        for proc in psutil.process_iter():
            try:
                if proc.pid == me:
                    continue
                ours = os.getpgid(proc.pid) in self._pgids
                if not ours:
                    with contextlib.suppress(psutil.AccessDenied, psutil.ZombieProcess):
                        ours = proc.environ().get(RUN_ID_ENV) == self.run_id
                if ours and proc.status() != psutil.STATUS_ZOMBIE:
                    victims.append(proc)
            except (psutil.NoSuchProcess, ProcessLookupError, PermissionError, psutil.AccessDenied):
                continue
        for proc in victims:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                log.warning("sweep: killing leftover pid %d (%s)", proc.pid, " ".join(proc.cmdline()[:4]))
                proc.kill()
        if victims:
            psutil.wait_procs(victims, timeout=3)
        return [proc.pid for proc in victims]
