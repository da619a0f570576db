"""The gateway's hub identities: its own (`autogen-gw`, `autogen-registry`), one per agent type
(`ag-…`, connected while a worker serves the type) and one per worker (`agw-…` or the name it asks
for, connected while its stream is open): how each connects, and whose names it will not take."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentnet.client.connection import HubClient, HubError
from agentnet.protocol.errors import CloseCode

from .state import GatewayError, Worker

if TYPE_CHECKING:
    from .gateway import GatewaySettings

log = logging.getLogger("agentnet.gateway.autogen")

_UNVERIFIED = object()  # _agent_record could not tell


def _taken_over(client: Any) -> bool:
    """Whether a session ended for good because another took its name (not a stop or a step-down):
    superseded, or a reconnect refused as the name is in use (HubClient: its fatal `conflict`)."""
    if client.close_code in (CloseCode.SUPERSEDED, CloseCode.IN_USE):
        return True
    fatal = getattr(client, "fatal", None)
    error = fatal() if callable(fatal) else None
    return error is not None and error.code == "conflict"


class HubIdentities:
    """AutogenGateway's hub identities (a mixin: it shares the gateway's state)."""

    settings: GatewaySettings
    gw: HubClient | None
    _connect: Callable[[str], Any] | None
    _closers: set[asyncio.Task]
    _watchers: set[asyncio.Task]  # _keep_name, one per worker under a name it asked for
    _taken_back: set[str]  # names agents took back from workers: no worker gets them again

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

    def _acker(
        self, client: Callable[[], HubClient | None], effect: str = "applied", reason: str | None = None
    ) -> Callable[[dict], None]:
        """A frame handler that acks every delivery: the gateway's own identities read nothing, and
        what someone posts to a worker's identity no AutoGen worker reads (acked with that reason)."""

        def on_frame(frame: dict) -> None:
            c = client()
            if frame.get("kind") == "notify" and c is not None:
                env = frame["envelope"]
                env["attempt"] = frame.get("attempt", 1)
                self._ack(c, env, effect, reason)

        return on_frame

    def _type_passport(self, agent_type: str, worker: Worker | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"autogen_type": agent_type}
        if worker is not None:
            meta["worker"] = worker.client_id
        return self._passport(f"AutoGen agent type {agent_type}", **meta)

    def _attach_worker(self, worker: Worker) -> None:
        """The worker as an agentnet identity of its own, connected while its stream is open: under
        the name it asked for if that is free, else under its default `agw-…` name. Not free: a name
        that is connected, or that the hub knows as an agent other than an AutoGen worker. If an agent
        takes the name back later (its hello replaces the worker's session), the worker goes on under
        its default name."""

        async def attach() -> None:
            for name in dict.fromkeys([worker.identity, worker.default_identity]):
                asked = name != worker.default_identity
                taken = await self._name_owner(name) if asked else None
                if taken:
                    log.warning(
                        "worker %s asked to show as %r, %s: it shows as %s",
                        worker.client_id,
                        name,
                        taken,
                        worker.default_identity,
                    )
                    continue
                # never over a connected session: a worker named like another must not take its identity
                client = self._hub_client(name, takeover=False, guard=False)
                # its name is free or a worker's (not another agent's): what is posted to it is settled
                client.on_frame = self._acker(
                    lambda c=client: c, "rejected", "an AutoGen worker reads no channel posts"
                )
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
                break
            else:
                return
            worker.identity = name
            if not asked:
                client.takeover = None  # its reconnects replace its own stale session; an asked-for name
                # never takes over: a reconnect that finds the name's agent there ends it (_keep_name)
            try:
                await client.request("register", passport=self._worker_passport(worker))
            except HubError as exc:
                log.warning("worker %s: no hub identity %s: %s", worker.client_id, name, exc)
                return
            if not worker.alive:
                await client.close(worker.gone)
                return
            worker.client = client
            if asked:
                watch = asyncio.get_running_loop().create_task(self._keep_name(worker, client))
                self._watchers.add(watch)
                watch.add_done_callback(self._watchers.discard)

        task = asyncio.get_running_loop().create_task(attach())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _keep_name(self, worker: Worker, client: HubClient) -> None:
        """Under a name it asked for, a worker's session may be taken over by an agent of that name
        (its hello replaces the worker's, or holds the name when the worker reconnects): the worker
        goes on under its default name, and the gateway gives that name to no worker again."""
        await client.ended.wait()
        if _taken_over(client) and worker.alive and worker.client is client:
            worker.client = None
            self._taken_back.add(worker.identity)
            log.warning(
                "worker %s showed as %r until that agent connected: it shows as %s",
                worker.client_id,
                worker.identity,
                worker.default_identity,
            )
            worker.identity = worker.default_identity
            self._attach_worker(worker)

    async def _name_owner(self, name: str) -> str | None:
        """Why `name` is another agent's (None: the hub does not know it, or it is an AutoGen
        worker's). Inside the hub its record is read; a sidecar asks the hub (list_agents)."""
        if name in self._taken_back:
            return "an agent's that took it back from a worker"
        hub = getattr(self.gw, "hub", None)
        if hub is not None and hub.core is not None:
            agent = hub.core.agents.get(name)
            passport = agent.passport if agent is not None else None
            known = agent is not None
        else:
            record = await self._agent_record(name)
            if record is _UNVERIFIED:
                return "a name the gateway could not look up"
            passport, known = (record or {}).get("passport"), record is not None
        if not known:
            return None
        meta = (passport or {}).get("meta")
        return None if isinstance(meta, dict) and meta.get("via") == "autogen" else "another agent's name"

    async def _agent_record(self, name: str) -> Any:
        """`name`'s record from the hub's agent listing (paged in name order from just below it);
        None if the hub does not know it, _UNVERIFIED if too many names lie in between."""
        assert self.gw is not None
        after: str | None = name[:-1]
        for _ in range(20):  # the names between name[:-1] and name: few, unless someone made them so
            page = await self.gw.request("list_agents", **({"after": after} if after else {}))
            for record in page["agents"]:
                if record["name"] == name:
                    return record
                if record["name"] > name:
                    return None
            after = page.get("next")
            if after is None:
                return None
        return _UNVERIFIED  # fail closed: the name is taken as another agent's

    def _worker_passport(self, worker: Worker) -> dict[str, Any]:
        return self._passport(
            f"AutoGen worker {worker.client_id}",
            autogen_worker=worker.client_id,
            autogen_types=sorted(worker.types),
        )
