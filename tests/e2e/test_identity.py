"""Identities are protected: `ask` never replaces a connected agent by accident, and an agent process
that another one supersedes says why and exits non-zero (code 41)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentnet.protocol.errors import EXIT_SUPERSEDED

from .procs import REPO, HubProc, Procs, wait_until

AGENTNET = [sys.executable, "-m", "agentnet.cli"]


def ask(hub: HubProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTNET, "ask", "--hub", hub.url, *args], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def agent(procs: Procs, hub: HubProc, name: str, tmp_path: Path, n: int):
    state = tmp_path / f"{name}-{n}"
    return procs.spawn(
        f"{name}{n}",
        [*AGENTNET, "agent", "--name", name, "--brain", "calc", "--hub", hub.url, "--state-dir", str(state)],
    )


def test_ask_refuses_to_impersonate_and_a_superseded_agent_exits_saying_why(procs: Procs, tmp_path: Path) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    bob1 = agent(procs, hub, "bob", tmp_path, 1)
    # the default name asks; the answer comes from the running bob
    wait_until("bob answers", lambda: ask(hub, "--to", "bob", "--timeout", "5", "What is 2 times 3?").stdout == "6\n")
    refused = ask(hub, "--as", "bob", "--to", "bob", "What is 1 plus 1?")
    assert refused.returncode == 1
    assert "bob is connected" in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert bob1.alive()  # untouched
    bob2 = agent(procs, hub, "bob", tmp_path, 2)  # a second `agent --name bob` takes over ...
    code = wait_until("the first bob to exit", lambda: bob1.popen.poll() is not None and [bob1.popen.returncode])
    assert code == [EXIT_SUPERSEDED]  # ... and the first one says why and exits 41
    assert "another process connected as 'bob' and took over this name" in bob1.log()
    assert ask(hub, "--to", "bob", "What is 3 times 3?").stdout == "9\n"  # the new bob answers
    bob2.terminate()
