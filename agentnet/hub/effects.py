"""What the delivery core asks its shell to do (effects), what a commit releases (after-commit
actions), a connection's session, and the frames the core sends (responses, errors). Plain values:
the core returns them, the shell (`server.py`) carries them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from agentnet.protocol import events
from agentnet.protocol.errors import ErrorCode

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

# ----------------------------------------------------------------------------- sessions and frames


PEER_MAX_SIZE = 1024 * 1024  # the contract's default frame limit of a peer that declares none


@dataclass(slots=True)
class Session:
    conn: int
    name: str
    role: str
    session_id: str
    max_size: int = PEER_MAX_SIZE  # the largest frame this peer accepts (hello.max_size)


def _response(request_id: str, result: Any) -> bytes:
    return orjson.dumps({"kind": "response", "request_id": request_id, "ok": True, "result": result})


def _error_response(request_id: str, code: ErrorCode | str, message: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "response",
            "request_id": request_id,
            "ok": False,
            "error_code": str(code),
            "error_message": message,
        }
    )


def error_frame(code: ErrorCode | str, message: str) -> bytes:
    return orjson.dumps({"kind": "error", "code": str(code), "message": message})
