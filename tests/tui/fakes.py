"""A fake launcher for Pilot tests: it implements :class:`agentnet.tui.controls.Controls` and reports
every state change the way the real launcher will, as process (and hub) events in the feed."""

from __future__ import annotations

from typing import Any

from agentnet.run.feed import QueueFeed
from agentnet.tui.controls import ControlError
from tests.tui.sample import END_T, iso


class FakeLauncher:
    def __init__(self, feed: QueueFeed, processes: dict[str, dict[str, Any]] | None = None) -> None:
        self.feed = feed
        self.calls: list[tuple[str, str | None]] = []
        self.t = END_T
        self.processes: dict[str, dict[str, Any]] = processes or {
            "hub": {"role": "hub", "pid": 4100, "state": "ready", "restarts": 0, "started_at": 0.0},
            "alice": {"role": "agent", "pid": 4101, "state": "ready", "restarts": 0, "started_at": 0.4},
            "bob": {"role": "agent", "pid": 4102, "state": "ready", "restarts": 1, "started_at": 7.0},
            "carol": {"role": "agent", "pid": 4103, "state": "ready", "restarts": 0, "started_at": 0.5},
        }
        self.sessions = {"alice": 1, "bob": 2, "carol": 1}
        self.fail_next: str | None = None
        self.posts: list[tuple[str, list[str], str]] = []

    async def post(self, sender: str, recipients: list[str], text: str) -> str:
        self.posts.append((sender, recipients, text))
        if sender not in self.processes:
            raise ControlError(f"no agent named {sender!r}")
        return f"{sender} asked {', '.join(recipients)} in ch-posted"

    def _tick(self) -> float:
        self.t += 0.1
        return self.t

    def _report(self, name: str, state: str, reason: str = "", exit_code: int | None = None) -> None:
        proc = self.processes[name]
        proc["state"] = state
        running = state in ("starting", "ready", "paused")
        t = self._tick()
        self.feed.put_nowait(
            "process",
            {
                "kind": "process",
                "at": iso(t),
                "name": name,
                "role": proc["role"],
                "pid": proc["pid"] if running else None,
                "state": state,
                "reason": reason,
                "restarts": proc["restarts"],
                "operator_restarts": proc.get("operator_restarts", 0),
                "fault_restarts": proc.get("fault_restarts", 0),
                "started_at": iso(proc["started_at"]) if running else None,
                "last_restart_at": iso(proc["last_restart_at"]) if proc.get("last_restart_at") else None,
                "exit_code": exit_code,
            },
        )

    def _hub_event(self, type_: str, **fields: Any) -> None:
        self.feed.put_nowait("event", {"kind": "event", "at": iso(self._tick()), "type": type_, **fields})

    def _restart(self, name: str) -> None:
        proc = self.processes[name]
        proc["operator_restarts"] = proc.get("operator_restarts", 0) + 1  # the policy's count stays
        proc["pid"] += 100
        proc["started_at"] = proc["last_restart_at"] = self.t
        self._report(name, "starting", "restarted by the operator")
        self._report(name, "ready")

    async def act(self, verb: str, target: str | None) -> str:
        self.calls.append((verb, target))
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            raise ControlError(message)
        if verb in ("restart-hub", "restart-all"):
            names = ["hub"] if verb == "restart-hub" else list(self.processes)
            for name in names:
                self._restart(name)
            return f"restarted {', '.join(names)}"
        if target not in self.processes:
            raise ControlError(f"no process named {target!r}")
        if verb == "kill":
            self._report(target, "killed", "SIGKILL from the dashboard", exit_code=-9)
            self._hub_event(
                "agent.disconnected",
                name=target,
                session_id=f"s-{target}-{self.sessions.get(target)}",
                code=1006,
                reason="connection lost",
            )
            return f"{target} killed"
        if verb == "stop":
            self._report(target, "stopped", "SIGTERM from the dashboard", exit_code=0)
            return f"{target} stopped"
        if verb == "pause":
            self._report(target, "paused", "SIGSTOP")
            return f"{target} paused"
        if verb == "resume":
            self._report(target, "ready", "SIGCONT")
            return f"{target} resumed"
        if verb == "restart":
            self._restart(target)
            return f"{target} restarted"
        if verb == "disconnect":
            old = self.sessions[target]
            self.sessions[target] = old + 1
            self._hub_event(
                "agent.disconnected",
                name=target,
                session_id=f"s-{target}-{old}",
                code=4000,
                reason="disconnected by observer",
            )
            return f"{target} disconnected"
        raise ControlError(f"unknown verb {verb}")
