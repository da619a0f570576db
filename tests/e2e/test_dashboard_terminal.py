"""The real dashboard in a real terminal (tmux): what a newcomer sees and types.

Each test runs `agentnet ...` in a private tmux server at a fixed size, waits for screen content
with a deadline, presses keys, and proves at the end that every process it started is gone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import REPO, HubProc, Procs
from .term import Term

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

AGENTNET = [sys.executable, "-m", "agentnet.cli"]


@pytest.fixture
def terms() -> Iterator[list[Term]]:
    started: list[Term] = []
    try:
        yield started
    finally:
        for term in started:
            term.close()


def test_tui_url_attaches_to_a_hand_started_hub_and_shows_what_happens(
    procs: Procs, terms: list[Term], tmp_path: Path
) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    bob = procs.spawn(
        "bob", [*AGENTNET, "agent", "--name", "bob", "--brain", "calc", "--hub", hub.url, "--state-dir", str(tmp_path)]
    )
    term = Term([*AGENTNET, "tui", hub.url], width=80, height=24)  # the smallest usual terminal
    terms.append(term.start())
    term.wait_for("READ-ONLY")
    term.wait_for(lambda s: "bob" in s and "connected" in s)
    ask = subprocess.run(
        [*AGENTNET, "ask", "--hub", hub.url, "--as", "alice", "--to", "bob", "What is 12 times 11?"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert ask.returncode == 0 and ask.stdout.strip() == "132", ask
    # the WAL stream shows the question and the answer, and the event log is there too, at 80x24
    screen = term.wait_for(lambda s: "alice→ bob✓ What is 12 times 11?" in s and "bob→ alice✓ 132" in s)
    assert "event log" in screen and "Traceback" not in screen
    footer = screen.rstrip("\n").splitlines()[-1]
    assert "? help" in footer and "q quit" in footer and "t target" in footer
    # the hub restarts: the log says the feed went, came back, and bob's reconnect either way
    hub.kill()
    term.wait_for("feed reconnecting")
    hub.start()
    term.wait_for(lambda s: "feed connected ag" in s and "bob reconnected" in s)  # lines end in … at 80
    term.press("q")
    assert term.wait_exit() == 0
    bob.terminate()


def pick(term: Term, name: str) -> None:
    """Press t until the control target is `name` (the toast says which one it is)."""
    for _ in range(6):
        term.press("t")
        try:
            term.wait_for(f"control target: {name}", timeout=5)
            return
        except AssertionError:
            continue
    raise AssertionError(f"t never selected {name}:\n{term.screen()}")


def test_up_consult_kill_and_restart_bob_shows_the_replay(terms: list[Term], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    term = Term([*AGENTNET, "up", "scenarios/consult.yaml", "--run-dir", str(run_dir)], width=160, height=45)
    terms.append(term.start())
    term.wait_for("alice keeps asking bob")  # the live questions have started, with what to try
    term.wait_for("What is 2 times 11?")
    pick(term, "bob")
    term.press("p")  # paused: what the hub delivers now stays unacked
    term.wait_for(lambda s: "bob is paused" in s and "alice→ bob→" in s)
    term.press("k")
    term.wait_for("Kill bob with SIGKILL?")
    term.press("y")
    term.wait_for("bob was killed (SIGKILL) by you")
    term.press("r")
    # the caption comes with the control's answer, which may arrive after the replay is on screen
    term.wait_for(lambda s: "↻" in s and "replay to bob done" in s and "bob is back" in s)
    # asking from another terminal during the run: under its own name, never replacing alice
    url = f"ws://127.0.0.1:{(run_dir / 'hub.port').read_text().strip()}/v1"
    ask = [*AGENTNET, "ask", "--hub", url, "--to", "bob", "What is 12 times 11?"]
    answer = subprocess.run(ask, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert (answer.returncode, answer.stdout) == (0, "132\n"), answer
    refused = subprocess.run([*ask, "--as", "alice"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode == 1 and "alice is connected" in refused.stderr, refused
    term.press("q")  # processes run: q asks first
    term.wait_for("Quit and stop the run?")
    term.press("y")
    assert term.wait_exit() == 0
    assert "PASSED" in term.history(), term.history()


def test_up_at_80x24_shows_the_wal_and_ctrl_c_stops_the_run_gracefully(terms: list[Term], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    term = Term([*AGENTNET, "up", "scenarios/consult.yaml", "--run-dir", str(run_dir)], width=80, height=24)
    terms.append(term.start())
    # the smallest usual terminal: the WAL stream (questions and answers) and the event log on screen,
    # the scenario clock on the status line
    screen = term.wait_for(lambda s: "alice→ bob✓ What is" in s and "bob→ alice✓" in s and "event log" in s)
    assert " t+" in screen.splitlines()[0]
    term.press("C-c")  # the same graceful stop as headless: the summary follows
    assert term.wait_exit() == 0
    history = term.history()
    assert "PASSED" in history and "Traceback" not in history and "never awaited" not in history, history
