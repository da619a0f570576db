"""The end of a run: `agentnet check` on the run directory, the summary (summary.json and the printed
one) and the exit code."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass
from typing import Any

from agentnet.protocol.vocab import Outcome

from . import checker
from .headless import print_summary

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2  # 2: a bad scenario, nothing started


@dataclass
class FaultResult:
    at: float
    action: str
    target: str | None
    late: float = 0.0
    result: str = "pending"
    ok: bool = False


class Summary:
    """Part of `Run` (runner.py): its summary."""

    def _finish(self, outcome: Outcome, leftover: list[int]) -> int:
        s = self.scenario
        elapsed = time.monotonic() - self.launched
        summary: dict[str, Any] = {
            "scenario": s.name,
            "run_dir": str(self.run_dir),
            "outcome": outcome,
            "elapsed": round(elapsed, 3),
            "expect": [c.__dict__ for c in self.checks],
            "faults": [f.__dict__ for f in self.faults],
            "problems": list(self.problems),
            "leftover": leftover,
            "processes": [
                {k: p[k] for k in ("name", "role", "state", "reason", "restarts", "exit_code")}
                for p in self.supervisor.status()
            ],
        }
        report = None
        if not self.force_exit and self.t0 is not None:
            try:
                report = checker.check_run(self.run_dir)
            except checker.CheckError as exc:
                self.problems.append(f"check: {exc}")
        counts = dict(self.model.counts)
        if report is not None:
            st = report.stats
            counts.update(
                posted=st["envelopes"], acked=st["acked"], dead_lettered=st["dead"],
                redelivered=max(st["redelivered"], counts["redelivered"]),
                duplicates_suppressed=st["duplicates_suppressed"],
            )  # fmt: skip
            if self.store_path is None:
                counts["posted"] = max(counts["posted"], self.model.counts["posted"])
            lines = report.lines()
            summary["check"] = {
                "ok": report.ok,
                "headline": ("delivery invariants hold" if report.ok else f"{report.violation_count} violations")
                + f" ({st['expected']} deliveries, {st['duplicates']} duplicates"
                + (f", {st['pending']} still pending when it stopped" if st["pending"] else "")
                + f"; agentnet check {self.run_dir})",
                "lines": lines,
            }
            if not report.ok:
                outcome = summary["outcome"] = Outcome.FAILED if outcome is Outcome.PASSED else outcome
        if self.problems and outcome is Outcome.PASSED:
            outcome = summary["outcome"] = Outcome.FAILED
        counts.setdefault("duplicates_suppressed", 0)
        summary["counts"] = counts
        summary["channels"] = self._channel_summary()
        summary["problems"] = list(self.problems)
        if self.force_exit:
            code = 128 + signal.SIGINT
        elif outcome.ok and not self.problems and (report is None or report.ok):
            code = EXIT_OK
        elif outcome is Outcome.INTERRUPTED and self.exit_signal is not None:
            code = 128 + self.exit_signal
        else:
            code = EXIT_FAILED
        summary["exit_code"] = code
        with contextlib.suppress(OSError):
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print_summary(self.console, summary)
        return code

    def _channel_summary(self) -> list[dict[str, Any]]:
        out = []
        for alias, step in self.scenario.channels().items():
            cid = self.aliases.get(alias)
            info = self.model.channels.get(cid or "")
            texts = self.model.texts.get(cid or "", [])
            last = texts[-1] if texts else None
            out.append(
                {
                    "alias": alias,
                    "channel_id": cid,
                    "type": step.type,
                    "creator": step.from_,
                    "participants": list(info.participants if info else ()) or list(self.scenario.participants(alias)),
                    "state": info.state if info else "not opened",
                    "close_reason": info.close_reason if info else None,
                    "envelopes": max(info.head_seq if info else 0, self.model.heads.get(cid or "", 0)),
                    "last_text": {"seq": last[0], "sender": last[1], "text": last[2]} if last else None,
                }
            )
        return out
