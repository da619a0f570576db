"""The words every layer shares, each defined once: turn types, the hub's sender name, why a
delivery happened, receipt statuses, process states and run outcomes. Close and error codes are
defined in `agentnet.protocol.errors` and re-exported here so one import finds them all.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import CloseCode, ErrorCode

__all__ = [
    "DISRUPTIVE_STATES",
    "DOWN_STATES",
    "HUB_SENDER",
    "RUNNING_STATES",
    "TURN_TYPES",
    "CloseCode",
    "DeliverReason",
    "ErrorCode",
    "Outcome",
    "ProcState",
    "ReceiptStatus",
]

HUB_SENDER = "hub"  # sender of channel.opened / channel.closed; reserved, no agent may use it
TURN_TYPES = frozenset({"text", "revise"})  # envelope types that carry a turn (and a text to show)


class DeliverReason(StrEnum):
    """Why the hub sent a notify (the `reason` of a `deliver` event)."""

    FIRST = "first"
    REPLAY = "replay"  # on reconnect, or after a hub restart
    NACK = "nack"  # after the recipient nacked it and the backoff passed
    ACK_WAIT = "ack_wait"  # no receipt within ack_wait


class ReceiptStatus(StrEnum):
    """How a delivery ended for its recipient, as the store records it."""

    ACKED = "acked"
    DEAD = "dead"


class ProcState(StrEnum):
    """States of a supervised process (the `state` of a launcher `process` item)."""

    PENDING = "pending"
    STARTING = "starting"
    READY = "ready"
    PAUSED = "paused"
    EXITED = "exited"
    CRASHED = "crashed"
    KILLED = "killed"
    BACKOFF = "backoff"


RUNNING_STATES = frozenset({ProcState.STARTING, ProcState.READY, ProcState.PAUSED})
DOWN_STATES = frozenset({ProcState.EXITED, ProcState.CRASHED, ProcState.KILLED, ProcState.BACKOFF})
# States that may explain a duplicate delivery (the checker): anything but pending and ready.
DISRUPTIVE_STATES = frozenset(
    {ProcState.STARTING, ProcState.EXITED, ProcState.CRASHED, ProcState.KILLED, ProcState.PAUSED, ProcState.BACKOFF}
)


class Outcome(StrEnum):
    """How an `agentnet up` run ended (`summary.json` `outcome`)."""

    PASSED = "passed"  # expect held
    FAILED = "failed"  # expect did not hold by its deadline, or a problem was found
    FINISHED = "finished"  # no expect: ran for its --timeout
    STOPPED = "stopped"  # no expect: stopped by a signal or the dashboard
    INTERRUPTED = "interrupted"  # stopped before expect was decided
    ERROR = "error"  # startup failed

    @property
    def ok(self) -> bool:
        return self in (Outcome.PASSED, Outcome.FINISHED, Outcome.STOPPED)
