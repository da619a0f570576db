"""What the launcher and the dashboard agree on about controls, and the client of a running launcher.

Verbs (`VERBS`):

    kill         SIGKILL the process group; never restarted automatically
    stop         SIGTERM, SIGKILL after a grace period; never restarted automatically
    pause        SIGSTOP
    resume       SIGCONT
    disconnect   the hub closes the agent's socket (4000); the process lives on and reconnects
    restart      stop (if running) and start again; waits until it is ready again
    restart-hub  stop the hub and start it on the same port with the same store
    restart-all  restart the hub, then every agent

A target is a process name, `hub`, or a replicated agent's name (all its replicas).

The socket speaks JSON lines, one request and one response per line:

    -> {"op": "act", "verb": "kill", "target": "bob"}
    <- {"ok": true, "message": "killed bob (pid 4242)"}
    -> {"op": "post", "from": "alice", "to": ["bob"], "text": "What is 6 times 7?"}
    <- {"ok": true, "message": "alice asked bob in ch-..."}
    -> {"op": "status"}
    <- {"ok": true, "status": {"scenario": ..., "processes": [...], ...}}
    <- {"ok": false, "error": "no process named 'bobby' (processes: hub, alice, bob)"}

The launcher serves this API (`agentnet.launcher.control`: in-process for `up`'s own dashboard, and
on `control.sock` in the run directory for `agentnet ctl`, `agentnet status` and `agentnet tui --run`);
this module is the client side of it, and the contract both sides import.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VERBS = ("kill", "stop", "pause", "resume", "disconnect", "restart", "restart-hub", "restart-all")
CONTROL_FILE = "control.json"  # in the run directory: the socket's path and the launcher's pid
SOCKET_NAME = "control.sock"
RUNS_DIR = Path(".agentnet") / "runs"


class ControlError(Exception):
    """The launcher refused or failed a control; the message is shown to the user as is."""


@runtime_checkable
class Controls(Protocol):
    """What a dashboard may ask of the launcher. `controls=None` means read-only."""

    async def act(self, verb: str, target: str | None) -> str:
        """Perform ``verb`` (one of :data:`VERBS`) on ``target`` (a process name, or None for
        ``restart-hub`` / ``restart-all``). Returns a short human message; raises
        :class:`ControlError` with a human message when it cannot."""
        ...


@runtime_checkable
class Poster(Protocol):
    """Controls that can also post a message as an agent (the dashboard's `w` key, op "post")."""

    async def post(self, sender: str, recipients: list[str], text: str) -> str:
        """Open a consulting channel as ``sender`` to ``recipients`` and ask ``text``."""
        ...


class ControlClientError(Exception):
    """No running launcher to talk to, or it refused the request. `str()` is one line."""


class ControlInfo(BaseModel):
    """`control.json` in a run directory: where the launcher's socket is, and who serves it."""

    model_config = ConfigDict(extra="ignore")
    socket: str
    pid: int
    started: float = 0.0


class ControlReply(BaseModel):
    """One response line of the control socket."""

    model_config = ConfigDict(extra="allow")
    ok: bool = False
    message: str | None = None
    error: str | None = None
    status: dict[str, Any] | None = None


class ControlRequest(BaseModel):
    """One request line of the control socket (ops: act, post, status, ping)."""

    model_config = ConfigDict(extra="ignore")
    op: Any = None
    verb: Any = None
    target: Any = None
    sender: Any = Field(default=None, alias="from")
    to: Any = None
    text: Any = None


def _launcher_alive(info: ControlInfo) -> bool:
    pid = info.pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_control_file(run_dir: Path) -> ControlInfo | None:
    try:
        info = ControlInfo.model_validate_json((run_dir / CONTROL_FILE).read_text())
    except (OSError, ValueError, ValidationError):
        return None
    return info if _launcher_alive(info) else None


def find_running(root: Path = RUNS_DIR) -> Path | None:
    """The most recently started run under `root` whose launcher is alive."""
    best: tuple[float, Path] | None = None
    if not root.is_dir():
        return None
    for run_dir in root.iterdir():
        info = read_control_file(run_dir)
        if info is not None:
            started = info.started
            if best is None or started > best[0]:
                best = (started, run_dir)
    return best[1] if best else None


def resolve_run_dir(run_dir: str | Path | None, root: Path = RUNS_DIR) -> Path:
    if run_dir is not None:
        path = Path(run_dir)
        if not (path / CONTROL_FILE).exists():
            raise ControlClientError(f"{path}: no running launcher there (no {CONTROL_FILE})")
        return path
    found = find_running(root)
    if found is None:
        raise ControlClientError(
            f"no running 'agentnet up' found under {root}/ (start one, or name its run directory with --run)"
        )
    return found


def request(run_dir: Path, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to the launcher of `run_dir` and return its response."""
    info = read_control_file(run_dir)
    if info is None:
        raise ControlClientError(f"{run_dir}: the launcher of this run is not running")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(info.socket)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise ControlClientError(f"the launcher did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlClientError(f"cannot reach the launcher at {info['socket']}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        return json.loads(data)
    except ValueError:
        raise ControlClientError("the launcher closed the connection without an answer") from None


async def arequest(run_dir: Path, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """`request`, without blocking the event loop (for tests and async callers)."""
    return await asyncio.to_thread(request, run_dir, payload, timeout)


def reply_of(answer: dict[str, Any]) -> ControlReply:
    """The typed form of a raw control response (`request` keeps the raw one for `--json`)."""
    try:
        return ControlReply.model_validate(answer)
    except ValidationError:
        raise ControlClientError(f"the launcher answered something unexpected: {answer!r:.200}") from None


class RemoteControls:
    """Controls carried to a running `agentnet up` over its control socket (`agentnet tui --run`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    async def act(self, verb: str, target: str | None) -> str:
        try:
            reply = reply_of(await arequest(self.run_dir, {"op": "act", "verb": verb, "target": target}))
        except Exception as exc:
            raise ControlError(f"the launcher is not reachable: {exc}") from None
        if not reply.ok:
            raise ControlError(reply.error if reply.error is not None else "refused")
        return reply.message if reply.message is not None else "done"

    async def post(self, sender: str, recipients: list[str], text: str) -> str:
        try:
            reply = reply_of(
                await arequest(self.run_dir, {"op": "post", "from": sender, "to": recipients, "text": text})
            )
        except Exception as exc:
            raise ControlError(f"the launcher is not reachable: {exc}") from None
        if not reply.ok:
            raise ControlError(reply.error if reply.error is not None else "refused")
        return reply.message if reply.message is not None else "posted"
