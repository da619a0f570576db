"""`agentnet up` end to end: real hub and agent processes on 127.0.0.1, port 0.

Each test that starts a run proves afterwards that no process of it is left: every pid the
recording ever saw (hub and agents, across restarts) and the launcher itself are gone.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console

from agentnet.launcher.checker import check_run
from agentnet.launcher.runner import UpOptions, up
from agentnet.run import control
from agentnet.run.recording import RecordingReader
from agentnet.tui.model import DashboardModel
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
AGENTNET = [sys.executable, "-m", "agentnet.cli"]

LONG = """\
name: long
description: two agents and an open conversation, until stopped
agents:
  - name: alice
    brain: echo
  - name: bob
    brain: calc
    options: {think_time: 0.05}
    depends_on: [alice]
script:
  - {at: 0.1, action: open, channel: chat, type: conversation, from: alice, to: [bob], knobs: {max_turns: 2},
     text: "What is 6 times 7?"}
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_pids(run_dir: Path) -> set[int]:
    """Every pid the run started (from its recording) and the launcher's (unless it ran in this process)."""
    pids = {json.loads((run_dir / "run.json").read_text())["launcher_pid"]} - {os.getpid()}
    recording = run_dir / "recording.jsonl"
    if recording.exists():
        for line in recording.read_text().splitlines()[1:]:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if item["kind"] == "process" and item["data"].get("pid"):
                pids.add(item["data"]["pid"])
    return pids


def assert_all_gone(pids: set[int], timeout: float = 8.0) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(procs, timeout=timeout)
    survivors = [p.pid for p in left if alive(p.pid)]
    for pid in survivors:  # do not leak into the other tests, then fail
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes survived the run: {survivors}"


