"""What a brain is: given the turn an agent owes, produce its reply.

Brains are async and must never block the event loop (CPU-heavy or blocking work goes to a thread),
because the same loop answers the hub's keepalive pings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class BrainRequest:
    """The turn to answer: the envelope that asks for it plus the channel's context."""

    agent: str  # the name of the agent whose brain this is
    text: str  # the prompt text (envelope data["text"], or "" if none)
    data: dict[str, Any]  # the whole envelope data
    sender: str
    channel_id: str
    channel_type: str  # consulting | conversation | discussion | workflow
    topic: str | None = None
    seq: int = 0
    attempt: int = 1
    history: tuple[dict[str, Any], ...] = ()  # earlier envelopes of the channel (sender, type, data), oldest first
    meta: dict[str, Any] = field(default_factory=dict)  # channel-type extras (round, step, revision, ...)


@dataclass(frozen=True, slots=True)
class BrainReply:
    text: str
    data: dict[str, Any] = field(default_factory=dict)  # merged into the reply envelope's data besides "text"


class Brain(Protocol):
    name: str

    async def reply(self, request: BrainRequest) -> BrainReply:
        """Answer the turn, or raise BrainError (the turn is nacked and redelivered later)."""
        ...

    async def aclose(self) -> None:
        """Release resources (HTTP sessions, threads). Called once when the agent stops."""
        ...


class BrainError(Exception):
    """The brain could not answer this turn now; the envelope is nacked with this message."""
