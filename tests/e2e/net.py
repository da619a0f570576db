"""A small network of real processes for end-to-end tests: a hub, agents, and `agentnet ask`.

Every child runs in its own session; `Net.close()` terminates them all and proves they are gone.
Nothing here sleeps to synchronise: waits poll a condition until a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

AGENTNET = [sys.executable, "-m", "agentnet.cli"]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pass
    return out


class Net:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def spawn(self, key: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.tmp / f"{key}.log").open("ab")
        proc = subprocess.Popen(
            [*AGENTNET, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.procs[key] = proc
        return proc

    def start_hub(self, store: str = "sqlite", **flags: Any) -> None:
        port_file = self.tmp / "hub.port"
        port_file.unlink(missing_ok=True)
        spec = f"sqlite:{self.tmp / 'hub.db'}" if store == "sqlite" else store
        args = ["hub", "--port", str(self.port or 0), "--port-file", str(port_file), "--store", spec]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.spawn("hub", args)
        self.port = int(wait_until(lambda: port_file.exists() and port_file.read_text(), what="hub port"))

    def health(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
            return orjson.loads(resp.read())

    def wait_connected(self, count: int, timeout: float = 15) -> None:
        wait_until(lambda: self.health()["agents"] >= count, timeout, f"{count} agents connected")

    def agent(self, name: str, brain: str = "echo", options: dict | None = None, env: dict | None = None):
        state = self.tmp / "agents" / name
        args = ["agent", "--name", name, "--hub", self.url, "--brain", brain, "--state-dir", str(state)]
        if options:
            args += ["--options", orjson.dumps(options).decode()]
        return self.spawn(name, args, env)

    def processed(self, name: str) -> list[dict]:
        return read_jsonl(self.tmp / "agents" / name / "processed.jsonl")

    def ask(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*AGENTNET, "ask", "--hub", self.url, *args], capture_output=True, text=True, timeout=timeout
        )

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[key]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)

    def log(self, key: str) -> str:
        path = self.tmp / f"{key}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        survivors = [p.pid for p in self.procs.values() if psutil.pid_exists(p.pid) and p.poll() is None]
        assert not survivors, f"processes outlived the test: {survivors}"
