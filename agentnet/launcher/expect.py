"""`expect`: the scenario's checks, evaluated continuously from the live view and the store's counts."""

from __future__ import annotations

import re

from agentnet.protocol.events import ChannelView

from .report import Check


class Expect:
    """Part of `Run` (runner.py): its expectations."""

    def evaluate(self) -> list[Check]:
        expect = self.scenario.expect
        if expect is None:
            return []
        model = self.model
        checks: list[Check] = []

        def channel(alias: str) -> ChannelView | None:
            cid = self.aliases.get(alias)
            return model.channels.get(cid) if cid else None

        closed = list(expect.channels_closed)
        if expect.all_channels_closed:
            closed = list(self.scenario.channels())
        for alias in closed:
            ch = channel(alias)
            ok = ch is not None and ch.state == "closed"
            detail = (ch.close_reason or "" if ch is not None else "") if ok else ("open" if ch else "not opened yet")
            checks.append(Check(f"{alias} closed", ok, detail))
        for reply in expect.replies:
            senders = set(self.scenario.resolve(reply.from_))
            cid = self.aliases.get(reply.channel)
            found = next(
                (
                    text
                    for _, sender, text in model.texts.get(cid or "", [])
                    if sender in senders and re.search(reply.matches, text)
                ),
                None,
            )
            detail = repr(found) if found is not None else "no matching reply yet"
            label = f"reply from {reply.from_} in {reply.channel} matches {reply.matches}"
            checks.append(Check(label, found is not None, detail))
        counts = self.counts()
        want = expect.counts
        if want.dead_letters is not None:
            n = counts["dead_lettered"]
            checks.append(Check(f"dead letters = {want.dead_letters}", n == want.dead_letters, f"{n}"))
        if want.min_delivered is not None:
            exact = self.store_path is not None or self.store_counts.url is not None
            n = counts["acked"] if exact else len(model.acked)
            checks.append(Check(f"delivered >= {want.min_delivered}", n >= want.min_delivered, f"{n} acked"))
        if expect.all_acked:
            done = self.timeline_done()
            if "expected" in counts:  # exact, from the store
                missing = counts["expected"] - counts["acked"]
                ok = done and missing == 0
                detail = f"{counts['acked']} of {counts['expected']} deliveries acked"
            else:
                ok = done and model.settled()
                detail = "every recipient at its last envelope" if ok else ", ".join(model.lagging()[:4])
            if not done:
                detail = "script still running; " + detail
            checks.append(Check("all acked", ok, detail))
        return checks

    def timeline_done(self) -> bool:
        return self.t0 is not None and all(task.done() for task in self.timeline)
