"""The SDK agents and observers use to talk to a hub."""

from .agent import AgentClient, Channel, Delivery, PostResult, WalPage
from .connection import ConnectionLost, HubClient, HubError, HubStandby, HubUnavailable, HubURLError, hub_urls
from .observer import ObserverClient

__all__ = [
    "AgentClient",
    "Channel",
    "ConnectionLost",
    "Delivery",
    "HubClient",
    "HubError",
    "HubStandby",
    "HubURLError",
    "HubUnavailable",
    "ObserverClient",
    "PostResult",
    "WalPage",
    "hub_urls",
]
