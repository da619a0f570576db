"""A deterministic sample run for the dashboard tests: a consult, then a kill/replay episode.

Story (times are seconds after 2026-11-20T10:00:00Z; the scenario's t = 0 is at 1.0, so the panes
show each of these times less 1 s):

* the launcher starts the hub, alice (asker), bob (expert) and carol (reviewer);
* the dashboard gets a snapshot; the agents connect; alice opens a consulting channel with bob
  ("arithmetic") and a discussion with carol ("review");
* alice asks "What is 12 times 11?", bob answers "132" — delivered and acked;
* caption: kill bob while a question is in flight; alice asks "And 7 times 6?"; bob gets it and is
  killed before acking; alice posts "Are you there?" while bob is down;
* the launcher restarts bob; bob reconnects and the hub replays 2 envelopes (attempt 2 of #4);
  bob nacks #5 once (busy), gets it again and acks; bob answers "42";
* carol receives alice's review request and never acks it: her cursor is stuck at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentnet.run.recording import RecordingWriter

BASE = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
END_T = 20.0

Item = tuple[float, str, dict[str, Any]]


def iso(t: float) -> str:
    return (BASE + timedelta(seconds=t)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SampleBuilder:
    """Builds feed items with consistent event_seq, cursors and channel heads."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.event_seq = 0
        self.heads: dict[str, int] = {}
        self.participants: dict[str, list[str]] = {}
        self.floors: dict[tuple[str, str], int] = {}
        self.delivered: dict[tuple[str, str], int] = {}
        self.unacked: dict[tuple[str, str], set[int]] = {}
        self.envelope_ids: dict[tuple[str, int], str] = {}
        self.pids = {"hub": 4100, "alice": 4101, "bob": 4102, "carol": 4103}
        self.restarts: dict[str, int] = {}
        self.started: dict[str, float] = {}

    # -------------------------------------------------------------- raw items

    def add(self, t: float, kind: str, data: dict[str, Any]) -> None:
        self.items.append((round(t, 6), kind, data))

    def event(self, t: float, type_: str, **fields: Any) -> None:
        self.event_seq += 1
        self.add(t, "event", {"kind": "event", "event_seq": self.event_seq, "at": iso(t), "type": type_, **fields})

    def process(self, t: float, name: str, state: str, reason: str = "", exit_code: int | None = None) -> None:
        if state == "starting":
            self.started[name] = t
        pid = self.pids[name] if state in ("starting", "ready", "paused") else None
        restarts = self.restarts.get(name, 0)
        last = self.started.get(name) if restarts else None
        self.add(
            t,
            "process",
            {
                "kind": "process",
                "at": iso(t),
                "name": name,
                "role": "hub" if name == "hub" else "agent",
                "pid": pid,
                "state": state,
                "reason": reason,
                "restarts": restarts,
                "started_at": iso(self.started[name]) if name in self.started and pid else None,
                "last_restart_at": iso(last) if last is not None else None,
                "exit_code": exit_code,
            },
        )

    # -------------------------------------------------------------- protocol-shaped helpers

    def open_channel(self, t: float, channel_id: str, type_: str, topic: str, creator: str, who: list[str]) -> None:
        self.participants[channel_id] = who
        self.heads[channel_id] = 0
        channel = {
            "channel_id": channel_id,
            "type": type_,
            "topic": topic,
            "creator": creator,
            "participants": who,
            "state": "open",
            "head_seq": 0,
            "created_at": iso(t),
            "closed_at": None,
            "close_reason": None,
            "knobs": {},
        }
        self.event(t, "channel.opened", channel=channel)
        self.post(t, channel_id, "hub", "channel.opened", {"topic": topic}, audience=who)

    def post(
        self,
        t: float,
        channel_id: str,
        sender: str,
        type_: str,
        data: dict[str, Any],
        audience: list[str] | None = None,
        causation_id: str | None = None,
    ) -> int:
        self.heads[channel_id] += 1
        seq = self.heads[channel_id]
        envelope_id = f"env-{channel_id}-{seq}"
        self.envelope_ids[(channel_id, seq)] = envelope_id
        self.event(
            t,
            "wal.append",
            envelope={
                "envelope_id": envelope_id,
                "channel_id": channel_id,
                "seq": seq,
                "sender": sender,
                "audience": audience,
                "type": type_,
                "data": data,
                "causation_id": causation_id,
                "idempotency_key": None,
                "created_at": iso(t),
            },
        )
        return seq

    def cursor(self, t: float, who: str, channel_id: str) -> None:
        key = (who, channel_id)
        unacked = self.unacked.get(key, set())
        floor = self.floors.get(key, 0)
        self.event(
            t,
            "cursor",
            recipient=who,
            channel_id=channel_id,
            ack_floor=floor,
            delivered_seq=self.delivered.get(key, 0),
            inflight=len(unacked),
            lag=self.heads[channel_id] - floor,
        )

    def deliver(self, t: float, who: str, channel_id: str, seq: int, attempt: int = 1, reason: str = "first") -> None:
        key = (who, channel_id)
        self.unacked.setdefault(key, set()).add(seq)
        self.delivered[key] = max(self.delivered.get(key, 0), seq)
        self.event(
            t,
            "deliver",
            recipient=who,
            channel_id=channel_id,
            seq=seq,
            envelope_id=self.envelope_ids[(channel_id, seq)],
            attempt=attempt,
            reason=reason,
        )
        self.cursor(t, who, channel_id)

    def ack(self, t: float, who: str, channel_id: str, seq: int) -> None:
        key = (who, channel_id)
        self.unacked.get(key, set()).discard(seq)
        self.event(
            t, "ack", recipient=who, channel_id=channel_id, seq=seq, envelope_id=self.envelope_ids[(channel_id, seq)]
        )
        floor = self.floors.get(key, 0)
        while floor + 1 <= self.delivered.get(key, 0) and floor + 1 not in self.unacked.get(key, set()):
            floor += 1
        self.floors[key] = floor
        self.cursor(t, who, channel_id)

    def nack(self, t: float, who: str, channel_id: str, seq: int, reason: str) -> None:
        self.event(
            t,
            "nack",
            recipient=who,
            channel_id=channel_id,
            seq=seq,
            envelope_id=self.envelope_ids[(channel_id, seq)],
            attempt=1,
            reason=reason,
        )

    def stats(self, t: float) -> None:
        procs = {
            name: {"cpu": 1.0 + index * 2, "rss": (30 + index * 4) * 1024 * 1024}
            for index, name in enumerate(self.pids)
        }
        self.add(t, "stats", {"at": iso(t), "procs": procs})


