"""A small agent network for end-to-end tests: a hub, agent processes, and `agentnet ask`.

Built on `procs` (which starts every child in its own session and proves it gone afterwards);
this adds only what agent tests need: agents with brains, their processed-logs, and `ask`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from .procs import HubProc, Procs, read_jsonl, wait_until

AGENTNET = [sys.executable, "-m", "agentnet.cli"]


class Net:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs = Procs(tmp)
        self.hub: HubProc | None = None

    @property
    def url(self) -> str:
        assert self.hub is not None, "start_hub() first"
        return self.hub.url

    def start_hub(self, **flags: Any) -> None:
        extra = [arg for key, value in flags.items() for arg in (f"--{key.replace('_', '-')}", str(value))]
        self.hub = HubProc(self.procs, self.tmp / "hub.db", extra).start()

    def wait_connected(self, count: int, timeout: float = 15) -> None:
        assert self.hub is not None
        wait_until(f"{count} agents connected", lambda: (self.hub.health() or {}).get("agents", 0) >= count, timeout)

    def agent(
        self, name: str, brain: str = "echo", options: dict | None = None, env: dict | None = None
    ) -> subprocess.Popen:
        state = self.tmp / "agents" / name
        args = [*AGENTNET, "agent", "--name", name, "--hub", self.url, "--brain", brain, "--state-dir", str(state)]
        if options:
            args += ["--options", orjson.dumps(options).decode()]
        return self.procs.spawn(name, args, env).popen

    def processed(self, name: str) -> list[dict]:
        return read_jsonl(self.tmp / "agents" / name / "processed.jsonl")

    def ask(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*AGENTNET, "ask", "--hub", self.url, *args], capture_output=True, text=True, timeout=timeout
        )

    def log(self, name: str) -> str:
        """The log of the latest process started under `name`."""
        for proc in reversed(self.procs.started):
            if proc.name == name:
                return proc.log()
        return ""

    def close(self) -> None:
        self.procs.close()
