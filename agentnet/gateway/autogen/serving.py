"""Running the AutoGen gateway: as a sidecar process (`agentnet gateway autogen`) or inside the hub
(`agentnet hub --autogen HOST:PORT`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from .gateway import GATEWAY_NAME, AutogenGateway, GatewaySettings


def _write_port(port_file: Any, port: int | None) -> None:

    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(port))
    os.replace(tmp, port_file)


async def _until_signalled() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@contextlib.asynccontextmanager
async def _serving(gw: AutogenGateway, port_file: Any, announce: bool, *, in_hub: bool = False) -> AsyncIterator[None]:
    """Start the gateway (stopped again if that fails), write its port file, say where it listens;
    stop it when the block ends."""
    try:
        await gw.start()
    except BaseException:
        await gw.stop(0)
        raise
    if port_file is not None:
        _write_port(port_file, gw.port)
    if announce:
        summary = gw.summary()
        if in_hub:
            summary = summary.replace(f" as {GATEWAY_NAME}", f" (in this process) as {GATEWAY_NAME}")
        print(summary, flush=True)
    try:
        yield
    finally:
        await gw.stop()


async def run_hub_with_gateway(
    hub_settings: Any, settings: GatewaySettings, *, port_file: Any = None, announce: bool = True
) -> None:
    """`agentnet hub --autogen HOST:PORT`: the hub and the gateway in one process. The gateway's
    identities attach to the hub's core directly (no WebSocket hop, no second process). On a shared
    store the gateway serves only while this hub is the active one: it starts once the hub has
    taken the lead, and stops with it."""
    from agentnet.gateway.local import LocalHubClient
    from agentnet.hub.server import run_hub

    def gateway(hub: Any) -> contextlib.AbstractAsyncContextManager[None]:
        settings.hub = hub.url
        gw = AutogenGateway(settings, connect=lambda name: LocalHubClient(hub, name=name))
        return _serving(gw, port_file, announce, in_hub=True)

    # Each RPC is a request, a response record and their receipts and cursor rows: let the last
    # three share the next request's commit, and a busy hub's commits take many RPCs (measured in
    # docs/autogen.md, "Performance"). Explicit settings win.
    given = hub_settings.model_fields_set
    tuned = {k: v for k, v in (("bookkeeping_wait", 0.005), ("commit_delay", 0.005)) if k not in given}
    await run_hub(hub_settings.model_copy(update=tuned), announce=announce, alongside=gateway)


async def run_gateway(settings: GatewaySettings, *, port_file: Any = None, announce: bool = True) -> None:
    """Run until SIGTERM/SIGINT, then stop serving and close the hub connections."""
    async with _serving(AutogenGateway(settings), port_file, announce):
        await _until_signalled()
        if announce:
            print("agentnet autogen gateway: shutting down (workers are disconnected; their backlog stays in the hub)")
