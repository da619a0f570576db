"""The control API of a running `agentnet up`: in-process for the dashboard, and over a Unix socket
for `agentnet ctl VERB TARGET` and `agentnet status` from another terminal.

Verbs: see `agentnet.run.control` (the contract, and the client side of this API).

It lives in the run directory (`control.sock`; `control.json` names it and the launcher's pid), is
only reachable by the user who started the run (mode 0600), and goes away with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentnet.protocol.ids import utc_iso
from agentnet.protocol.vocab import ProcState
from agentnet.run.control import CONTROL_FILE, SOCKET_NAME, VERBS, ControlError, ControlRequest

from .supervisor import Supervisor, SupervisorError

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
READY_WAIT = 15.0  # a restart waits this long for the process to be ready again


class LauncherControls:
    """Implements the dashboard's `Controls` over a `Supervisor` plus the run's hub connection.

    `disconnect(name)` asks the hub to drop an agent; `restart_hub(reason)` restarts the hub and
    waits for it; `resolve(name)` expands a replicated agent's name; `status()` is the run's state.
    `source` tells a fault ("fault") from the operator ("operator"): only a fault's kill is a crash
    that the restart policy answers.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        disconnect: Callable[[str], Awaitable[Any]],
        restart_hub: Callable[[str, bool], Awaitable[str]],  # (reason, by a fault)
        resolve: Callable[[str], tuple[str, ...]] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        on_action: Callable[[dict[str, Any]], None] | None = None,
        post: Callable[[str, list[str], str], Awaitable[str]] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self._post = post
        self._disconnect = disconnect
        self._restart_hub = restart_hub
        self._resolve = resolve or (lambda name: (name,))
        self._status = status
        self.on_action = on_action
        self._lock = asyncio.Lock()  # one control at a time: a restart-hub must not meet a kill halfway

    async def act(self, verb: str, target: str | None, *, source: str = "operator", origin: str = "dashboard") -> str:
        """Perform `verb` on `target`; a short message, or ControlError with the reason.

        `origin` says who asked (dashboard, ctl, script) and is passed on to `on_action`."""
        try:
            if verb not in VERBS:
                raise ControlError(f"unknown verb {verb!r} (verbs: {', '.join(VERBS)})")
            names = self._targets(verb, target)
            async with self._lock:
                try:
                    messages = [await self._one(verb, name, source) for name in names]
                except SupervisorError as exc:
                    raise ControlError(str(exc)) from None
        except ControlError as exc:
            self._report(verb, target, source, origin, str(exc), error=True)
            raise
        message = "; ".join(messages)
        self._report(verb, target, source, origin, message, error=False)
        return message

    def _report(self, verb: str, target: str | None, source: str, origin: str, message: str, error: bool) -> None:
        if self.on_action is not None:
            self.on_action(
                {
                    "kind": "control",
                    "at": utc_iso(),
                    "verb": verb,
                    "target": target,
                    "source": source,
                    "origin": origin,
                    "message": message,
                    "error": error,
                }
            )

    async def post(self, sender: str, recipients: list[str], text: str, *, origin: str = "dashboard") -> str:
        """Open a consulting channel as `sender` to `recipients` and ask `text` (work to watch)."""
        label = f"{sender} → {', '.join(recipients)}"
        try:
            if self._post is None:
                raise ControlError("this launcher cannot post messages")
            if not sender or not recipients or not text.strip():
                raise ControlError("post needs a sender, at least one recipient and a text")
            try:
                message = await self._post(sender, recipients, text)
            except ControlError:
                raise
            except Exception as exc:  # HubError and friends: say what the hub said
                raise ControlError(f"post as {sender}: {getattr(exc, 'message', None) or exc}") from None
        except ControlError as exc:
            self._report("post", label, "operator", origin, str(exc), error=True)
            raise
        self._report("post", label, "operator", origin, message, error=False)
        return message

    def status(self) -> dict[str, Any]:
        if self._status is not None:
            return self._status()
        return {"processes": self.supervisor.status()}

    def _targets(self, verb: str, target: str | None) -> list[str | None]:
        if verb in ("restart-hub", "restart-all"):
            if target not in (None, "", "hub", "all"):
                raise ControlError(f"{verb} takes no target")
            return [None]
        if not target:
            raise ControlError(f"{verb} needs a target (a process name)")
        names = [n for n in self._resolve(target) if n in self.supervisor.processes] or [target]
        if names == [target] and target not in self.supervisor.processes:
            known = ", ".join(self.supervisor.processes)
            raise ControlError(f"no process named {target!r} (processes: {known})")
        if verb == "disconnect" and "hub" in names:
            raise ControlError("disconnect is for agents (the hub drops an agent's socket)")
        return names

    async def _one(self, verb: str, name: str | None, source: str) -> str:
        sup = self.supervisor
        fault = source == "fault"
        by = "a fault" if fault else "the operator"
        if verb == "restart-hub":
            return await self._restart_hub(f"restarted by {by}", fault)
        if verb == "restart-all":
            done = [await self._restart_hub(f"restarted by {by} (restart-all)", fault)]
            agents = [p.name for p in sup.processes.values() if p.role == "agent"]
            for agent in agents:
                await sup.restart(agent, reason=f"restarted by {by} (restart-all)", by_fault=fault)
            await asyncio.gather(*(sup.wait_ready(a, READY_WAIT) for a in agents), return_exceptions=True)
            done.append(f"restarted {len(agents)} agents")
            return "; ".join(done)
        assert name is not None
        if verb == "kill":
            p = sup.process(name)
            pid = p.pid
            await sup.kill(name, fault=source == "fault", reason=f"killed by {by} (SIGKILL)")
            then = ""
            if p.state is ProcState.BACKOFF:
                then = f"; {p.reason.split('; ', 1)[-1]}"
            return f"killed {name} (pid {pid}){then}"
        if verb == "stop":
            p = sup.process(name)
            pid = p.pid
            await sup.stop(name, reason=f"stopped by {by} (SIGTERM)")
            return f"stopped {name} (pid {pid}): {p.reason}"
        if verb == "pause":
            p = await sup.pause(name, reason=f"paused by {by} (SIGSTOP)")
            return f"paused {name} (pid {p.pid})"
        if verb == "resume":
            p = await sup.resume(name, reason=f"resumed by {by} (SIGCONT)")
            return f"resumed {name} (pid {p.pid})"
        if verb == "disconnect":
            try:
                await self._disconnect(name)
            except Exception as exc:  # HubError and friends: say what the hub said
                raise ControlError(f"disconnect {name}: {getattr(exc, 'message', None) or exc}") from None
            return f"the hub dropped {name}'s connection; it will reconnect"
        if verb == "restart":
            if name == "hub":
                return await self._restart_hub(f"restarted by {by}", fault)
            old = sup.process(name).pid
            p = await sup.restart(name, reason=f"restarted by {by}", by_fault=fault)
            try:
                await sup.wait_ready(name, READY_WAIT)
            except SupervisorError as exc:
                return f"restarted {name} (pid {old} -> {p.pid}), not ready: {exc}"
            return f"restarted {name} (pid {old} -> {p.pid}), ready"
        raise ControlError(f"unknown verb {verb!r}")


