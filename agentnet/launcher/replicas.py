"""Hub replicas on one PostgreSQL store: the throwaway server, which replica is active, and the faults
aimed at the active one."""

from __future__ import annotations

import asyncio
import contextlib

from agentnet.protocol.ids import utc_iso
from agentnet.run.control import ControlError

from .processes import HUB_READY_TIMEOUT, HubHealth, healthz
from .supervisor import SupervisorError


class Replicas:
    """Part of `Run` (runner.py): its hub replicas."""

    async def _start_postgres(self) -> None:
        from agentnet.pglocal import LocalPostgres, PgLocalError

        try:
            self.pg = await asyncio.to_thread(lambda: LocalPostgres(self.run_dir / "pg").start())
        except PgLocalError as exc:
            raise SupervisorError(f"cannot start the local PostgreSQL: {exc}") from None
        self.store_url = self.pg.url
        self.store_counts.url = self.store_url
        self._write_run_file()
        self.caption(f"PostgreSQL started for the hubs' store (pid {self.pg.pid}, {self.pg.url})")

    async def _find_active(self, timeout: float = 0.5) -> str | None:
        for name in self.hub_names:
            port = self.hub_port_of(name)
            proc = self.supervisor.processes.get(name)
            if port is None or proc is None or not proc.alive:
                continue
            info = await healthz("127.0.0.1", port, timeout=timeout)
            if info is not None and info.role == "active":
                return name
        return None

    def _annotate_hubs(self, term: int | None) -> None:
        """Label each running hub replica active or standby (the reason column of the processes table;
        the dashboard shows it as the hub's connection)."""
        if term is not None:
            self._term = term
        for name in self.hub_names:
            p = self.supervisor.processes.get(name)
            if p is None or not p.alive or p.state.value not in ("ready", "running"):
                continue
            self.supervisor.note(name, "active" if name == self.active_hub else "standby")

    async def _watch_leader(self) -> None:
        """Which replica leads, from their /healthz: a takeover is marked in the event log, and each hub
        process is labelled active or standby."""
        while True:
            await asyncio.sleep(0.2)
            name = await self._find_active()
            if name is None or name == self.active_hub:
                self._annotate_hubs(None)  # a restarted replica comes back labelled standby
                continue
            before, self.active_hub = self.active_hub, name
            port = self.hub_port_of(name)
            info = await healthz("127.0.0.1", port or 0, timeout=0.5) or HubHealth()
            self._annotate_hubs(info.term)
            self.caption(f"failover: {name} is now the active hub (took over from {before}; term {info.term})")

    async def _hub_fault(self, action: str, duration: float | None) -> str:
        sup = self.supervisor
        # /healthz first; on a loaded machine it may not answer in time: then the last one seen active
        active = await self._find_active(timeout=2.0) or self.active_hub
        if active is None:
            raise ControlError("no hub is active right now")
        p = sup.process(active)
        pid = p.pid
        if action == "kill-hub":
            await sup.kill(active, fault=True, reason="killed by a fault (SIGKILL, active hub)")
            return f"killed the active hub {active} (pid {pid}); a standby takes over"
        if action == "freeze-hub":
            await sup.pause(active, reason=f"frozen by a fault (SIGSTOP, {duration:g} s)")

            async def thaw() -> None:
                await asyncio.sleep(duration or 0)
                # The thaw is part of the fault: the woken hub may still send what it had committed
                # before it froze, then finds its session gone and steps down.
                text = f"the frozen hub {active} wakes up (SIGCONT): its commits are refused, it steps down"
                self.publish(
                    "fault", {"kind": "fault", "at": utc_iso(), "action": "freeze-hub", "target": None, "caption": text}
                )
                with contextlib.suppress(Exception):
                    await sup.resume(active, reason="woken by the fault (SIGCONT); it must step down")

            self.timeline.append(asyncio.create_task(thaw(), name=f"thaw-{active}"))
            return f"froze the active hub {active} (pid {pid}) for {duration:g} s; a standby takes over after the lease"
        p = await sup.restart(active, reason="restarted by a fault (failover: a standby takes over)", by_fault=True)
        await sup.wait_ready(active, HUB_READY_TIMEOUT)
        return f"restarted the active hub {active} (pid {pid} -> {p.pid}); it came back as a standby"
