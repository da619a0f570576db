"""The end of a run: `agentnet check` on the run directory, the summary (summary.json and the printed
one) and the exit code."""

from __future__ import annotations

import contextlib
import json
import signal
import time

from agentnet.protocol.vocab import Outcome
from agentnet.run.items import ProcessItem, decode_item

from . import checker
from .headless import print_summary
from .report import ChannelReport, CheckSummary, Counts, LastText, ProcessSummary, RunSummary, to_json

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2  # 2: a bad scenario, nothing started


class Summary:
    """Part of `Run` (runner.py): its summary."""

    def _finish(self, outcome: Outcome, leftover: list[int]) -> int:
        s = self.scenario
        report = None
        if not self.force_exit and self.t0 is not None:
            try:
                report = checker.check_run(self.run_dir)
            except checker.CheckError as exc:
                self.problems.append(f"check: {exc}")
        counts = Counts(**{k: v for k, v in self.model.counts.items() if k in Counts.__dataclass_fields__})
        check = None
        if report is not None:
            st = report.stats
            counts.posted, counts.acked, counts.dead_lettered = st["envelopes"], st["acked"], st["dead"]
            counts.redelivered = max(st["redelivered"], counts.redelivered)
            # The live feed misses deliveries while the launcher's observer reconnects (a hub restart,
            # a failover); the store's cursors do not: every delivery that reached, plus the repeats.
            counts.delivered = max(counts.delivered, st["reached"] + counts.redelivered)
            counts.duplicates_suppressed = st["duplicates_suppressed"]
            if self.store_path is None:
                counts.posted = max(counts.posted, self.model.counts["posted"])
            check = CheckSummary(
                report.ok,
                ("delivery invariants hold" if report.ok else f"{report.violation_count} violations")
                + f" ({st['expected']} deliveries, {st['duplicates']} duplicates"
                + (f", {st['pending']} still pending when it stopped" if st["pending"] else "")
                + f"; agentnet check {self.run_dir})",
                report.lines(),
            )
            if not report.ok and outcome is Outcome.PASSED:
                outcome = Outcome.FAILED
        if self.problems and outcome is Outcome.PASSED:
            outcome = Outcome.FAILED
        if self.force_exit:
            code = 128 + signal.SIGINT
        elif outcome.ok and not self.problems and (report is None or report.ok):
            code = EXIT_OK
        elif outcome is Outcome.INTERRUPTED and self.exit_signal is not None:
            code = 128 + self.exit_signal
        else:
            code = EXIT_FAILED
        summary = RunSummary(
            scenario=s.name,
            run_dir=str(self.run_dir),
            outcome=outcome,
            elapsed=round(time.monotonic() - self.launched, 3),
            expect=list(self.checks),
            faults=list(self.faults),
            problems=list(self.problems),
            leftover=leftover,
            processes=[
                ProcessSummary(p.name, p.role, p.state, p.reason, p.restarts, p.exit_code)
                for p in (decode_item("process", info) for info in self.supervisor.status())
                if isinstance(p, ProcessItem)
            ],
            check=check,
            counts=counts,
            channels=self._channel_summary(),
            exit_code=code,
        )
        with contextlib.suppress(OSError):
            (self.run_dir / "summary.json").write_text(json.dumps(to_json(summary), indent=2, default=str) + "\n")
        print_summary(self.console, summary)
        return code

    def _channel_summary(self) -> list[ChannelReport]:
        out = []
        for alias, step in self.scenario.channels().items():
            cid = self.aliases.get(alias)
            info = self.model.channels.get(cid or "")
            texts = self.model.texts.get(cid or "", [])
            out.append(
                ChannelReport(
                    alias=alias,
                    channel_id=cid,
                    type=step.type,
                    creator=step.from_,
                    participants=list(info.participants if info else ()) or list(self.scenario.participants(alias)),
                    state=info.state if info else "not opened",
                    close_reason=info.close_reason if info else None,
                    envelopes=max(info.head_seq if info else 0, self.model.heads.get(cid or "", 0)),
                    last_text=LastText(*texts[-1]) if texts else None,
                )
            )
        return out