# --------------------------------------------------------------------------- the socket server


def socket_path_for(run_dir: Path) -> Path:
    """`run_dir/control.sock`, or a short path in the temp dir when that would be too long."""
    path = run_dir.resolve() / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"agentnet-{digest}.sock"


class ControlServer:
    """JSON-lines control server on a Unix socket; `control.json` in the run dir points at it."""

    def __init__(self, controls: LauncherControls, run_dir: Path) -> None:
        self.controls = controls
        self.run_dir = run_dir
        self.path = socket_path_for(run_dir)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=1 << 20)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        info = {"socket": str(self.path), "pid": os.getpid(), "started": time.time()}
        tmp = self.run_dir / (CONTROL_FILE + ".tmp")
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, self.run_dir / CONTROL_FILE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / CONTROL_FILE).unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while line := await reader.readline():
                response = await self.handle(line)
                writer.write(json.dumps(response, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        request = ControlRequest.model_validate(raw)
        op = request.op
        try:
            if op == "status":
                return {"ok": True, "status": self.controls.status()}
            if op == "act":
                message = await self.controls.act(str(request.verb), request.target, origin="ctl")
                return {"ok": True, "message": message}
            if op == "post":
                recipients = request.to
                if isinstance(recipients, str):
                    recipients = [recipients]
                if not isinstance(recipients, list):
                    raise ControlError("post: 'to' must be a name or a list of names")
                message = await self.controls.post(
                    str(request.sender or ""),
                    [str(r) for r in recipients],
                    str(request.text or ""),
                    origin="ctl",
                )
                return {"ok": True, "message": message}
            if op == "ping":
                return {"ok": True}
            return {"ok": False, "error": f"unknown op {op!r} (ops: act, post, status, ping)"}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a launcher bug must answer, not hang the client
            return {"ok": False, "error": f"internal error: {exc!r}"}


# --------------------------------------------------------------------------- the client (ctl, status)
