"""`agentnet hub --loop`: the hub runs on uvloop's event loop by default (when installed, as
uvicorn does) and on asyncio's with `--loop asyncio`; either way it serves agents. Every other
end-to-end test runs its hubs on the default, so this one keeps the fallback honest too."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import HubProc, Procs, wait_until
from .test_identity import agent, ask


@pytest.mark.parametrize(("loop", "runs_on"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_the_hub_serves_on_the_loop_it_was_given(procs: Procs, tmp_path: Path, loop: str, runs_on: str) -> None:
    hub = HubProc(procs, tmp_path / "hub.db", extra=["--loop", loop, "--log-level", "info"]).start()
    assert f"event loop: {runs_on}" in hub.proc.log()  # type: ignore[union-attr]
    bob = agent(procs, hub, "bob", tmp_path, 1)
    wait_until("bob answers", lambda: ask(hub, "--to", "bob", "--timeout", "5", "What is 6 times 7?").stdout == "42\n")
    bob.terminate()
    assert hub.terminate() == 0
