"""`agentnet check` on synthetic run directories: a clean run passes, each kind of violation fails it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentnet.hub.store.sqlite import SCHEMA
from agentnet.launcher.checker import CheckError, check_run
from agentnet.protocol.ids import utc_iso

T0 = 1_800_000_000.0  # a fixed epoch for the synthetic timelines
CH = "ch-1"


class RunDir:
    """A run directory as `agentnet up` leaves it: store, processed-logs, recording, run.json.

    The default is a consulting exchange in one channel (alice asks, bob answers): four deliveries,
    each processed once and acked.
    """

    def __init__(self, root: Path, *, store: bool = True) -> None:
        self.root = root
        self.store = store
        self.participants = ["alice", "bob"]
        self.envelopes: list[dict[str, Any]] = [
            {"seq": 1, "sender": "hub", "audience": ["alice", "bob"], "type": "channel.opened"},
            {"seq": 2, "sender": "alice", "audience": None, "type": "text", "text": "What is 12 times 11?"},
            {"seq": 3, "sender": "bob", "audience": None, "type": "text", "text": "132"},
        ]
        self.receipts: list[tuple[str, int, str, int]] = [  # recipient, seq, status, attempts
            ("alice", 1, "acked", 1),
            ("bob", 1, "acked", 1),
            ("bob", 2, "acked", 1),
            ("alice", 3, "acked", 1),
        ]
        self.processed: dict[str, list[dict[str, Any]]] = {
            "alice": [self.entry("alice", 1, 1, "applied", 1.0), self.entry("alice", 3, 1, "applied", 2.0)],
            "bob": [self.entry("bob", 1, 1, "applied", 1.0), self.entry("bob", 2, 1, "applied", 1.5)],
        }
        self.recording: list[tuple[str, dict[str, Any]]] = []
        self.floors: dict[str, int] = {"alice": 3, "bob": 3}  # the hub's ack floor per recipient

    @staticmethod
    def envelope_id(seq: int) -> str:
        return f"e-{seq:04d}"

    def entry(self, agent: str, seq: int, attempt: int, effect: str, t: float) -> dict[str, Any]:
        return {
            "ts": T0 + t,
            "agent": agent,
            "channel_id": CH,
            "seq": seq,
            "envelope_id": self.envelope_id(seq),
            "causation_id": None,
            "attempt": attempt,
            "effect": effect,
        }

    def record(self, kind: str, t: float, **data: Any) -> None:
        self.recording.append((kind, {"kind": kind, "at": utc_iso(T0 + t), **data}))

    def event(self, t: float, type_: str, **data: Any) -> None:
        self.recording.append(("event", {"kind": "event", "at": utc_iso(T0 + t), "type": type_, **data}))

    def write(self) -> Path:
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        run = {"scenario": "synthetic", "store": f"sqlite:{root / 'hub.sqlite3'}" if self.store else "memory"}
        (root / "run.json").write_text(json.dumps(run))
        if self.store:
            (root / "hub.sqlite3").unlink(missing_ok=True)
            db = sqlite3.connect(root / "hub.sqlite3")
            db.executescript(SCHEMA)
            channel = (CH, "consulting", None, "alice", json.dumps(self.participants), utc_iso(T0))
            db.execute("INSERT INTO channels VALUES(?,?,?,?,?,?,?,?,?,?,?)", (*channel, "{}", "open", None, None, "{}"))
            for env in self.envelopes:
                body = json.dumps({"data": {"text": env.get("text")}}).encode()
                audience = json.dumps(env["audience"]) if env["audience"] is not None else None
                db.execute(
                    "INSERT INTO envelopes VALUES(?,?,?,?,?,?,?,?,?,?)",
                    (CH, env["seq"], self.envelope_id(env["seq"]), env["sender"], audience, env["type"], None, None,
                     utc_iso(T0), body),
                )  # fmt: skip
            for recipient, seq, status, attempts in self.receipts:
                reason = "no ack after 5 deliveries" if status == "dead" else None
                db.execute(
                    "INSERT INTO receipts VALUES(?,?,?,?,?,?,?,?)",
                    (recipient, CH, seq, self.envelope_id(seq), status, attempts, utc_iso(T0), reason),
                )
            for recipient, floor in self.floors.items():
                db.execute("INSERT INTO cursors VALUES(?,?,?,?,?,?)", (recipient, CH, floor, floor, 0, 0))
            db.commit()
            db.close()
        for agent, entries in self.processed.items():
            path = root / "agents" / agent / "processed.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(e) + "\n" for e in entries))
        lines = [json.dumps({"kind": "recording", "version": 1})]
        if not self.store:  # the memory store: the recording is the only record of envelopes and acks
            channel = {"channel_id": CH, "participants": self.participants}
            lines.append(json.dumps({"t": 0, "kind": "snapshot", "data": {"hub": {}, "channels": [channel]}}))
            for env in self.envelopes:
                envelope = {
                    "channel_id": CH,
                    "seq": env["seq"],
                    "envelope_id": self.envelope_id(env["seq"]),
                    "sender": env["sender"],
                    "audience": env["audience"],
                    "type": env["type"],
                    "data": {"text": env.get("text")},
                }
                data = {"kind": "event", "type": "wal.append", "at": utc_iso(T0), "envelope": envelope}
                lines.append(json.dumps({"t": 0, "kind": "event", "data": data}))
            for recipient, seq, status, attempts in self.receipts:
                typ = "ack" if status == "acked" else "dead_letter"
                key = {"recipient": recipient, "channel_id": CH, "seq": seq, "envelope_id": self.envelope_id(seq)}
                data = {"kind": "event", "type": typ, "at": utc_iso(T0 + 3), **key, "attempts": attempts}
                lines.append(json.dumps({"t": 3, "kind": "event", "data": data}))
        for kind, data in self.recording:
            lines.append(json.dumps({"t": 0, "kind": kind, "data": data}))
        (root / "recording.jsonl").write_text("\n".join(lines) + "\n")
        return root


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir(tmp_path / "run")


def kinds(report) -> set[str]:
    return {kind for kind, items in report.violations.items() if items}


# --------------------------------------------------------------------------- clean runs


def test_a_clean_run_passes(run: RunDir) -> None:
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.stats["expected"] == 4
    assert report.stats["reached"] == 4
    assert report.stats["acked"] == 4
    assert "PASS" in report.render()


def test_a_dead_letter_is_reported_not_a_violation(run: RunDir) -> None:
    run.receipts[2] = ("bob", 2, "dead", 5)
    run.processed["bob"] = [run.entry("bob", 1, 1, "applied", 1.0)]  # bob never processed #2
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.stats["dead"] == 1
    assert any("#2 for bob after 5 attempts" in line for line in report.dead)
    assert "dead letter" in report.render()


def test_an_explained_duplicate_skipped_by_dedup_passes(run: RunDir) -> None:
    # bob applied #2, was killed before his ack reached the hub, came back and got it again (attempt 2)
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 4.0))
    run.record("process", 2.0, name="bob", role="agent", state="killed", reason="killed by a fault (SIGKILL)")
    run.event(3.5, "deliver", recipient="bob", channel_id=CH, seq=2, attempt=2, reason="replay")
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.stats["duplicates"] == 1
    assert report.stats["duplicates_suppressed"] == 1
    assert report.explanations == {"bob killed": 1}


def test_a_duplicate_after_a_hub_restart_or_disconnect_is_explained(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 4.0))
    run.processed["alice"].append(run.entry("alice", 3, 2, "dedup_skipped", 4.5))
    run.record("process", 3.0, name="hub", role="hub", state="exited", reason="restarting")
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.explanations == {"hub exited": 2}


def test_a_resumed_turn_then_its_delivery_is_not_a_fault(run: RunDir) -> None:
    run.processed["bob"] = [
        run.entry("bob", 1, 1, "applied", 1.0),
        run.entry("bob", 2, 0, "applied", 1.2),  # pending_turns after a reconnect
        run.entry("bob", 2, 1, "dedup_skipped", 1.5),
    ]
    report = check_run(run.write())
    assert report.ok, report.render()


def test_memory_store_runs_are_checked_from_the_recording(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", store=False)
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.stats["expected"] == 4
    assert "recording" in report.facts.source


# --------------------------------------------------------------------------- violations


def test_an_envelope_lost_behind_the_ack_floor_fails(run: RunDir) -> None:
    del run.receipts[2]  # nothing says bob got #2, yet the hub's floor for bob is past it
    run.processed["bob"] = [run.entry("bob", 1, 1, "applied", 1.0)]
    report = check_run(run.write())
    assert not report.ok
    assert kinds(report) == {"undelivered"}
    assert (
        "#2 (text from alice) never reached bob, yet the hub moved bob's ack floor past it (3): lost"
        in (report.violations["undelivered"][0])
    )


def test_an_envelope_still_owed_when_the_run_stopped_is_pending(run: RunDir) -> None:
    del run.receipts[2]
    run.processed["bob"] = [run.entry("bob", 1, 1, "applied", 1.0)]
    run.floors["bob"] = 1  # the hub still owes bob #2: it is in the WAL above bob's floor
    report = check_run(run.write())
    assert report.ok, report.render()
    assert report.pending == ["ch-1 #2 (text from alice) for bob"]
    assert "1 deliveries the hub still owes" in report.render()
    strict = check_run(run.root, strict=True)
    assert kinds(strict) == {"undelivered"}
    assert "(still pending)" in strict.violations["undelivered"][0]


def test_acked_by_a_recipient_without_a_processed_log_fails(run: RunDir) -> None:
    del run.processed["alice"]
    report = check_run(run.write())
    assert kinds(report) == {"unprocessed"}
    assert "#1 acked by alice but not in a processed-log (it left none)" in report.violations["unprocessed"][0]


def test_acked_but_never_processed_fails(run: RunDir) -> None:
    run.processed["alice"] = [run.entry("alice", 1, 1, "applied", 1.0)]  # the hub says alice acked #3
    report = check_run(run.write())
    assert kinds(report) == {"unprocessed"}
    assert "#3 acked by alice but not in its processed-log" in report.violations["unprocessed"][0]


def test_acked_after_a_failed_attempt_only_fails(run: RunDir) -> None:
    run.processed["alice"][1] = run.entry("alice", 3, 1, "failed", 2.0)
    report = check_run(run.write())
    assert "unprocessed" in kinds(report)
    assert "(only: failed)" in report.violations["unprocessed"][0]


def test_first_deliveries_out_of_seq_order_fail(run: RunDir) -> None:
    run.processed["bob"] = [run.entry("bob", 2, 1, "applied", 1.0), run.entry("bob", 1, 1, "applied", 1.5)]
    report = check_run(run.write())
    assert kinds(report) == {"order"}
    assert "#1 as a first delivery" in report.violations["order"][0]


def test_a_redelivery_out_of_order_is_not_an_order_violation(run: RunDir) -> None:
    run.processed["bob"] = [
        run.entry("bob", 2, 1, "applied", 1.0),
        run.entry("bob", 1, 2, "applied", 1.5),  # #1's first attempt was lost with a crash, before its log line
    ]
    report = check_run(run.write())
    assert report.ok, report.render()


def test_an_unexplained_duplicate_fails(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 4.0))
    report = check_run(run.write())  # nothing happened to bob or the hub: why the redelivery?
    assert kinds(report) == {"duplicate"}
    assert "with no fault to explain it" in report.violations["duplicate"][0]


def test_a_disruption_long_before_the_duplicate_does_not_explain_it(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 40.0))
    run.record("process", -10.0, name="bob", role="agent", state="killed", reason="killed by a fault (SIGKILL)")
    report = check_run(run.write())
    assert kinds(report) == {"duplicate"}


def test_a_disruption_of_another_agent_does_not_explain_it(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 4.0))
    run.event(3.0, "agent.disconnected", name="alice", code=4000)
    report = check_run(run.write())
    assert kinds(report) == {"duplicate"}


def test_a_duplicate_applied_twice_fails_even_when_explained(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "applied", 4.0))  # answered twice: the effect doubled
    run.event(3.0, "agent.disconnected", name="bob", code=4000, reason="disconnected by launcher")
    report = check_run(run.write())
    assert kinds(report) == {"duplicate"}
    assert "must be dedup_skipped" in report.violations["duplicate"][0]


def test_a_first_delivery_processed_twice_fails(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 1, "dedup_skipped", 1.6))
    run.event(1.55, "agent.disconnected", name="bob", code=1006)
    report = check_run(run.write())
    assert "duplicate" in kinds(report)


def test_an_ack_wait_redelivery_explains_only_its_own_envelope(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 33.0))
    run.event(32.0, "deliver", recipient="bob", channel_id=CH, seq=2, attempt=2, reason="ack_wait")
    assert check_run(run.write()).ok
    run.processed["bob"].append(run.entry("bob", 1, 2, "dedup_skipped", 33.5))  # no ack_wait for #1
    report = check_run(run.write())
    assert kinds(report) == {"duplicate"}
    assert "#1 again" in report.violations["duplicate"][0]


def test_an_entry_for_an_envelope_the_store_lacks_fails(run: RunDir) -> None:
    run.processed["bob"].append(run.entry("bob", 9, 1, "applied", 2.5))
    bad = run.entry("alice", 3, 1, "applied", 2.0)
    bad["envelope_id"] = "e-other"
    run.processed["alice"][1] = bad
    report = check_run(run.write())
    assert kinds(report) == {"mismatch"}
    text = " ".join(report.violations["mismatch"])
    assert "#9, which is not in the store" in text
    assert "the store has e-0003" in text


def test_every_violation_kind_at_once_is_listed(run: RunDir) -> None:
    del run.receipts[3]  # alice #3: lost behind her floor ...
    run.processed["alice"] = [run.entry("alice", 1, 1, "applied", 1.0)]
    run.processed["bob"] = [
        run.entry("bob", 2, 1, "applied", 1.0),
        run.entry("bob", 1, 1, "applied", 1.1),  # out of order
        run.entry("bob", 2, 2, "applied", 5.0),  # unexplained, applied twice
    ]
    report = check_run(run.write())
    assert kinds(report) == {"undelivered", "order", "duplicate"}
    assert report.violation_count == 4
    rendered = report.render()
    assert rendered.startswith(f"agentnet check {run.root}: FAIL (4 violations)")
    assert rendered.count("VIOLATION") == 4
    assert report.to_json()["ok"] is False


# --------------------------------------------------------------------------- the command


def main(argv: list[str]) -> int:
    """The launcher's subcommands, parsed as `agentnet` does (agentnet.cli.main registers parts once)."""
    import argparse

    from agentnet.launcher.cli import register

    parser = argparse.ArgumentParser(prog="agentnet")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args)


def test_check_command_exit_codes(run: RunDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = run.write()
    assert main(["check", str(root)]) == 0
    assert "PASS" in capsys.readouterr().out
    run.processed["bob"].append(run.entry("bob", 2, 2, "dedup_skipped", 4.0))
    run.write()
    assert main(["check", str(root), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["violations"]["duplicate"]
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_missing_store_is_an_error(run: RunDir) -> None:
    root = run.write()
    (root / "hub.sqlite3").unlink()
    with pytest.raises(CheckError, match=r"store .* is missing"):
        check_run(root)


def test_the_summary_says_what_duplicates_suppressed_means() -> None:
    import io

    from rich.console import Console

    from agentnet.launcher.headless import print_summary
    from agentnet.launcher.report import Counts, RunSummary

    out = io.StringIO()
    counts = Counts(posted=3, delivered=3, acked=3, duplicates_suppressed=1)
    print_summary(Console(file=out, width=200), RunSummary("s", "/tmp/run", "passed", 1.0, counts=counts))
    text = out.getvalue()
    assert "redelivered 0 · dead-lettered 0 · duplicates suppressed 1" in text
    assert "(suppressed: work an agent had already done and did not repeat" in text
