"""What the delivery core asks its shell to do (effects), and what a commit releases (after-commit
actions). Plain frozen values: the core returns them, the shell (`server.py`) carries them out."""

from __future__ import annotations

from dataclasses import dataclass

from agentnet.protocol import events

# ----------------------------------------------------------------------------- effects


@dataclass(slots=True, frozen=True)
class Send:
    """Queue these bytes (one frame) for the connection."""

    conn: int
    data: bytes


@dataclass(slots=True, frozen=True)
class Close:
    """Close the connection after what is queued for it, with this code and reason."""

    conn: int
    code: int
    reason: str


@dataclass(slots=True, frozen=True)
class Emit:
    """An event for observers (the shell stamps, encodes and fans it out)."""

    event: events.Event


@dataclass(slots=True, frozen=True)
class Subscribe:
    """Start the observer feed for this connection (right after its snapshot was sent)."""

    conn: int


Effect = Send | Close | Emit | Subscribe

# ----------------------------------------------------------------------------- after a commit


@dataclass(slots=True, frozen=True)
class RespondChannel:
    """Answer an open_channel / close_channel request with the channel as it is once committed."""

    conn: int
    request_id: str
    channel_id: str


@dataclass(slots=True, frozen=True)
class AnnounceChannel:
    """Tell observers a channel opened (or closed), once that is durable."""

    channel_id: str
    opened: bool


AfterCommit = Send | RespondChannel | AnnounceChannel
