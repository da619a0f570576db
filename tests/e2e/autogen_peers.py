"""Real AutoGen 0.7.5 workers and the gateway as processes, for the gateway's end-to-end tests.

The workers run `agentnet/gateway/autogen/demo_worker.py` with `.venv-autogen`'s Python (made by
`make .venv-autogen/.stamp`, which `make test` depends on): unmodified `GrpcWorkerAgentRuntime`s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import REPO, HubProc, Proc, Procs, read_jsonl, wait_until

AUTOGEN_PYTHON = REPO / ".venv-autogen" / "bin" / "python"
DEMO_WORKER = REPO / "agentnet" / "gateway" / "autogen" / "demo_worker.py"


def require_autogen() -> None:
    assert AUTOGEN_PYTHON.exists(), f"{AUTOGEN_PYTHON} is missing: run `make .venv-autogen/.stamp` (make test does)"


@dataclass(eq=False)
class GatewayProc:
    """`agentnet gateway autogen --hub URL --port 0 --port-file F`, restartable on the same port."""

    procs: Procs
    hub_url: str
    extra: list[str] = field(default_factory=list)
    port: int | None = None
    proc: Proc | None = None
    generation: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> GatewayProc:
        self.generation += 1
        port_file = self.procs.workdir / f"gw-port.{self.generation}"
        args = [sys.executable, "-m", "agentnet.cli", "gateway", "autogen", "--hub", self.hub_url]
        args += ["--port", str(self.port or 0), "--port-file", str(port_file), "--log-level", "info", *self.extra]
        self.proc = proc = self.procs.spawn(f"gateway{self.generation}", args)

        def bound() -> int | None:
            if not proc.alive():
                raise AssertionError(f"gateway exited with {proc.popen.returncode}:\n{proc.log()}")
            try:
                return int(port_file.read_text())
            except (FileNotFoundError, ValueError):
                return None

        self.port = wait_until("the gateway's port file", bound, timeout)
        return self


@dataclass(eq=False)
class InHubGateway:
    """`agentnet hub --autogen 127.0.0.1:0`: the gateway inside the hub process (restarting it restarts the hub)."""

    hub: HubProc
    port: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def proc(self) -> Proc | None:
        return self.hub.proc

    def start(self, timeout: float = 30.0) -> InHubGateway:
        port_file = self.hub.procs.workdir / f"autogen-port.{self.hub.generation + 1}"
        self.hub.extra = ["--autogen", f"127.0.0.1:{self.port or 0}", "--autogen-port-file", str(port_file)]
        self.hub.start()

        def bound() -> int | None:
            try:
                return int(port_file.read_text())
            except (FileNotFoundError, ValueError):
                return None

        self.port = wait_until("the in-hub gateway's port file", bound, timeout)
        return self


@dataclass(eq=False)
class AgWorker:
    """One demo worker process: commands go to its stdin, its answers and events come back as JSON lines."""

    proc: Proc
    out: Path
    stdin: Any
    answered: int = 0

    def lines(self) -> list[dict[str, Any]]:
        return read_jsonl(self.out)

    def results(self) -> list[dict[str, Any]]:
        return [r for r in self.lines() if "ok" in r]

    def events(self, agent_type: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.lines() if r.get("event") == "news" and agent_type in (None, r["type"])]

    def cmd(self, timeout: float = 30.0, **command: Any) -> dict[str, Any]:
        self.stdin.write((json.dumps(command) + "\n").encode())
        self.stdin.flush()
        self.answered += 1
        want = self.answered

        def answer() -> dict[str, Any] | None:
            if not self.proc.alive():
                raise AssertionError(f"worker exited:\n{self.proc.log()}\n{self.out.read_text()}")
            results = self.results()
            return results[want - 1] if len(results) >= want else None

        return wait_until(f"the worker's answer to {command['cmd']}", answer, timeout)

    def kill(self) -> None:
        self.proc.kill()


def start_worker(
    procs: Procs,
    name: str,
    address: str,
    serve: list[str],
    topics: list[str],
    *extra: str,
    timeout: float = 60.0,
    shown_as: str | None = None,
) -> AgWorker:
    """A demo worker; `shown_as`: the agentnet name it asks for (agentnet-worker=NAME in its user agent)."""
    out = procs.workdir / f"{name}.{len(procs.started)}.out"
    log_path = procs.workdir / f"{name}.{len(procs.started)}.log"
    args = [str(AUTOGEN_PYTHON), str(DEMO_WORKER), "--host", address, "--exit-on-eof", *extra]
    for t in serve:
        args += ["--serve", t]
    for t in topics:
        args += ["--topic", t]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTOGEN_DISABLE_RUNTIME_TRACING": "true"}
    env.pop("AGENTNET_AGENT_NAME", None)
    if shown_as is not None:
        env["AGENTNET_AGENT_NAME"] = shown_as
    with out.open("wb") as stdout, log_path.open("wb") as stderr:
        popen = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, cwd=REPO, env=env, start_new_session=True
        )
    proc = Proc(name, popen, log_path)
    procs.started.append(proc)
    worker = AgWorker(proc, out, popen.stdin)

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"worker {name} exited with {popen.returncode}:\n{proc.log()}")
        return any(r.get("ready") for r in worker.lines())

    wait_until(f"worker {name} registered", ready, timeout)
    return worker


def stop(proc: Proc) -> None:
    proc.signal(signal.SIGKILL)
    proc.popen.wait(timeout=10)
