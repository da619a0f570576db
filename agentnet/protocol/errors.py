"""Error codes and close codes of the wire contract (protocol v1, sections 2, 3 and 5)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    ACCESS_DENIED = "access_denied"
    TURN_VIOLATION = "turn_violation"
    CONFLICT = "conflict"
    CLOSED = "closed"
    TOO_LARGE = "too_large"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"  # client side only: no response within the request timeout


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003  # binary frame
    INVALID_PAYLOAD = 1007  # undecodable JSON / invalid UTF-8
    POLICY = 1008  # schema violation, wrong role, no hello in time
    TOO_BIG = 1009
    INTERNAL = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    DISCONNECTED = 4000  # an observer or the launcher asked the hub to drop this agent
    SUPERSEDED = 4001  # a newer session with the same name took over
    IN_USE = 4002  # hello with takeover: false while a session of that name is connected
    FORBIDDEN = 4003  # authentication failed
    CLIENT_AHEAD = 4009  # client claims seqs the hub never issued (log regression)
    STANDBY = 4010  # this hub is a standby: try the next URL (the reason names the active hub, if known)


class ProtocolError(Exception):
    """A request or frame the hub refuses: carries the contract's error code."""

    def __init__(self, code: ErrorCode, message: str, *, close: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close  # for a refused hello: the close code, when not the default for `code`

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r})"


# `agentnet agent` exits with this when a newer session took over its name (close 4001): the
# launcher reports it and does not restart the process (that would only take the name back).
EXIT_SUPERSEDED = 41  # (4001, the close code)
