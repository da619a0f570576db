"""CPU and RSS of the supervised processes (psutil), as ``stats`` feed items."""

from __future__ import annotations

from typing import Any

import psutil

from agentnet.protocol.vocab import RUNNING_STATES
from agentnet.tui.model import DashboardModel


class ProcessSampler:
    """Samples live pids; keeps ``psutil.Process`` objects so ``cpu_percent`` measures since last call."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, pids: dict[str, int]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        alive: set[int] = set()
        for name, pid in pids.items():
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                with proc.oneshot():
                    out[name] = {"cpu": proc.cpu_percent(None), "rss": proc.memory_info().rss}
                alive.add(pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        for pid in [pid for pid in self._procs if pid not in alive]:
            del self._procs[pid]
        return out

    def sample_model(self, model: DashboardModel, at: float) -> dict[str, Any] | None:
        """A ``stats`` item for the model's running processes, or None if there are none."""
        pids = {
            name: proc.pid
            for name, proc in model.processes.items()
            if proc.pid is not None and proc.state in RUNNING_STATES
        }
        if not pids:
            return None
        return {"at": at, "procs": self.sample(pids)}
