"""The supervisor and the control API with real child processes (small Python scripts, no hub).

Every test that starts processes proves they are gone at the end (the `sup` fixture sweeps and
checks with psutil).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentnet.launcher.control import ControlServer, LauncherControls, socket_path_for
from agentnet.launcher.supervisor import (
    RUN_ID_ENV,
    ProcessSpec,
    ProcState,
    RestartPolicy,
    Supervisor,
    SupervisorError,
)
from agentnet.run import control
from agentnet.run.control import ControlError
from tests.waiting import await_until

FAST = RestartPolicy("on-failure", initial=0.05, max=0.2, factor=2, jitter=0, max_restarts=3)

SLEEPER = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(120)
"""
STUBBORN = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(120)
"""
SPAWNER = """
import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=%s)
pathlib.Path(sys.argv[1] + ".tmp").write_text(str(child.pid))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])  # atomic: the probe sees the whole pid or nothing
time.sleep(120)
"""


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Harness:
    def __init__(self, tmp: Path, sup: Supervisor, events: list[dict[str, Any]]) -> None:
        self.tmp = tmp
        self.sup = sup
        self.events = events
        self.pids: set[int] = set()

    def add(
        self, name: str, script: str, *, policy: RestartPolicy = FAST, probe: bool = True, args: tuple[str, ...] = ()
    ) -> Path:
        marker = self.tmp / f"{name}.marker"
        path = self.tmp / f"{name}.py"
        path.write_text(textwrap.dedent(script))

        async def wait_marker(p: Any) -> None:
            while not marker.exists():
                await asyncio.sleep(0.01)

        def forget() -> None:
            marker.unlink(missing_ok=True)

        spec = ProcessSpec(
            name,
            "agent",
            lambda: [sys.executable, str(path), str(marker), *args],
            self.tmp / "logs" / f"{name}.log",
            policy=policy,
            probe=wait_marker if probe else None,
            before_start=forget,
        )
        self.sup.add(spec)
        return marker

    async def start(self, name: str) -> int:
        p = await self.sup.start(name)
        assert p.pid is not None
        self.pids.add(p.pid)
        return p.pid

    def states(self, name: str) -> list[str]:
        return [e["state"] for e in self.events if e["name"] == name]

    def track(self) -> None:
        for e in self.events:
            if e.get("pid"):
                self.pids.add(e["pid"])


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    events: list[dict[str, Any]] = []
    sup = Supervisor(run_id=f"test-{tmp_path.name}-{os.getpid()}", on_event=events.append, stop_timeout=2.0)
    harness = Harness(tmp_path, sup, events)
    try:
        yield harness
    finally:
        harness.track()
        await sup.shutdown(timeout=1.0)
        _, left = psutil.wait_procs([psutil.Process(p) for p in harness.pids if alive(p)], timeout=5)
        assert not [p.pid for p in left if alive(p.pid)], "processes survived the test"


# --------------------------------------------------------------------------- states and the policy


async def test_start_ready_stop(h: Harness) -> None:
    h.add("a", SLEEPER, policy=RestartPolicy("always", initial=0.05))
    pid = await h.start("a")
    await h.sup.wait_ready("a", 10)
    p = h.sup.process("a")
    assert p.state is ProcState.READY and p.reason == "healthy"
    assert os.getpgid(pid) == pid  # its own process group
    assert psutil.Process(pid).environ()[RUN_ID_ENV] == h.sup.run_id
    await h.sup.stop("a")
    assert p.state is ProcState.EXITED
    assert "stopped by the operator (SIGTERM)" in p.reason
    assert p.backoff_task is None  # an operator's stop is never restarted, even with restart: always
    assert not alive(pid)
    assert h.states("a") == ["pending", "starting", "ready", "exited"]
    info = p.info()
    assert info["kind"] == "process" and info["role"] == "agent" and info["exit_code"] == -signal.SIGTERM
    assert info["started_at"].endswith("Z")


async def test_a_crash_is_restarted_with_backoff_until_max_restarts(h: Harness) -> None:
    h.add("c", "import sys; sys.exit(3)", probe=False, policy=FAST)
    await h.start("c")
    p = h.sup.process("c")
    await await_until("giving up", lambda: p.state is ProcState.CRASHED and "gave up" in p.reason, 10.0)
    assert p.restarts == 3
    assert p.exit_code == 3
    assert "exit code 3; gave up after 3 restarts" in p.reason
    states = h.states("c")
    assert states.count("starting") == 4 and states.count("backoff") == 3
    backoffs = [e["reason"] for e in h.events if e["state"] == "backoff"]
    assert backoffs[0] == "exit code 3; restarting in 0.1 s (restart 1 of 3)"
    assert backoffs[2].endswith("(restart 3 of 3)")
    assert p.last_restart_at is not None
    with pytest.raises(SupervisorError, match="crashed before it was ready"):
        await h.sup.wait_ready("c", 5)


async def test_restart_policy_no_and_clean_exits(h: Harness) -> None:
    h.add("once", "import sys; sys.exit(0)", probe=False, policy=RestartPolicy("on-failure", initial=0.05))
    h.add("never", "import sys; sys.exit(1)", probe=False, policy=RestartPolicy("no"))
    h.add("loop", "import sys; sys.exit(0)", probe=False, policy=RestartPolicy("always", initial=0.05, max_restarts=1))
    for name in ("once", "never", "loop"):
        await h.start(name)
    once, never, loop = (h.sup.process(n) for n in ("once", "never", "loop"))
    await await_until(
        "once exited, never crashed", lambda: once.state is ProcState.EXITED and never.state is ProcState.CRASHED, 10.0
    )
    await await_until(
        "loop to restart once, then give up",
        lambda: loop.restarts == 1 and loop.state is ProcState.EXITED and "gave up" in loop.reason,
        10.0,
    )
    assert once.reason == "exited on its own (exit code 0)" and once.backoff_task is None
    assert never.reason == "exit code 1" and never.backoff_task is None


async def test_operator_kill_is_final_a_fault_kill_is_a_crash(h: Harness) -> None:
    h.add("a", SLEEPER)
    first = await h.start("a")
    await h.sup.wait_ready("a", 10)
    p = h.sup.process("a")
    await h.sup.kill("a", fault=True)
    assert p.reason.startswith("killed by a fault (SIGKILL); restarting in")
    assert p.state is ProcState.BACKOFF
    await h.sup.wait_ready("a", 10)  # the policy brought it back
    second = p.pid
    assert second != first and p.restarts == 1
    assert "restart 1 by policy after: killed by a fault (SIGKILL)" in [e["reason"] for e in h.events][-2]
    h.pids.add(second)
    await h.sup.kill("a")
    assert p.state is ProcState.KILLED and p.reason == "killed by the operator (SIGKILL)"
    assert p.backoff_task is None and not alive(second)
    assert p.exit_code == -signal.SIGKILL
    with pytest.raises(SupervisorError, match="not running"):
        await h.sup.kill("a")


async def test_an_operator_kill_cancels_a_pending_restart(h: Harness) -> None:
    h.add("c", "import sys; sys.exit(2)", probe=False, policy=RestartPolicy("on-failure", initial=30))
    await h.start("c")
    p = h.sup.process("c")
    await await_until("a backoff", lambda: p.state is ProcState.BACKOFF, 10.0)
    await h.sup.kill("c")
    assert p.state is ProcState.KILLED and "while waiting to restart" in p.reason
    assert p.backoff_task is None


async def test_stop_escalates_to_sigkill(h: Harness) -> None:
    h.sup.stop_timeout = 0.5
    h.add("s", STUBBORN)
    pid = await h.start("s")
    await h.sup.wait_ready("s", 10)
    t = time.monotonic()
    await h.sup.stop("s")
    assert 0.4 < time.monotonic() - t < 5
    p = h.sup.process("s")
    assert p.state is ProcState.EXITED
    assert "SIGKILL after 0.5 s" in p.reason and "killed by SIGKILL" in p.reason
    assert not alive(pid)


async def test_pause_resume_and_stop_while_paused(h: Harness) -> None:
    h.add("a", SLEEPER)
    pid = await h.start("a")
    await h.sup.wait_ready("a", 10)
    await h.sup.pause("a")
    p = h.sup.process("a")
    assert p.state is ProcState.PAUSED
    await await_until("SIGSTOP", lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 10.0)
    with pytest.raises(SupervisorError, match="already paused"):
        await h.sup.pause("a")
    await h.sup.resume("a")
    assert p.state is ProcState.READY
    await await_until("SIGCONT", lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, 10.0)
    await h.sup.pause("a")
    await h.sup.stop("a")  # SIGTERM, then SIGCONT so the stopped process acts on it: no SIGKILL needed
    assert p.state is ProcState.EXITED and "SIGKILL" not in p.reason


async def test_restart_is_not_counted_and_starts_a_stopped_process(h: Harness) -> None:
    h.add("a", SLEEPER)
    first = await h.start("a")
    await h.sup.wait_ready("a", 10)
    p = await h.sup.restart("a")
    h.pids.add(p.pid)
    await h.sup.wait_ready("a", 10)
    assert p.pid != first and not alive(first)
    assert p.restarts == 0 and p.last_restart_at is not None
    assert p.operator_restarts == 1 and p.info()["operator_restarts"] == 1  # the dashboard shows `0+1 you`
    assert p.reason == "healthy"
    await h.sup.stop("a")
    p = await h.sup.restart("a")  # restart also starts what is not running
    h.pids.add(p.pid)
    await h.sup.wait_ready("a", 10)


async def test_a_kill_reaches_the_whole_process_group(h: Harness) -> None:
    marker = h.add("g", SPAWNER % "False")
    await h.start("g")
    await h.sup.wait_ready("g", 10)
    grandchild = int(marker.read_text())
    h.pids.add(grandchild)
    assert os.getpgid(grandchild) == h.sup.process("g").pid
    await h.sup.kill("g")
    await await_until("the grandchild to die with its group", lambda: not alive(grandchild), 5)


async def test_the_sweep_finds_what_left_the_group(h: Harness) -> None:
    marker = h.add("e", SPAWNER % "True")  # the grandchild escapes into a session of its own
    await h.start("e")
    await h.sup.wait_ready("e", 10)
    escaped = int(marker.read_text())
    h.pids.add(escaped)
    assert os.getpgid(escaped) == escaped
    swept = await h.sup.shutdown()
    assert escaped in swept  # found by the run id in its environment
    assert not alive(escaped)
    assert h.sup.process("e").state is ProcState.EXITED


async def test_wait_ready_times_out_with_the_reason(h: Harness) -> None:
    h.add("slow", SLEEPER, probe=False)  # nobody will call mark_ready
    await h.start("slow")
    with pytest.raises(SupervisorError, match=r"slow not ready within 0.2 s \(started\)"):
        await h.sup.wait_ready("slow", 0.2)
    assert not h.sup.mark_ready("slow", pid=1)  # a stale pid is not this process
    assert h.sup.mark_ready("slow", pid=h.sup.process("slow").pid, reason="registered with the hub")
    await h.sup.wait_ready("slow", 1)


def test_backoff_delays() -> None:
    import random

    policy = RestartPolicy(initial=0.5, max=4, factor=2, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    jittered = RestartPolicy(initial=1, max=10, factor=1, jitter=0.5)
    delays = {jittered.delay(1, random.Random(seed)) for seed in range(20)}
    assert all(1.0 <= d <= 1.5 for d in delays) and len(delays) > 10


# --------------------------------------------------------------------------- control API


class FakeHub:
    def __init__(self) -> None:
        self.disconnected: list[str] = []
        self.restarts = 0
        self.by_fault: list[bool] = []

    async def disconnect(self, name: str) -> None:
        if name == "ghost":
            raise RuntimeError("ghost is not connected")
        self.disconnected.append(name)

    async def restart_hub(self, reason: str, by_fault: bool = False) -> str:
        self.restarts += 1
        self.by_fault.append(by_fault)
        return f"hub restarted ({reason})"


def controls_for(h: Harness, hub: FakeHub, actions: list[dict[str, Any]] | None = None) -> LauncherControls:
    replicas = {"worker": ("worker-1", "worker-2")}
    return LauncherControls(
        h.sup,
        disconnect=hub.disconnect,
        restart_hub=hub.restart_hub,
        resolve=lambda name: replicas.get(name, (name,)),
        on_action=None if actions is None else actions.append,
    )


async def test_controls_act_on_processes(h: Harness) -> None:
    for name in ("worker-1", "worker-2", "ghost"):
        h.add(name, SLEEPER)
        await h.start(name)
    for name in ("worker-1", "worker-2", "ghost"):
        await h.sup.wait_ready(name, 10)
    hub = FakeHub()
    actions: list[dict[str, Any]] = []
    c = controls_for(h, hub, actions)
    assert (await c.act("pause", "worker")).startswith("paused worker-1 (pid")  # a replicated name: both
    assert h.sup.process("worker-2").state is ProcState.PAUSED
    assert "resumed worker-2" in await c.act("resume", "worker")
    assert await c.act("disconnect", "worker-1") == "the hub dropped worker-1's connection; it will reconnect"
    assert hub.disconnected == ["worker-1"]
    with pytest.raises(ControlError, match="disconnect ghost: ghost is not connected"):
        await c.act("disconnect", "ghost")
    assert await c.act("restart-hub", None) == "hub restarted (restarted by the operator)"
    assert await c.act("restart-hub", None, source="fault") == "hub restarted (restarted by a fault)"
    assert hub.by_fault == [False, True]
    message = await c.act("restart", "worker-2")
    assert message.startswith("restarted worker-2 (pid") and message.endswith("), ready")
    await c.act("restart", "worker-2", source="fault")
    w2 = h.sup.process("worker-2")  # each restart counted as who asked for it: the dashboard shows `0+1 you+1 fault`
    assert (w2.restarts, w2.operator_restarts, w2.fault_restarts) == (0, 1, 1)
    assert w2.info()["fault_restarts"] == 1
    h.track()
    assert (await c.act("stop", "worker-2")).startswith("stopped worker-2")
    assert (await c.act("kill", "ghost")).startswith("killed ghost (pid")
    assert h.sup.process("ghost").backoff_task is None
    assert "restarting in" in await c.act("kill", "worker-1", source="fault")  # a fault kill is a crash
    with pytest.raises(ControlError, match="no process named 'nobody'"):
        await c.act("kill", "nobody")
    with pytest.raises(ControlError, match="unknown verb 'explode'"):
        await c.act("explode", "ghost")
    with pytest.raises(ControlError, match="needs a target"):
        await c.act("kill", None)
    with pytest.raises(ControlError, match="is not running"):
        await c.act("pause", "ghost")
    assert [a["verb"] for a in actions if a["error"]] == ["disconnect", "kill", "explode", "kill", "pause"]
    assert actions[0]["origin"] == "dashboard" and actions[0]["kind"] == "control"


async def test_control_socket_round_trip(h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h.add("bob", SLEEPER)
    await h.start("bob")
    await h.sup.wait_ready("bob", 10)
    hub = FakeHub()
    run_dir = tmp_path / ".agentnet" / "runs" / "demo-1"
    run_dir.mkdir(parents=True)
    server = ControlServer(controls_for(h, hub), run_dir)
    await server.start()
    try:
        assert (run_dir / "control.sock").exists()
        assert oct((run_dir / "control.sock").stat().st_mode & 0o777) == "0o600"
        monkeypatch.chdir(tmp_path)
        assert control.find_running() == Path(".agentnet/runs/demo-1")
        status = await control.arequest(run_dir, {"op": "status"})
        assert status["ok"] and [p["name"] for p in status["status"]["processes"]] == ["bob"]
        answer = await control.arequest(run_dir, {"op": "act", "verb": "disconnect", "target": "bob"})
        assert answer == {"ok": True, "message": "the hub dropped bob's connection; it will reconnect"}
        answer = await control.arequest(run_dir, {"op": "act", "verb": "kill", "target": "bobby"})
        assert answer["ok"] is False and "no process named 'bobby'" in answer["error"]
        assert (await control.arequest(run_dir, {"op": "dance"}))["error"].startswith("unknown op")
        killed = await control.arequest(run_dir, {"op": "act", "verb": "kill", "target": "bob"})
        assert killed["ok"] and h.sup.process("bob").state is ProcState.KILLED
        # many lines on one connection
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"op": "ping"}\nnot json\n')
        await writer.drain()
        assert json.loads(await reader.readline()) == {"ok": True}
        assert json.loads(await reader.readline())["error"].startswith("bad request")
        writer.close()
    finally:
        await server.close()
    assert not (run_dir / "control.sock").exists() and not (run_dir / "control.json").exists()
    with pytest.raises(control.ControlClientError, match="no running launcher there"):
        control.resolve_run_dir(run_dir)


def test_find_running_ignores_dead_launchers(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name, pid in (("old", 2**22 + 12345), ("live", os.getpid())):
        (root / name).mkdir(parents=True)
        (root / name / "control.json").write_text(json.dumps({"socket": "x", "pid": pid, "started": 1}))
    assert control.find_running(root) == root / "live"
    assert control.read_control_file(root / "old") is None
    with pytest.raises(control.ControlClientError, match="no running 'agentnet up' found"):
        control.resolve_run_dir(None, tmp_path / "elsewhere")


def test_a_long_run_dir_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path_for(deep)
    assert len(str(path)) < 100 and path.name.startswith("agentnet-")
    assert socket_path_for(tmp_path) == tmp_path.resolve() / "control.sock"
