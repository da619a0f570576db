"""The gateway's hub identities: its own (`autogen-gw`, `autogen-registry`), one per agent type
(`ag-…`, connected while a worker serves the type) and one per worker (`agw-…` or the name it asks
for, connected while its stream is open): how each connects, and whose names it will not take."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentnet.client.connection import HubClient, HubError

from .state import GatewayError, Worker

if TYPE_CHECKING:
    from .gateway import GatewaySettings

log = logging.getLogger("agentnet.gateway.autogen")


class HubIdentities:
    """AutogenGateway's hub identities (a mixin: it shares the gateway's state)."""

    settings: GatewaySettings
    gw: HubClient | None
    _connect: Callable[[str], Any] | None
    _closers: set[asyncio.Task]

    if TYPE_CHECKING:  # AutogenGateway's, used here

        def _ack(self, client: Any, env: dict, effect: str = "applied", reason: str | None = None) -> None: ...

    def _hub_client(self, name: str, takeover: bool | None = None, guard: bool = True) -> HubClient:
        """A hub identity. takeover=False: its hello is refused while a session of that name is
        connected (it is someone else's); set `client.takeover = None` once it is ours, so that its
        reconnects replace its own stale session."""
        client = (
            self._connect(name)
            if self._connect is not None
            else HubClient(self.settings.hub, name=name, token=self.settings.token, request_timeout=15.0)
        )
        client.takeover = takeover
        client.guard = guard  # inside the hub: no socket's hello may take this name over (a worker's may)
        return client

    async def _start_own(self, client: HubClient) -> None:
        try:
            await client.start()
        except HubError as exc:
            if exc.code != "conflict":
                raise
            raise GatewayError(
                f"another AutoGen gateway is attached to the hub {self.settings.hub or '(in this process)'}: "
                f"{client.name} is connected ({exc.message}). A hub serves one gateway: stop the other one "
                "(`agentnet gateway autogen`, or a hub's own --autogen), or point this one at another hub"
            ) from None
        client.takeover = None

    @staticmethod
    def _passport(description: str, **meta: Any) -> dict[str, Any]:
        return {"description": description, "capabilities": ["autogen"], "meta": {"via": "autogen", **meta}}

    def _acker(self, client: Callable[[], HubClient | None]) -> Callable[[dict], None]:
        """A frame handler that acks every delivery (the gateway's own identities read nothing)."""

        def on_frame(frame: dict) -> None:
            c = client()
            if frame.get("kind") == "notify" and c is not None:
                env = frame["envelope"]
                env["attempt"] = frame.get("attempt", 1)
                self._ack(c, env)

        return on_frame

    def _type_passport(self, agent_type: str, worker: Worker | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"autogen_type": agent_type}
        if worker is not None:
            meta["worker"] = worker.client_id
        return self._passport(f"AutoGen agent type {agent_type}", **meta)

    def _attach_worker(self, worker: Worker) -> None:
        """The worker as an agentnet identity of its own, connected while its stream is open: under
        the name it asked for if that is free, else under its default `agw-…` name. Not free: a name
        that is connected, that (inside the hub) an agent other than an AutoGen worker has, or that has
        deliveries waiting (then it is given back at the first one, unacked: _on_worker_frame)."""

        async def attach() -> None:
            for name in dict.fromkeys([worker.identity, worker.default_identity]):
                asked = name != worker.default_identity
                taken = self._native_agent(name) if asked else None
                if taken:
                    log.warning(
                        "worker %s asked to show as %r, %s: it shows as %s",
                        worker.client_id,
                        name,
                        taken,
                        worker.default_identity,
                    )
                    continue
                worker.identity = name
                # never over a connected session: a worker named like another must not take its identity
                client = self._hub_client(name, takeover=False, guard=False)
                client.on_frame = lambda frame, client=client: self._on_worker_frame(worker, client, frame)
                try:
                    await client.start()
                except HubError as exc:
                    if exc.code != "conflict" or not asked:
                        log.warning("worker %s: no hub identity %s: %s", worker.client_id, name, exc)
                        return
                    log.warning(
                        "worker %s asked to show as %r, which is connected: it shows as %s",
                        worker.client_id,
                        name,
                        worker.default_identity,
                    )
                    continue
                if worker.identity != name:
                    return  # a delivery came meanwhile: _give_name_back goes on from here
                break
            else:
                return
            if not asked:
                client.takeover = None  # its reconnects replace its own stale session; an asked-for name never
            try:
                await client.request("register", passport=self._worker_passport(worker))
            except HubError as exc:
                if worker.identity == name:
                    log.warning("worker %s: no hub identity %s: %s", worker.client_id, name, exc)
                return
            if worker.alive and worker.identity == name:
                worker.client = client
            elif worker.identity == name:
                await client.close(worker.gone)

        task = asyncio.get_running_loop().create_task(attach())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _native_agent(self, name: str) -> str | None:
        """Why `name` is another agent's, as far as an in-process hub knows it (None: unknown, or an
        AutoGen worker's from before). A sidecar cannot tell: it finds out at the first delivery."""
        hub = getattr(self.gw, "hub", None)
        agent = hub.core.agents.get(name) if hub is not None and hub.core is not None else None
        if agent is None:
            return None
        meta = (agent.passport or {}).get("meta")
        return None if isinstance(meta, dict) and meta.get("via") == "autogen" else "another agent's name"

    def _on_worker_frame(self, worker: Worker, client: HubClient, frame: dict) -> None:
        """A worker's identity is a participant of nothing the gateway made. Under its default name,
        what someone posts to it no AutoGen worker reads: acked with that reason (⊘ in the dashboard).
        Under a name it asked for, a delivery says the name is an agent's with an inbox: not acked
        (it goes back to the hub with this session), and the name is given back."""
        if frame.get("kind") != "notify":
            return
        if client.name == worker.default_identity:
            env = frame["envelope"]
            env["attempt"] = frame.get("attempt", 1)
            self._ack(client, env, "rejected", "an AutoGen worker reads no channel posts")
        elif worker.identity == client.name:
            worker.identity = worker.default_identity
            task = asyncio.get_running_loop().create_task(self._give_name_back(worker, client))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    async def _give_name_back(self, worker: Worker, client: HubClient) -> None:
        log.warning(
            "worker %s showed as %r, an agent with deliveries waiting: it shows as %s",
            worker.client_id,
            client.name,
            worker.default_identity,
        )
        await client.close("the name is an agent's with deliveries waiting; the worker shows as " + worker.identity)
        if worker.client is client:
            worker.client = None
        if worker.alive:
            self._attach_worker(worker)

    def _worker_passport(self, worker: Worker) -> dict[str, Any]:
        return self._passport(
            f"AutoGen worker {worker.client_id}",
            autogen_worker=worker.client_id,
            autogen_types=sorted(worker.types),
        )
