"""Feed items: what the launcher hands its views (the dashboard, the headless log) and its recording.

A feed item is ``(kind, payload)``: ``snapshot`` and ``event`` come from the hub's observer feed
(decode them with `agentnet.protocol.events`); ``process``, ``caption``, ``fault``, ``control``,
``stats`` and ``status`` come from the launcher or the dashboard's own sources.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from agentnet.protocol.events import EventError
from agentnet.protocol.vocab import ProcState

_CONFIG = ConfigDict(arbitrary_types_allowed=True)

FeedItem = tuple[str, dict[str, Any]]
"""One item of a feed: ``(kind, payload)`` with kind in :data:`FEED_KINDS`."""

FEED_KINDS = ("snapshot", "event", "process", "caption", "fault", "stats", "status", "control")


# --------------------------------------------------------------------------- the launcher's items


@dataclass(frozen=True, slots=True)
class ProcessItem:
    """A supervised process changed state (`kind: process`; the supervisor's `Process.info()`)."""

    __pydantic_config__ = _CONFIG

    name: str
    role: str = "agent"
    pid: int | None = None
    state: str = ProcState.PENDING
    reason: str = ""
    restarts: int = 0  # automatic restarts (the policy's count)
    operator_restarts: int = 0  # restarts the operator asked for
    fault_restarts: int = 0  # restarts a scenario's fault made
    started_at: str | None = None
    last_restart_at: str | None = None
    exit_code: int | None = None
    at: str | float | None = None  # an ISO time (the launcher) or epoch seconds (the dashboard)


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """One entry of the scenario's fault timeline, as the t = 0 caption carries it."""

    __pydantic_config__ = _CONFIG

    at: float = 0.0
    action: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Caption:
    """A line of narration for the people watching (`kind: caption`)."""

    __pydantic_config__ = _CONFIG

    text: str = ""
    at: str | float | None = None  # an ISO time (the launcher) or epoch seconds (the dashboard)
    t0: bool = False  # this caption marks the scenario's t = 0 (the launcher's "ready" line) ...
    faults: list[ScheduledFault] = field(default_factory=list)  # ... and carries the fault timeline


@dataclass(frozen=True, slots=True)
class FaultItem:
    """A scripted fault fired (`kind: fault`)."""

    __pydantic_config__ = _CONFIG

    action: str = "?"
    target: str | None = None
    caption: str | None = None
    at: str | float | None = None  # an ISO time (the launcher) or epoch seconds (the dashboard)


@dataclass(frozen=True, slots=True)
class ControlItem:
    """A control was acted on, or refused (`kind: control`): who asked, and the answer."""

    __pydantic_config__ = _CONFIG

    verb: str = "?"
    target: str | None = None
    source: str = "operator"  # operator | fault
    origin: str = "?"  # dashboard | ctl | script
    message: str = ""
    error: bool = False
    at: str | float | None = None  # an ISO time (the launcher) or epoch seconds (the dashboard)


@dataclass(frozen=True, slots=True)
class ProcStats:
    __pydantic_config__ = _CONFIG

    cpu: float | None = None
    rss: float | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class StatsItem:
    """CPU and memory of the run's processes, sampled by the dashboard (`kind: stats`)."""

    __pydantic_config__ = _CONFIG

    procs: dict[str, ProcStats] = field(default_factory=dict)
    at: str | float | None = None  # an ISO time (the launcher) or epoch seconds (the dashboard)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The state of the feed's source (`kind: status`): connected, reconnecting, ended, failed, ..."""

    __pydantic_config__ = _CONFIG

    state: str = "?"
    detail: str = ""
    at: str | float | None = None


LauncherItem = ProcessItem | Caption | FaultItem | ControlItem | StatsItem | FeedStatus
ITEM_CLASSES: dict[str, type] = {
    "process": ProcessItem,
    "caption": Caption,
    "fault": FaultItem,
    "control": ControlItem,
    "stats": StatsItem,
    "status": FeedStatus,
}
_ADAPTERS = {kind: TypeAdapter(cls) for kind, cls in ITEM_CLASSES.items()}


def decode_item(kind: str, data: dict[str, Any]) -> LauncherItem:
    """A launcher item's payload as its dataclass. Raises EventError (a ValueError) if malformed or
    of a kind that is not a launcher item."""
    try:
        adapter = _ADAPTERS[kind]
    except KeyError:
        raise EventError(f"not a launcher item kind: {kind!r}") from None
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "item"
        raise EventError(f"{kind} item: {where}: {first['msg'].lower()}") from None


def encode_item(item: LauncherItem) -> dict[str, Any]:
    """The payload of a launcher item as it is recorded (`kind` first, like the hub's frames)."""
    kind = next(k for k, cls in ITEM_CLASSES.items() if type(item) is cls)
    out: dict[str, Any] = {"kind": kind}
    out.update(asdict(item))
    return out
