"""`agentnet check RUN_DIR`: the delivery invariants of a finished run, from what it left on disk.

Sources, all in the run directory:

* the hub's store (`run.json` names it; SQLite, opened read-only): every envelope, every channel's
  participants, and the hub's receipts (acked or dead-lettered, per recipient);
* each agent's processed-log (`agents/NAME/processed.jsonl`): what the agent did with each
  delivery (`applied`, `dedup_skipped`, `rejected`, `failed`), fsynced before its ack;
* the recording (`recording.jsonl`): process, fault and hub events, used to explain duplicates.
  With the memory store it is also where the envelopes and receipts come from.

Invariants (each violation is one line of the report; any violation means exit code 1):

* undelivered   every envelope reached every recipient at least once, or was dead-lettered. An
                envelope the hub still owes a recipient when the run stopped (above its ack floor,
                kept in the WAL, delivered when it comes back) is *pending*: reported, and a
                violation only with `strict` (`agentnet check --strict`). One the hub has moved
                the recipient's ack floor past without a receipt or a processed-log entry is lost.
* unprocessed   no envelope acked by the hub that its recipient's processed-log does not show (agents
                that run any program, `command:` in the scenario, keep no processed-log: for them
                the hub's receipts are the only record, and this check does not apply)
* order         first deliveries (attempt 1) to one recipient in one channel came in seq order
* duplicate     an envelope processed again only where a fault explains it (a restart, kill,
                pause, disconnect, hub restart, ack_wait or nack), and then `dedup_skipped`
* mismatch      a processed-log entry whose envelope the store does not have
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentnet.protocol.events import (
    Ack,
    AgentDisconnected,
    AnyEvent,
    ChannelClosed,
    ChannelOpened,
    CursorMoved,
    DeadLetter,
    Deliver,
    EnvelopeView,
    EventError,
    ObserverLagged,
    WalAppend,
    decode_envelope,
    decode_event,
    decode_snapshot,
    recipients_of,
)
from agentnet.protocol.ids import parse_time
from agentnet.protocol.vocab import DISRUPTIVE_STATES, TURN_TYPES, DeliverReason, ReceiptStatus
from agentnet.run.items import FaultItem, LauncherItem, ProcessItem, decode_item

from .storeview import StoredReceipt as Receipt
from .storeview import StoreView

RUN_FILE = "run.json"
RECORDING_FILE = "recording.jsonl"
SCENARIO_FILE = "scenario.yaml"
PROCESSED_GLOB = "agents/*/processed.jsonl"
PROCESSED_EFFECTS = ("applied", "dedup_skipped", "rejected")  # the ones that justify an ack
SHOW = 12  # violations listed per kind
WINDOW_BEFORE = 3.0  # seconds before the first processing in which a disruption still explains a duplicate


class CheckError(Exception):
    """The directory is not a run directory the checker can read (exit code 2)."""


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Env:
    channel_id: str
    seq: int
    envelope_id: str
    sender: str
    recipients: tuple[str, ...]
    type: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a processed-log."""

    line: int
    ts: float | None
    agent: str
    channel_id: str
    seq: int
    envelope_id: str
    attempt: int
    effect: str


@dataclass(frozen=True, slots=True)
class Disruption:
    at: float
    agent: str | None  # None: affects every agent (the hub)
    what: str
    key: tuple[str, int] | None = None  # (channel_id, seq) when it concerns one envelope only


