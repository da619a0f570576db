"""The run's processes: what to start (the hub or its replicas, the agents, as argv with their
environment), when each is ready (the hub's /healthz, an agent's registration), the launcher's own
observer connection, and the controls that need the hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentnet.agents.brains.templating import render
from agentnet.protocol.events import (
    AgentRegistered,
    Snapshot,
)
from agentnet.run.control import ControlError

from .live import HubItem
from .supervisor import ProcessSpec, RestartPolicy, SupervisorError

log = logging.getLogger("agentnet.launcher")
HUB_READY_TIMEOUT = 15.0
AGENTS_READY_TIMEOUT = 30.0
LAUNCHER_NAME = "launcher"
DASHBOARD_NAME = "dashboard"
HUB_POLICY = RestartPolicy("on-failure", initial=0.5, max=5.0, factor=2.0, jitter=0.2, max_restarts=3)


def _last_line(path: Path) -> str | None:
    """The line of a log that best says why the process ended: the last error among its last lines."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    lines = [line.strip() for line in lines if line.strip() and not line.startswith("==== ")][-12:]
    errors = [line for line in lines if "error" in line.lower()]
    found = (errors or lines or [None])[-1]
    return found[:300] if found else None


class HubHealth(BaseModel):
    """The body of a hub's /healthz, as far as the launcher reads it."""

    model_config = ConfigDict(extra="allow")
    role: str = "active"  # a hub without failover is always the active one
    term: int | None = None


