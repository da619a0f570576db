"""What a run reports, typed: its status (the control API's `status`, the live status block) and its
summary (summary.json, the printed summary). Both go out as JSON (`to_json`) and come back in
(`status_from_json`, `summary_from_json`) as these dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from agentnet.protocol.vocab import Outcome
from agentnet.run.items import ProcessItem


@dataclass
class Check:
    """One `expect` check and whether it holds."""

    check: str
    ok: bool
    detail: str = ""


@dataclass
class FaultResult:
    at: float
    action: str
    target: str | None
    late: float = 0.0
    result: str = "pending"
    ok: bool = False


@dataclass
class Counts:
    posted: int = 0
    delivered: int = 0
    acked: int = 0
    redelivered: int = 0
    dead_lettered: int = 0
    duplicates_suppressed: int = 0
    expected: int | None = None  # envelope x recipient pairs (exact, from the store)


@dataclass
class RunStatus:
    scenario: str
    run_dir: str
    hub_url: str | None = None
    phase: str = "?"
    clock: str = ""
    elapsed: float = 0.0
    t: float | None = None
    processes: list[ProcessItem] = field(default_factory=list)
    connected: dict[str, bool] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    expect: list[Check] = field(default_factory=list)
    channels: dict[str, str | None] = field(default_factory=dict)
    launcher_pid: int | None = None


@dataclass
class LastText:
    seq: int
    sender: str
    text: str


@dataclass
class ChannelReport:
    alias: str
    channel_id: str | None
    type: str
    creator: str
    participants: list[str]
    state: str
    close_reason: str | None
    envelopes: int
    last_text: LastText | None = None


@dataclass
class CheckSummary:
    ok: bool
    headline: str
    lines: list[str] = field(default_factory=list)


@dataclass
class ProcessSummary:
    name: str
    role: str
    state: str
    reason: str
    restarts: int
    exit_code: int | None


@dataclass
class RunSummary:
    scenario: str
    run_dir: str
    outcome: Outcome
    elapsed: float
    expect: list[Check] = field(default_factory=list)
    faults: list[FaultResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    leftover: list[int] = field(default_factory=list)
    processes: list[ProcessSummary] = field(default_factory=list)
    check: CheckSummary | None = None
    counts: Counts = field(default_factory=Counts)
    channels: list[ChannelReport] = field(default_factory=list)
    exit_code: int = 1


def to_json(report: RunStatus | RunSummary) -> dict[str, Any]:
    return asdict(report)


_STATUS = TypeAdapter(RunStatus)
_SUMMARY = TypeAdapter(RunSummary)


def status_from_json(data: dict[str, Any]) -> RunStatus:
    return _STATUS.validate_python(data)


def summary_from_json(data: dict[str, Any]) -> RunSummary:
    return _SUMMARY.validate_python(data)