@dataclass
class Facts:
    source: str  # where envelopes and receipts came from
    envelopes: dict[tuple[str, int], Env] = field(default_factory=dict)
    channels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # channel_id -> participants
    receipts: dict[tuple[str, str, int], Receipt] = field(default_factory=dict)  # (recipient, ch, seq)
    redelivered: int = 0
    floors: defaultdict[tuple[str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )  # (recipient, ch) -> ack floor
    processed: dict[str, list[Entry]] = field(default_factory=dict)
    logs_found: set[str] = field(default_factory=set)
    unlogged: set[str] = field(default_factory=set)  # `command:` agents: no processed-log by design
    scenario_agents: set[str] = field(default_factory=set)  # every process name the scenario declares
    disruptions: list[Disruption] = field(default_factory=list)
    first_deliveries: dict[tuple[str, str, int, int], float] = field(default_factory=dict)
    recording: bool = False
    notes: list[str] = field(default_factory=list)


def load_facts(run_dir: Path) -> Facts:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckError(f"{run_dir}: no such directory")
    meta = _RunMeta()
    if (run_dir / RUN_FILE).exists():
        try:
            meta = _RunMeta.model_validate(json.loads((run_dir / RUN_FILE).read_text()))
        except ValidationError as exc:
            raise CheckError(f"{run_dir / RUN_FILE}: not a run description ({exc.errors()[0]['msg']})") from None
        except ValueError as exc:
            raise CheckError(f"{run_dir / RUN_FILE}: not JSON ({exc})") from None
    store = _store_path(run_dir, meta)
    recording = run_dir / RECORDING_FILE
    if isinstance(store, str):
        facts = _facts_from_postgres(store, meta.store_url)
    elif store is not None:
        facts = _facts_from_store(store)
    elif recording.exists():
        facts = Facts(source=f"recording {recording} (the hub's store was memory)")
    else:
        raise CheckError(f"{run_dir}: not a run directory (no {RUN_FILE} naming a store, no hub store, no recording)")
    if recording.exists():
        _read_recording(recording, facts, envelopes_too=store is None)
    else:
        facts.notes.append("no recording: duplicates cannot be explained")
    for path in sorted(run_dir.glob(PROCESSED_GLOB)):
        agent = path.parent.name
        facts.logs_found.add(agent)
        facts.processed[agent] = _read_processed(path, agent, facts)
    facts.unlogged = _command_agents(run_dir / SCENARIO_FILE) - facts.logs_found
    facts.scenario_agents = _scenario_agents(run_dir / SCENARIO_FILE)
    if facts.unlogged:
        facts.notes.append(
            f"{', '.join(sorted(facts.unlogged))}: any program (command:), no processed-log; "
            "their acks are the hub's receipts only"
        )
    return facts


class _RunMeta(BaseModel):
    """The part of the run directory's `run.json` the checker reads."""

    model_config = ConfigDict(extra="ignore")
    store: Any = None
    store_url: Any = None


class _AgentEntry(BaseModel):
    """One `agents:` entry of the run's scenario copy, as far as the checker needs it (read leniently:
    the scenario was validated when the run started)."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(strict=True)
    replicas: Any = 1
    command: Any = None

    def process_names(self) -> list[str]:
        n = self.replicas if isinstance(self.replicas, int) else 1
        return [self.name] if n <= 1 else [f"{self.name}-{i}" for i in range(1, n + 1)]


class _ScenarioAgents(BaseModel):
    model_config = ConfigDict(extra="ignore")
    agents: list[_AgentEntry] = []

    @field_validator("agents", mode="before")
    @classmethod
    def _readable_entries(cls, value: Any) -> list[_AgentEntry]:
        entries: list[_AgentEntry] = []
        for spec in value if isinstance(value, list) else []:
            with contextlib.suppress(ValidationError):
                entries.append(_AgentEntry.model_validate(spec))
        return entries


def _scenario_entries(path: Path) -> list[_AgentEntry]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(data, dict):
        return []
    return _ScenarioAgents.model_validate(data).agents


def _scenario_agents(path: Path) -> set[str]:
    """Every process name the scenario declares (replicas expanded); empty if it cannot be read."""
    return {name for spec in _scenario_entries(path) for name in spec.process_names()}


def _command_agents(path: Path) -> set[str]:
    """The process names of the scenario's `command:` agents (replicas expanded)."""
    return {name for spec in _scenario_entries(path) if spec.command for name in spec.process_names()}


def _store_path(run_dir: Path, meta: _RunMeta) -> Path | str | None:
    """The sqlite file, or for PostgreSQL a `postgresql...` spec (read by `_facts_from_postgres`)."""
    spec = meta.store
    if isinstance(spec, str) and spec.startswith("postgres"):
        return spec
    if isinstance(spec, str) and spec.startswith("sqlite:"):
        path = Path(spec.removeprefix("sqlite:"))
        if not path.is_absolute():
            path = run_dir / path
        if not path.exists():
            raise CheckError(f"{run_dir}: the hub's store {path} is missing")
        return path
    if spec == "memory":
        return None
    for pattern in ("hub.sqlite3", "hub.db", "*.sqlite3", "*.db"):
        found = sorted(run_dir.glob(pattern))
        if found:
            return found[0]
    return None


def _facts_from_postgres(spec: str, url: str | None) -> Facts:
    """A PostgreSQL store: the database at `url` if it answers (the launcher's own server while it
    runs), else the run's local cluster (`postgresql-local:DIR`) started for the reading, or the URL."""
    import psycopg

    local = None
    if spec.startswith("postgresql-local:"):
        datadir = Path(spec.removeprefix("postgresql-local:"))
        if url is not None:
            try:
                with psycopg.connect(url, connect_timeout=2) as probe:
                    probe.execute("SELECT 1")
            except psycopg.Error:
                url = None
        if url is None:
            from agentnet.pglocal import LocalPostgres, PgLocalError

            try:
                local = LocalPostgres(datadir, existing=True).start()
            except PgLocalError as exc:
                raise CheckError(f"cannot start the run's PostgreSQL in {datadir}: {exc}") from None
            url = local.url
    else:
        url = spec
    try:
        try:
            db = psycopg.connect(url, connect_timeout=5)
        except psycopg.Error as exc:
            raise CheckError(f"cannot open the store {spec}: {' '.join(str(exc).split())}") from None
        try:
            return _facts_from_db(StoreView(db), spec, psycopg.Error)
        finally:
            db.close()
    finally:
        if local is not None:
            local.stop()


def _facts_from_store(path: Path) -> Facts:
    try:
        view = StoreView.sqlite(path)
    except sqlite3.Error as exc:
        raise CheckError(f"cannot open the store {path}: {exc}") from None
    try:
        return _facts_from_db(view, str(path), sqlite3.Error)
    finally:
        view.close()


def _facts_from_db(view: StoreView, where: str, errors: type[Exception] | tuple[type[Exception], ...]) -> Facts:
    """Every channel, envelope, receipt and cursor of a store (the same tables in sqlite and PostgreSQL)."""
    facts = Facts(source=f"store {where}")
    try:
        facts.channels.update(view.channels())
        for env in view.envelopes():
            recipients = recipients_of(env, facts.channels.get(env.channel_id, ()))
            text = None
            if env.type in TURN_TYPES and env.body is not None:
                with contextlib.suppress(ValueError, AttributeError):
                    text = decode_envelope(json.loads(bytes(env.body))).text
            facts.envelopes[(env.channel_id, env.seq)] = Env(
                env.channel_id, env.seq, env.envelope_id, env.sender, recipients, env.type, text
            )
        for r in view.receipts():
            facts.receipts[(r.recipient, r.channel_id, r.seq)] = r
        for cur in view.cursors():
            facts.floors[(cur.recipient, cur.channel_id)] = cur.ack_floor
            facts.redelivered += cur.redelivered
    except errors as exc:
        raise CheckError(f"cannot read the store {where}: {exc}") from None
    return facts


def _read_recording(path: Path, facts: Facts, *, envelopes_too: bool) -> None:
    facts.recording = True
    snapshots = 0
    with path.open("rb") as handle:
        handle.readline()  # the header
        for raw in handle:
            try:
                line = json.loads(raw)
                kind, data = line["kind"], line["data"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
            at = parse_time(data["at"]) if isinstance(data, dict) and "at" in data else None
            if kind == "snapshot":
                snapshots += 1
                if envelopes_too:
                    with contextlib.suppress(EventError):
                        for ch in decode_snapshot(data).channels:
                            facts.channels[ch.channel_id] = tuple(ch.participants)
                continue
            if at is None:
                continue
            if kind in ("process", "fault"):
                with contextlib.suppress(EventError):
                    _read_launcher_item(decode_item(kind, data), at, facts)
            elif kind == "event":
                with contextlib.suppress(EventError):
                    _read_event(decode_event(data), at, facts, envelopes_too)


def _read_launcher_item(item: LauncherItem, at: float, facts: Facts) -> None:
    match item:
        case ProcessItem(name=name, role=role, state=state, reason=reason) if state in DISRUPTIVE_STATES:
            what = f"{name} {state}" + (f" ({reason})" if reason else "")
            facts.disruptions.append(Disruption(at, None if role == "hub" else name, what))
        case FaultItem(action=action, target=target):
            facts.disruptions.append(Disruption(at, target, f"fault {action} {target or ''}".strip()))


def _read_event(ev: AnyEvent, at: float, facts: Facts, envelopes_too: bool) -> None:
    match ev:
        case AgentDisconnected(name=name, code=code):
            facts.disruptions.append(Disruption(at, name, f"{name} disconnected ({code})"))
        case Deliver(recipient=recipient, channel_id=channel_id, seq=seq, attempt=attempt, reason=reason):
            facts.first_deliveries.setdefault((recipient, channel_id, seq, attempt), at)
            if reason in (DeliverReason.ACK_WAIT, DeliverReason.NACK):
                facts.disruptions.append(Disruption(at, recipient, f"redelivered after {reason}", (channel_id, seq)))
            if envelopes_too and attempt > 1:
                facts.redelivered += 1
        case CursorMoved(recipient=recipient, channel_id=channel_id, ack_floor=floor) if envelopes_too:
            key = (recipient, channel_id)
            facts.floors[key] = max(facts.floors[key], floor)
        case ObserverLagged(dropped=dropped):
            facts.disruptions.append(Disruption(at, None, "events lost (the recorder lagged)"))
            facts.notes.append(f"the recording lost {dropped} events (observer lagged)")
        case WalAppend(envelope=EnvelopeView() as env) if envelopes_too:
            participants = facts.channels.get(env.channel_id, ())
            text = env.text if env.type in TURN_TYPES else None
            facts.envelopes[(env.channel_id, env.seq)] = Env(
                env.channel_id, env.seq, env.envelope_id, env.sender, recipients_of(env, participants), env.type, text
            )
        case ChannelOpened(channel=info) | ChannelClosed(channel=info) if envelopes_too:
            facts.channels[info.channel_id] = tuple(info.participants)
        case Ack(recipient=recipient, channel_id=channel_id, seq=seq) if envelopes_too:
            key = (recipient, channel_id, seq)
            facts.receipts[key] = Receipt(*key, ev.envelope_id or "", ReceiptStatus.ACKED, 0, None)
        case DeadLetter(recipient=recipient, channel_id=channel_id, seq=seq) if envelopes_too:
            key = (recipient, channel_id, seq)
            facts.receipts[key] = Receipt(*key, ev.envelope_id or "", ReceiptStatus.DEAD, ev.attempts, ev.reason)


class _ProcessedLine(BaseModel):
    """One line of an agent's `processed.jsonl` (written by agentnet.agents.runtime)."""

    model_config = ConfigDict(extra="ignore")
    ts: Any = None
    agent: Any = None
    channel_id: Any
    seq: Any
    envelope_id: Any = ""
    attempt: Any = None
    effect: Any = "?"


def _read_processed(path: Path, agent: str, facts: Facts) -> list[Entry]:
    out: list[Entry] = []
    with path.open("rb") as handle:
        for n, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                rec = _ProcessedLine.model_validate_json(raw)
                out.append(
                    Entry(
                        n,
                        parse_time(rec.ts),
                        rec.agent or agent,
                        rec.channel_id,
                        int(rec.seq),
                        rec.envelope_id,
                        int(rec.attempt or 0),
                        rec.effect,
                    )
                )
            except (ValueError, KeyError, TypeError):  # ValidationError is a ValueError
                facts.notes.append(f"{path}:{n}: unreadable line skipped (a torn write is never acked)")
    return out


# --------------------------------------------------------------------------- the check


@dataclass
class Report:
    run_dir: Path
    facts: Facts
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, Any] = field(default_factory=dict)
    dead: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    explanations: Counter = field(default_factory=Counter)
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    @property
    def violation_count(self) -> int:
        return sum(len(v) for v in self.violations.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "ok": self.ok,
            "source": self.facts.source,
            "stats": self.stats,
            "dead_lettered": self.dead,
            "pending": self.pending,
            "duplicates_explained_by": dict(self.explanations),
            "violations": {k: v for k, v in self.violations.items() if v},
            "notes": self.facts.notes,
        }

    def lines(self) -> list[str]:
        s = self.stats
        verdict = "PASS" if self.ok else f"FAIL ({self.violation_count} violations)"
        out = [
            f"agentnet check {self.run_dir}: {verdict}",
            f"  source      {self.facts.source}",
            f"  envelopes   {s['envelopes']} in {s['channels']} channels",
            f"  deliveries  {s['expected']} expected (envelope x recipient): {s['reached']} reached, "
            f"{s['acked']} acked, {s['dead']} dead-lettered, {len(self.pending)} pending, "
            f"{s['redelivered']} redeliveries",
            f"  processed   {s['entries']} entries in {s['logs']} processed-logs: "
            + ", ".join(f"{n} {effect}" for effect, n in sorted(s["effects"].items()))
            if s["entries"]
            else f"  processed   no entries ({s['logs']} processed-logs)",
        ]
        dup = s["duplicates"]
        if dup:
            why = ", ".join(f"{n} by {what}" for what, n in self.explanations.most_common(4))
            verb = "was" if dup == 1 else "were"
            out.append(f"  duplicates  {dup} {verb} processed again, all dedup_skipped; explained {why or '-'}")
        else:
            out.append("  duplicates  none")
        out.append(f"  order       first deliveries checked for {s['pairs']} (recipient, channel) pairs")
        for line in self.dead[:SHOW]:
            out.append(f"  dead letter {line}")
        if len(self.dead) > SHOW:
            out.append(f"  dead letter ... and {len(self.dead) - SHOW} more")
        if self.pending:
            out.append(
                f"  pending     {len(self.pending)} deliveries the hub still owes (kept in its WAL above the "
                "recipients' ack floors: the run stopped before they were acked)"
            )
            for line in self.pending[:SHOW]:
                out.append(f"  pending     {line}")
            if len(self.pending) > SHOW:
                out.append(f"  pending     ... and {len(self.pending) - SHOW} more")
        for note in self.facts.notes[:SHOW]:
            out.append(f"  note        {note}")
        for kind, items in self.violations.items():
            for item in items[:SHOW]:
                out.append(f"  VIOLATION   {kind}: {item}")
            if len(items) > SHOW:
                out.append(f"  VIOLATION   {kind}: ... and {len(items) - SHOW} more")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())


