"""The AutoGen gateway finds its registry channel (agent types, subscriptions) when it restarts, also
when its identity is in more channels than one `list_channels` page holds: listings come in pages
(at most 1,000 channels each), and a registry on a later page must not be taken for no registry
(a new, empty one would forget every type and subscription).

Real hub shell on a SQLite store, the gateway inside it (`LocalHubClient`, as `agentnet hub --autogen`).
"""

from __future__ import annotations

from pathlib import Path

from agentnet.gateway.autogen.gateway import GATEWAY_NAME, AutogenGateway, GatewaySettings
from agentnet.gateway.local import LocalHubClient
from agentnet.hub.server import Hub, HubSettings

FILLERS = 1_050  # channels of the gateway's identity besides the registry: more than a page


async def test_the_gateway_finds_its_registry_beyond_the_first_page(tmp_path: Path) -> None:
    hub = Hub(HubSettings(port=0, store=f"sqlite:{tmp_path / 'hub.db'}"))
    await hub.start()
    settings = GatewaySettings(hub=hub.url, port=0)
    try:
        other = LocalHubClient(hub, name="other")
        await other.start()
        await other.close()
        gw_identity = LocalHubClient(hub, name=GATEWAY_NAME)
        await gw_identity.start()
        for _ in range(FILLERS):
            await gw_identity.request("open_channel", type="conversation", participants=["other"])
        await gw_identity.close()

        first = AutogenGateway(settings, connect=lambda name: LocalHubClient(hub, name=name))
        await first.start()
        data = {"type": "echo", "identity": "ag-echo", "channel_id": "ch-inbox"}
        await first._record("ag.type", data, "agent type echo")
        registry = first.registry_channel
        await first.stop(0)

        again = AutogenGateway(settings, connect=lambda name: LocalHubClient(hub, name=name))
        await again.start()
        try:
            assert again.registry_channel == registry
            assert set(again.types) == {"echo"}
        finally:
            await again.stop(0)
    finally:
        await hub.stop()