async def healthz(host: str, port: int, timeout: float = 1.0, *, standby_too: bool = False) -> HubHealth | None:
    """GET /healthz; its body if it answered 200 (or 503 with `standby_too`: a standby hub), else None."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not (head.startswith(b"HTTP/1.1 200") or (standby_too and head.startswith(b"HTTP/1.1 503"))):
                return None
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else await reader.read()
            parsed = json.loads(body or b"{}")
            return HubHealth.model_validate(parsed) if isinstance(parsed, dict) else HubHealth()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Processes:
    """Part of `Run` (runner.py): its processes."""

    @property
    def hub_url(self) -> str:
        """The hub's URL; with replicas, every replica's, comma-separated (clients find the active one)."""
        if len(self.hub_names) == 1:
            return f"ws://127.0.0.1:{self.hub_port}/v1"
        ports = [self.hub_port_of(n) for n in self.hub_names]
        return ",".join(f"ws://127.0.0.1:{port}/v1" for port in ports if port)

    def hub_port_of(self, name: str) -> int | None:
        """The port of hub replica `name` (`hub` is the first), None until it has one."""
        return self.hub_port if name == "hub" else self.hub_ports.get(name)

    def _store_arg(self) -> str:
        if self.scenario.hub.store_kind == "postgresql":
            assert self.store_url is not None, "the PostgreSQL store is not started"
            return self.store_url
        return "memory" if self.store_path is None else f"sqlite:{self.store_path}"

    def _declare_hub(self, name: str) -> None:
        s, run = self.scenario, self.run_dir
        port_file = run / ("hub.port" if name == "hub" else f"{name}.port")

        def hub_command() -> list[str]:
            port = self.hub_port_of(name)
            argv = [
                sys.executable, "-m", "agentnet.cli", "hub",
                "--host", "127.0.0.1", "--port", str(port or 0), "--port-file", str(port_file),
                "--store", self._store_arg(), "--keep-receipts",
                *s.hub.delivery.cli_args(), *s.hub.keepalive.cli_args(),
                "--log-level", os.environ.get("AGENTNET_LOG_LEVEL", "warning"), "--exit-with-parent",
            ]  # fmt: skip
            if s.hub.store_kind == "postgresql":
                argv += ["--lease", str(s.hub.lease)]
            if s.hub.auth:
                argv += ["--auth-file", str(run / "keys.yaml")]
            if "autogen" in s.gateways:  # the gateway runs inside the hub process
                argv += ["--autogen", f"127.0.0.1:{self.autogen_port or 0}"]
                argv += ["--autogen-port-file", str(run / "autogen.port"), "--autogen-log-dir", str(run / "agents")]
            return argv

        def forget_port() -> None:
            for path in (port_file, run / "autogen.port"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        hub = ProcessSpec(name, "hub", hub_command, run / "logs" / f"{name}.log", policy=HUB_POLICY)
        if name == "hub":
            hub.probe = self._hub_probe
        else:
            hub.probe = lambda p, name=name, port_file=port_file: self._replica_probe(p, name, port_file)
        hub.before_start = forget_port
        self.supervisor.add(hub)

    def _declare(self) -> None:
        s, run = self.scenario, self.run_dir
        for name in self.hub_names:
            self._declare_hub(name)
        for inst in s.expanded_agents():
            spec = inst.spec

            def agent_command(
                name: str = inst.name, brain: str = spec.brain or "", options: str = json.dumps(spec.options)
            ) -> list[str]:
                return [
                    sys.executable, "-m", "agentnet.cli", "agent", "--name", name, "--hub", self.hub_url,
                    "--brain", brain, "--options", options, "--state-dir", str(run / "agents" / name),
                    "--exit-with-parent",
                ]  # fmt: skip

            def program_command(name: str = inst.name, argv: tuple[str, ...] = tuple(spec.command or ())) -> list[str]:
                values = {
                    "name": name,
                    "hub_url": self.hub_url,
                    "hub_host": "127.0.0.1",
                    "hub_port": str(self.hub_port or 0),
                    "run_dir": str(run),
                    "autogen_address": f"127.0.0.1:{self.autogen_port or 0}",
                }
                return [render(arg, values) for arg in argv]

            env = {"AGENTNET_HUB_URL": "", "AGENTNET_AGENT_NAME": inst.name, "AGENTNET_RUN_DIR": str(run)}
            env.update(spec.env)
            if inst.name in self.tokens:
                env["AGENTNET_TOKEN"] = self.tokens[inst.name]
            b = spec.backoff
            policy = RestartPolicy(spec.restart, b.initial, b.max, b.factor, b.jitter, spec.max_restarts)
            log_path = run / "logs" / f"{inst.name}.log"
            if spec.command is not None:  # any program (e.g. an ag2 agent); it is ready once the hub sees it
                base = s.source.resolve().parent if s.source is not None else Path.cwd()
                agent = ProcessSpec(inst.name, "agent", program_command, log_path, env=env, cwd=base, policy=policy)
            else:
                agent = ProcessSpec(inst.name, "agent", agent_command, log_path, env=env, policy=policy)
            agent.depends_on = inst.depends_on
            self.supervisor.add(agent)

    async def _replica_probe(self, p: Any, name: str, port_file: Path) -> None:
        """A hub replica is ready when /healthz answers, active (200) or standby (503)."""
        while p.alive:
            try:
                port = int(port_file.read_text())
            except (OSError, ValueError):
                port = None
            if port and await healthz("127.0.0.1", port, standby_too=True) is not None:
                self.hub_ports[name] = port
                for agent in self.supervisor.processes.values():
                    if agent.role == "agent":
                        agent.spec.env["AGENTNET_HUB_URL"] = self.hub_url
                return
            await asyncio.sleep(0.05)
        raise SupervisorError(f"{name} exited before it was ready")

    async def _hub_probe(self, p: Any) -> None:
        """Ready = the port file is written and GET /healthz answers 200 (or 503 standby, with replicas:
        the first hub restarted after a takeover comes back as a standby)."""
        port_file = self.run_dir / "hub.port"
        standby_too = len(self.hub_names) > 1 and self.hub_port is not None
        while p.alive:
            try:
                port = int(port_file.read_text())
            except (OSError, ValueError):
                port = None
            if port and self.scenario.gateways and not self._gateway_ports():
                port = None  # the hub answers agentnet clients before its gateways listen
            if port and await healthz("127.0.0.1", port, standby_too=standby_too) is not None:
                self.hub_port = port
                for agent in self.supervisor.processes.values():
                    if agent.role == "agent":
                        agent.spec.env["AGENTNET_HUB_URL"] = self.hub_url
                return
            await asyncio.sleep(0.05)
        raise SupervisorError("the hub exited before it was ready")

    def _gateway_ports(self) -> bool:
        """With gateways: [autogen], read the gateway's port (written once it listens); True once known."""
        try:
            self.autogen_port = int((self.run_dir / "autogen.port").read_text())
        except (OSError, ValueError):
            return False
        for agent in self.supervisor.processes.values():
            if agent.role == "agent":
                agent.spec.env["AGENTNET_AUTOGEN_ADDRESS"] = f"127.0.0.1:{self.autogen_port}"
        return True

    def _agent_names(self) -> list[str]:
        return [p.name for p in self.supervisor.processes.values() if p.role == "agent"]

    def _on_hub_item(self, item: HubItem | None) -> None:
        """Readiness: an agent is ready when the hub reports it registered with the child's pid."""
        if isinstance(item, AgentRegistered):
            self.supervisor.mark_ready(item.name, item.pid, "registered with the hub")
        elif isinstance(item, Snapshot):
            for agent in item.agents:
                if agent.connected:  # pid None: a `command:` agent, which does not say it
                    self.supervisor.mark_ready(agent.name, agent.pid, "registered with the hub")

    async def _observe(self) -> None:
        assert self.observer is not None
        try:
            async for kind, item in self.observer:
                decoded = self.model.decode(kind, item)
                self._on_hub_item(decoded)
                self.publish(kind, item, decoded=decoded)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the hub refused us for good: nothing will be observed any more
            log.exception("the observer feed ended")
            message = getattr(exc, "message", None) or repr(exc)
            self.problems.append(f"the launcher lost its hub feed: {message}")
            self.should_exit.set()

    async def _start_agents(self) -> None:
        sup = self.supervisor

        async def bring_up(name: str) -> None:
            p = sup.process(name)
            waiting = [d for d in p.spec.depends_on if not sup.process(d).ready.is_set()]
            if waiting:
                sup.note(name, f"waiting for {', '.join(waiting)} (depends_on)")
                for dep in p.spec.depends_on:
                    await sup.wait_ready(dep, AGENTS_READY_TIMEOUT)
            await sup.start(name, reason="started")
            await sup.wait_ready(name, AGENTS_READY_TIMEOUT)

        tasks = [asyncio.create_task(bring_up(n)) for n in self._agent_names()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _disconnect(self, name: str) -> None:
        if self.observer is None:
            raise ControlError("the launcher is not connected to the hub")
        await self.observer.request("disconnect", name=name)

    async def _restart_hub(self, reason: str, by_fault: bool = False) -> str:
        old = self.supervisor.process("hub").pid
        p = await self.supervisor.restart("hub", reason=reason, by_fault=by_fault)
        await self.supervisor.wait_ready("hub", HUB_READY_TIMEOUT)
        return f"restarted the hub (pid {old} -> {p.pid}) on port {self.hub_port}, same store"

    def _last_words(self) -> str:
        """The last log line of each process that ended badly, to say why at once."""
        out = []
        for p in self.supervisor.processes.values():
            if p.state in ("crashed", "killed", "backoff") or (p.state == "exited" and p.exit_code not in (0, None)):
                line = _last_line(p.spec.log_path)
                if line:
                    out.append(f"{p.name}: {line}")
        return "".join(f"\n      {line}" for line in out)