def build_sample() -> list[Item]:
    b = SampleBuilder()
    b.process(0.0, "hub", "starting")
    b.process(0.3, "hub", "ready", "healthz ok")
    b.add(
        0.35,
        "snapshot",
        {
            "hub": {"hub_id": "hub-7f3a", "started_at": iso(0.2), "store": "sqlite", "event_seq": 0},
            "agents": [],
            "channels": [],
            "cursors": [],
        },
    )
    for name, t in (("alice", 0.4), ("bob", 0.45), ("carol", 0.5)):
        b.process(t, name, "starting")
    for index, name in enumerate(("alice", "bob", "carol")):
        t = 0.8 + index * 0.05
        b.process(t, name, "ready")
        b.event(t, "agent.connected", name=name, agent_id=f"ag-{name}", session_id=f"s-{name}-1", role="agent")
        b.event(t + 0.01, "agent.registered", name=name, agent_id=f"ag-{name}", passport={"description": name})
    b.add(
        1.0,
        "caption",
        {
            "kind": "caption",
            "at": iso(1.0),
            "text": "alice consults bob; carol reviews; t = 0",
            "t0": True,  # the scenario's t = 0 (the launcher's ready line), with its fault timeline
            "faults": [{"at": 4.0, "action": "kill", "target": "bob"}],
        },
    )
    b.stats(1.0)

    b.open_channel(1.2, "arith", "consulting", "arithmetic", "alice", ["alice", "bob"])
    for who in ("alice", "bob"):
        b.deliver(1.25, who, "arith", 1)
    for who in ("alice", "bob"):
        b.ack(1.3, who, "arith", 1)
    q = b.post(2.0, "arith", "alice", "text", {"text": "What is 12 times 11?"})
    b.deliver(2.02, "bob", "arith", q)
    b.ack(2.1, "bob", "arith", q)
    a = b.post(2.6, "arith", "bob", "text", {"text": "132"}, causation_id=b.envelope_ids[("arith", q)])
    b.deliver(2.62, "alice", "arith", a)
    b.ack(2.7, "alice", "arith", a)
    b.stats(3.0)

    b.add(4.0, "caption", {"kind": "caption", "at": iso(4.0), "text": "now kill bob while a question is in flight"})
    q2 = b.post(4.5, "arith", "alice", "text", {"text": "And 7 times 6?"})
    b.deliver(4.52, "bob", "arith", q2)
    b.add(5.0, "fault", {"kind": "fault", "at": iso(5.0), "action": "kill", "target": "bob", "caption": "SIGKILL"})
    b.process(5.0, "bob", "killed", "SIGKILL by scenario", exit_code=-9)
    b.event(5.05, "agent.disconnected", name="bob", session_id="s-bob-1", code=1006, reason="connection lost")
    q3 = b.post(5.6, "arith", "alice", "text", {"text": "Are you there?"})
    b.cursor(5.6, "bob", "arith")
    b.process(6.0, "bob", "backoff", "restart in 1.0 s")
    b.restarts["bob"] = 1
    b.process(7.0, "bob", "starting", "restart 1")
    b.process(7.4, "bob", "ready")
    b.event(7.45, "agent.connected", name="bob", agent_id="ag-bob", session_id="s-bob-2", role="agent")
    b.event(7.5, "replay.start", recipient="bob", count=2)
    b.deliver(7.52, "bob", "arith", q2, attempt=2, reason="replay")
    b.deliver(7.53, "bob", "arith", q3, attempt=1, reason="replay")
    b.event(7.54, "replay.end", recipient="bob", count=2)
    b.ack(7.8, "bob", "arith", q2)
    b.nack(7.9, "bob", "arith", q3, "busy")
    b.deliver(8.9, "bob", "arith", q3, attempt=2, reason="nack")
    b.ack(9.0, "bob", "arith", q3)
    a2 = b.post(9.4, "arith", "bob", "text", {"text": "42"}, causation_id=b.envelope_ids[("arith", q2)])
    b.deliver(9.42, "alice", "arith", a2)
    b.ack(9.5, "alice", "arith", a2)
    b.stats(10.0)

    b.add(11.0, "caption", {"kind": "caption", "at": iso(11.0), "text": "carol holds an envelope without acking"})
    b.open_channel(11.2, "review", "discussion", "review", "alice", ["alice", "carol"])
    for who in ("alice", "carol"):
        b.deliver(11.25, who, "review", 1)
    for who in ("alice", "carol"):
        b.ack(11.3, who, "review", 1)
    r = b.post(12.0, "review", "alice", "text", {"text": "Please review the answers 132 and 42."})
    b.deliver(12.05, "carol", "review", r)
    for index in range(6):
        t = 13.0 + index
        b.post(t, "arith", "alice", "text", {"text": f"ping {index + 1}"})
        b.deliver(t + 0.02, "bob", "arith", b.heads["arith"])
        b.ack(t + 0.05, "bob", "arith", b.heads["arith"])
    b.stats(END_T)
    b.add(
        END_T, "caption", {"kind": "caption", "at": iso(END_T), "text": "carol's cursor is stuck: see the cursors pane"}
    )
    return b.items


def write_sample_recording(path: str | Path) -> Path:
    path = Path(path)
    with RecordingWriter(path, meta={"title": "sample", "source": "tests"}) as writer:
        for t, kind, data in build_sample():
            writer.write(kind, data, t=t)
    return path


def sample_feed_items() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, data) for _, kind, data in build_sample()]