def check_run(run_dir: str | Path, *, strict: bool = False) -> Report:
    """Check a run directory. Raises CheckError if it cannot be read. `strict`: a delivery still
    pending when the run stopped is a violation too."""
    run_dir = Path(run_dir)
    facts = load_facts(run_dir)
    report = Report(run_dir, facts, strict=strict)
    _check(report)
    return report


def _check(report: Report) -> None:
    facts = report.facts
    v = report.violations
    by_key: dict[tuple[str, str, int], list[Entry]] = defaultdict(list)
    effects: Counter = Counter()
    visitors: set[str] = set()
    for agent, entries in facts.processed.items():
        for e in entries:
            by_key[(agent, e.channel_id, e.seq)].append(e)
            effects[e.effect] += 1
            env = facts.envelopes.get((e.channel_id, e.seq))
            if env is None:
                v["mismatch"].append(f"{agent} processed {e.channel_id} #{e.seq}, which is not in the store")
            elif e.envelope_id and env.envelope_id != e.envelope_id:
                v["mismatch"].append(
                    f"{agent} processed {e.channel_id} #{e.seq} as {e.envelope_id}; the store has {env.envelope_id}"
                )

    # every envelope reached every recipient at least once, or was dead-lettered
    expected = reached = 0
    for (ch, seq), env in sorted(facts.envelopes.items()):
        for recipient in env.recipients:
            expected += 1
            receipt = facts.receipts.get((recipient, ch, seq))
            entries = by_key.get((recipient, ch, seq), [])
            if any(e.attempt >= 1 for e in entries) or (receipt is not None and receipt.status == "acked"):
                reached += 1
            elif receipt is not None and receipt.status == "dead":
                pass
            elif facts.floors[(recipient, ch)] >= seq:
                v["undelivered"].append(
                    f"{ch} #{seq} ({env.type} from {env.sender}) never reached {recipient}, yet the hub moved "
                    f"{recipient}'s ack floor past it ({facts.floors[(recipient, ch)]}): lost"
                )
            else:
                report.pending.append(f"{ch} #{seq} ({env.type} from {env.sender}) for {recipient}")
                if report.strict:
                    v["undelivered"].append(
                        f"{ch} #{seq} ({env.type} from {env.sender}) never reached {recipient} (still pending)"
                    )
            if receipt is not None and receipt.status == "dead":
                report.dead.append(
                    f"{ch} #{seq} for {recipient} after {receipt.attempts} attempts: {receipt.reason or '?'}"
                )
            processed = any(e.effect in PROCESSED_EFFECTS for e in entries)
            visitor = bool(facts.scenario_agents) and recipient not in facts.scenario_agents
            if visitor and recipient not in visitors:
                visitors.add(recipient)
                facts.notes.append(
                    f"{recipient}: not a scenario agent (e.g. `agentnet ask` from another terminal); "
                    "its acks are the hub's receipts only"
                )
            if (
                receipt is not None
                and receipt.status == "acked"
                and not processed
                and recipient not in facts.unlogged
                and not visitor
            ):
                where = "its processed-log" if recipient in facts.logs_found else "a processed-log (it left none)"
                v["unprocessed"].append(
                    f"{ch} #{seq} acked by {recipient} but not in {where}"
                    + (f" (only: {', '.join(e.effect for e in entries)})" if entries else "")
                )

    # first deliveries in seq order, per (recipient, channel)
    pairs = 0
    for agent, entries in facts.processed.items():
        last: dict[str, Entry] = {}
        for e in entries:
            if e.attempt != 1:
                continue
            prev = last.get(e.channel_id)
            if prev is None:
                pairs += 1
            elif e.seq <= prev.seq:
                v["order"].append(
                    f"{agent} got {e.channel_id} #{e.seq} as a first delivery (line {e.line}) "
                    f"after #{prev.seq} (line {prev.line})"
                )
            last[e.channel_id] = e

    # duplicates: only where a fault explains them, and then dedup_skipped
    duplicates = 0
    for (agent, ch, seq), entries in by_key.items():
        applied_at: Entry | None = None
        for i, e in enumerate(entries):
            if i > 0:
                duplicates += 1
                earlier = entries[0]
                if applied_at is not None and e.effect != "dedup_skipped":
                    v["duplicate"].append(
                        f"{agent} processed {ch} #{seq} again as {e.effect!r} (line {e.line}) after it was applied "
                        f"(line {applied_at.line}); a redelivery must be dedup_skipped"
                    )
                why = _explain(facts, agent, ch, seq, earlier, entries[i - 1], e)
                if why is None:
                    v["duplicate"].append(
                        f"{agent} processed {ch} #{seq} again (line {e.line}, attempt {e.attempt}) "
                        f"with no fault to explain it"
                    )
                else:
                    report.explanations[why] += 1
            if e.effect == "applied" and applied_at is None:
                applied_at = e

    receipts = facts.receipts.values()
    report.stats = {
        "envelopes": len(facts.envelopes),
        "channels": len({ch for ch, _ in facts.envelopes} | set(facts.channels)),
        "expected": expected,
        "reached": reached,
        "acked": sum(1 for r in receipts if r.status == "acked"),
        "dead": sum(1 for r in receipts if r.status == "dead"),
        "redelivered": facts.redelivered,
        "entries": sum(effects.values()),
        "effects": dict(effects),
        "logs": len(facts.logs_found),
        "duplicates": duplicates,
        "duplicates_suppressed": effects["dedup_skipped"],
        "pairs": pairs,
        "pending": len(report.pending),
    }


def _explain(facts: Facts, agent: str, ch: str, seq: int, first: Entry, prev: Entry, dup: Entry) -> str | None:
    """What made `agent` process (ch, seq) again, or None if nothing did."""
    if prev.attempt == 0 or dup.attempt == 0:
        return "a resumed turn (pending_turns after a (re)connect)"
    if prev.effect not in PROCESSED_EFFECTS:
        return f"the earlier attempt {prev.effect}"
    if dup.attempt == 1:
        return None  # a first delivery twice: nothing can explain that
    if not facts.recording:
        return None
    start = facts.first_deliveries.get((agent, ch, seq, prev.attempt))
    if start is None:
        start = (prev.ts or 0.0) - WINDOW_BEFORE
    end = (dup.ts or float("inf")) + 0.5
    for d in facts.disruptions:
        if start - 0.5 <= d.at <= end and d.agent in (None, agent) and (d.key is None or d.key == (ch, seq)):
            return _label(d.what)
    return None


def _label(what: str) -> str:
    """Group explanations for the report: 'consumer-1 killed (...)' -> 'consumer-1 killed'."""
    return what.split(" (", 1)[0]