def the_run_dir(cwd: Path) -> Path:
    runs = sorted((cwd / ".agentnet" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def agentnet(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENTNET, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `agentnet up` in the background; whatever happens, nothing of it survives the test."""
    started: list[subprocess.Popen[str]] = []

    def launch(scenario: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*AGENTNET, "up", str(scenario), "--headless", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    runs = tmp_path / ".agentnet" / "runs"
    if runs.is_dir():
        for run_dir in runs.iterdir():
            assert_all_gone(run_pids(run_dir))


def wait_ready(run_dir: Path, names: tuple[str, ...], timeout: float = 30) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        try:
            answer = control.request(run_dir, {"op": "status"}, timeout=5)
        except control.ControlClientError:
            return None
        status = answer.get("status") or {}
        states = {p["name"]: p["state"] for p in status.get("processes", [])}
        return status if all(states.get(n) == "ready" for n in names) and status.get("phase") == "running" else None

    return wait_until(f"{', '.join(names)} ready", ready, timeout)


# --------------------------------------------------------------------------- the shipped scenarios


def test_consult_headless(tmp_path: Path) -> None:
    t = time.monotonic()
    result = agentnet("up", str(SCENARIOS / "consult.yaml"), "--headless", cwd=tmp_path)
    elapsed = time.monotonic() - t
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert elapsed < 20
    assert "agentnet up consult: PASSED" in out
    assert "q1 #3 bob: 132" in out
    assert "last turn bob: '132'" in out
    assert "✓ expect reply from bob in q1 matches" in out and "— '132'" in out
    assert "check: delivery invariants hold" in out
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    for name in ("hub.sqlite3", "logs/hub.log", "logs/alice.log", "logs/bob.log", "agents/bob/processed.jsonl",
                 "recording.jsonl", "summary.json", "run.json", "scenario.yaml", "launcher.log"):  # fmt: skip
        assert (run_dir / name).exists(), name
    assert not (run_dir / "control.sock").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["outcome"] == "passed"
    assert summary["counts"]["posted"] == 4 and summary["counts"]["dead_lettered"] == 0
    assert summary["channels"][0]["state"] == "closed"
    assert check_run(run_dir).ok


def test_a_command_agent_is_supervised_and_ready_once_registered(tmp_path: Path) -> None:
    """`command:` runs any program as an agent (here the agent CLI itself, in the scenario's folder)."""
    scenario = tmp_path / "cmd.yaml"
    scenario.write_text(
        (SCENARIOS / "consult.yaml")
        .read_text()
        .replace(
            "    brain: calc\n    options: {think_time: 1.0}\n",
            f"    command: [{sys.executable}, -m, agentnet.cli, agent, --name, '{{name}}', --hub, '{{hub_url}}',"
            " --brain, calc, --state-dir, '{run_dir}/agents/{name}']\n",
        )
    )
    assert "command:" in scenario.read_text()
    result = agentnet("up", str(scenario), "--headless", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentnet up consult: PASSED" in result.stdout
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    assert check_run(run_dir).ok


def test_chaos_headless_applies_every_fault(tmp_path: Path) -> None:
    result = agentnet("up", str(SCENARIOS / "chaos.yaml"), "--headless", cwd=tmp_path, timeout=90)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    faults = summary["faults"]
    assert [f["action"] for f in faults] == ["kill", "pause", "disconnect", "resume", "restart-hub"]
    assert all(f["ok"] for f in faults), faults
    assert all(f["late"] < 1.0 for f in faults), faults  # on schedule
    assert summary["counts"]["redelivered"] > 0
    assert summary["counts"]["acked"] >= 3000 and summary["counts"]["dead_lettered"] == 0
    assert "✓ fault restart-hub at 13 s" in out and "redelivered " in out
    for caption in ("consumer-1 is killed (SIGKILL)", "the hub restarts"):
        assert caption in out
    procs = {p["name"]: p for p in summary["processes"]}
    assert procs["consumer-1"]["restarts"] == 1  # the policy restarted it after the kill
    # after restart-hub the dashboard's log says each agent came back, whether it reconnected
    # before the launcher's observer did (said from the snapshot) or after (its own event)
    model = DashboardModel()
    for recorded in RecordingReader(run_dir / "recording.jsonl"):
        model.apply(recorded.item)
    hub = model.processes["hub"]
    assert (hub.fault_restarts, hub.operator_restarts) == (1, 0)  # the restarts cell: `0+1 fault`, not `you`
    log = [line.text for line in model.log]
    after = log[next(i for i, text in enumerate(log) if text.startswith("fault: restart-hub")) :]
    for name in ("producer", "consumer-1", "consumer-2"):
        assert any(text.startswith(f"{name} reconnected (session") for text in after), (name, after)
    checked = agentnet("check", str(run_dir), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout
    assert "PASS" in checked.stdout


def test_failover_scenario_with_a_kill_and_a_planned_handover(tmp_path: Path) -> None:
    """The shipped failover scenario, shortened, with the `failover` fault (a planned handover) in
    place of the freeze (tests/e2e/test_failover.py freezes hubs): two hubs on the launcher's own
    PostgreSQL, the active one SIGKILLed, then the next one handed over; the run passes `check`."""
    text = (SCENARIOS / "failover.yaml").read_text()
    text = text.replace("count: 1500", "count: 500").replace("within: 90", "within: 60")
    text = (
        text[: text.index("faults:")]
        + (
            "faults:\n"
            "  - at: 2\n    action: kill-hub\n"
            "  - at: 4.5\n    action: failover\n"
            "    caption: a planned handover\n"
        )
        + text[text.index("expect:") :]
    )
    text = text.replace("min_delivered: 1500", "min_delivered: 500")
    scenario = tmp_path / "failover.yaml"
    scenario.write_text(text)
    result = agentnet("up", str(scenario), "--headless", cwd=tmp_path, timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(f["action"], f["ok"]) for f in summary["faults"]] == [("kill-hub", True), ("failover", True)]
    assert summary["counts"]["dead_lettered"] == 0 and summary["counts"]["acked"] >= 500
    assert out.count("failover: ") >= 2, out  # each takeover said in the log
    try:
        checked = agentnet("check", str(run_dir), cwd=tmp_path)  # starts the run's PostgreSQL again to read it
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "PASS" in checked.stdout and "postgresql-local:" in checked.stdout
    finally:  # pytest's tmp dir is root-only, so the cluster was kept in a temp dir named in pg/WHERE
        where = run_dir / "pg" / "WHERE"
        if where.exists():
            shutil.rmtree(where.read_text().strip(), ignore_errors=True)


# --------------------------------------------------------------------------- configuration errors


def _in_process_up(path: Path) -> tuple[int, str]:
    console = Console(file=io.StringIO(), width=200)
    return up(UpOptions(path=path, headless=True, console=console)), console.file.getvalue()  # type: ignore[attr-defined]


BROKEN = {
    "yaml": ("name: x\nagents: [\n", "x.yaml:3:1: YAML syntax error"),
    "brain": (
        "name: x\nagents:\n  - name: bob\n    brain: oracle\n",
        "x.yaml:4: agents[0].brain: unknown brain 'oracle'",
    ),
    "missing": ("name: x\nagents:\n  - name: bob\n", "x.yaml:3: agents[0].brain: missing required key"),
    "duplicate": (
        "name: x\nagents:\n  - {name: bob, brain: echo}\n  - {name: bob, brain: calc}\n",
        "x.yaml:4: agents[1].name: duplicate agent name 'bob' (first at line 3)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_scenario_is_one_line_and_exit_2(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = BROKEN[case]
    monkeypatch.chdir(tmp_path)
    Path("x.yaml").write_text(text)
    before = {child.pid for child in psutil.Process().children()}  # e.g. a session's PostgreSQL server
    code, _ = _in_process_up(Path("x.yaml"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("agentnet up: ") and expected in err, err
    assert not Path(".agentnet").exists()  # nothing started, not even a run directory
    assert {child.pid for child in psutil.Process().children()} <= before


def test_a_port_in_use_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    Path("x.yaml").write_text(
        f"name: x\nhub:\n  store: memory\n  port: {port}\nagents:\n  - {{name: bob, brain: echo}}\n"
    )
    try:
        code, _ = _in_process_up(Path("x.yaml"))
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"agentnet up: x.yaml:4: hub.port: port {port} on 127.0.0.1 is already in use (stop what uses it, " \
        "or set port: 0 for a free one)\n"  # fmt: skip
    assert not Path(".agentnet").exists()


def test_validate_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from agentnet.launcher.cli import register

    def main(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="agentnet")
        register(parser.add_subparsers())
        args = parser.parse_args(argv)
        return args.run(args)

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nagents:\n  - {name: bob, brian: echo}\n")
    assert main(["validate", str(SCENARIOS / "consult.yaml"), str(bad)]) == 2
    captured = capsys.readouterr()
    assert "consult.yaml: ok (scenario consult: 2 agent processes, 1 script step, 0 faults, expect)" in captured.out
    assert "bad.yaml:3: agents[0].brian: unknown key (did you mean 'brain'?)" in captured.err
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "agentnet scenario"


# --------------------------------------------------------------------------- controls from another terminal


def test_ctl_and_status_against_a_running_up_then_sigterm(tmp_path: Path, launched: Callable[..., Any]) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    proc = launched(scenario, "--timeout", "120")
    run_dir = wait_until("the control socket", lambda: control.find_running(tmp_path / ".agentnet" / "runs"), 20)
    status = wait_ready(run_dir, ("hub", "alice", "bob"))
    bob_pid = {p["name"]: p["pid"] for p in status["processes"]}["bob"]

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return agentnet("ctl", *args, cwd=tmp_path)

    def status_json() -> dict[str, Any]:
        result = agentnet("status", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def proc_state(status: dict[str, Any], name: str) -> dict[str, Any]:
        return next(p for p in status["processes"] if p["name"] == name)

    killed = ctl("kill", "bob")
    assert killed.returncode == 0 and killed.stdout == f"killed bob (pid {bob_pid})\n", killed.stderr
    bob = proc_state(status_json(), "bob")
    assert bob["state"] == "killed" and bob["reason"] == "killed by the operator (SIGKILL)"
    assert not alive(bob_pid)

    restarted = ctl("restart", "bob")
    assert restarted.returncode == 0 and restarted.stdout.endswith("), ready\n"), restarted.stdout
    bob = proc_state(status_json(), "bob")
    assert bob["state"] == "ready" and bob["pid"] != bob_pid and bob["restarts"] == 0

    dropped = ctl("disconnect", "bob")
    assert dropped.returncode == 0 and "dropped bob's connection" in dropped.stdout
    after = status_json()
    assert proc_state(after, "bob")["state"] == "ready" and proc_state(after, "bob")["pid"] == bob["pid"]
    wait_until(
        "bob to reconnect", lambda: control.request(run_dir, {"op": "status"})["status"]["connected"].get("bob"), 15
    )

    refused = ctl("pause", "nobody")
    assert refused.returncode == 1 and "no process named 'nobody'" in refused.stderr
    human = agentnet("status", cwd=tmp_path)
    assert human.returncode == 0 and "bob" in human.stdout and "ready" in human.stdout

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out  # no expect: a graceful stop is a normal end
    assert "SIGTERM: stopping gracefully" in out and "agentnet up long: STOPPED" in out
    assert "control kill bob (ctl): killed bob" in out
    assert "bob disconnected from the hub (4000" in out
    assert_all_gone(run_pids(run_dir))
    assert not (run_dir / "control.json").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"] == "stopped"
    # depends_on: bob was started only once alice was ready (connected and registered)
    order = [
        (item["data"]["name"], item["data"]["state"])
        for item in map(json.loads, (run_dir / "recording.jsonl").read_text().splitlines()[1:])
        if item["kind"] == "process" and item["data"]["state"] in ("starting", "ready")
    ]
    assert order.index(("alice", "ready")) < order.index(("bob", "starting"))
    assert order.index(("hub", "ready")) < order.index(("alice", "starting"))


def test_sigkill_of_the_launcher_leaves_nothing_behind(tmp_path: Path, launched: Callable[..., Any]) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    proc = launched(scenario, "--timeout", "120")
    run_dir = wait_until("the control socket", lambda: control.find_running(tmp_path / ".agentnet" / "runs"), 20)
    status = wait_ready(run_dir, ("hub", "alice", "bob"))
    paused = control.request(run_dir, {"op": "act", "verb": "pause", "target": "alice"})
    assert paused["ok"], paused  # a stopped child must not outlive the launcher either
    pids = {status["launcher_pid"], *(p["pid"] for p in status["processes"])}  # from the control API, not
    assert len(pids) == 4 and None not in pids, status  # the recording (flushed every 0.5 s at most)
    proc.kill()
    proc.communicate(timeout=10)
    assert_all_gone(pids, timeout=10)


# --------------------------------------------------------------------------- the dashboard hook


def test_the_dashboard_gets_the_feed_and_the_controls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` without --headless: the dashboard function gets every item and working controls (auth on)."""
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "consult.yaml"
    scenario.write_text(
        (SCENARIOS / "consult.yaml").read_text().replace("store: sqlite", "store: sqlite\n  auth: true")
    )
    seen: list[tuple[str, dict[str, Any]]] = []
    answers: list[str] = []

    async def dashboard(feed: Any, controls: Any, *, title: str, recording_path: Any) -> None:
        assert title.startswith("agentnet up consult — ")
        async for kind, data in feed:
            seen.append((kind, data))
            if kind == "caption" and data["text"].startswith("expect: all 3 checks hold"):
                answers.append(await controls.act("disconnect", "bob"))
                return  # the user quits

    console = Console(file=io.StringIO(), width=200)
    code = up(UpOptions(path=scenario, console=console, dashboard=dashboard, tty_check=False))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert code == 0, out
    assert answers == ["the hub dropped bob's connection; it will reconnect"]
    kinds = {kind for kind, _ in seen}
    assert {"snapshot", "event", "process", "caption"} <= kinds
    assert any(k == "process" and d["name"] == "bob" and d["state"] == "ready" for k, d in seen)
    run_dir = the_run_dir(tmp_path)
    assert (run_dir / "keys.yaml").stat().st_mode & 0o777 == 0o600
    assert "agentnet up consult: PASSED" in out
    assert_all_gone(run_pids(run_dir))


def test_a_dashboard_that_fails_at_once_fails_the_run_and_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard is injected by the cli (Textual is a dependency: there is no headless fallback
    for a missing one); one that dies at start is a startup failure, said in one line."""
    monkeypatch.chdir(tmp_path)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the terminal went away")

    console = Console(file=io.StringIO(), width=200)
    code = up(UpOptions(path=SCENARIOS / "consult.yaml", console=console, dashboard=broken, tty_check=False))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert code == 1, out
    assert "startup failed: the terminal went away" in out
    assert_all_gone(run_pids(the_run_dir(tmp_path)))


def test_an_agent_that_cannot_start_fails_the_run_with_its_last_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(
        "name: broken\nagents:\n  - {name: alice, brain: echo}\n"
        "  - {name: bob, brain: calc, restart: 'no', env: {PYTHONHOME: /nonexistent}}\n"
    )
    console = Console(file=io.StringIO(), width=200)
    code = up(UpOptions(path=scenario, headless=True, console=console))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert code == 1, out
    assert "startup failed: bob crashed before it was ready (exit code 1)" in out
    assert "bob: " in out.split("startup failed:")[1]  # the last line of bob's log, e.g. a Python fatal error
    assert_all_gone(run_pids(the_run_dir(tmp_path)))


def test_status_outside_a_run(tmp_path: Path) -> None:
    result = agentnet("status", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "agentnet status: no running 'agentnet up' found under .agentnet/runs/ (start one, " \
        "or name its run directory with --run)\n"  # fmt: skip
