"""The run's timeline: the script's steps (open, post, stream) and the faults, each at its `at`
after t = 0, and the live questions of a `live:` scenario."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from agentnet.protocol.events import (
    decode_channel,
)
from agentnet.protocol.ids import utc_iso
from agentnet.run.control import ControlError

from .scenario import LiveSpec, OpenStep, PostStep, StreamStep

log = logging.getLogger("agentnet.launcher")
TRANSIENT = ("disconnected", "unavailable", "timeout", "overloaded")


class Timeline:
    """Part of `Run` (runner.py): its script and faults."""

    def _schedule(self) -> None:
        assert self.t0 is not None
        for i, step in enumerate(self.scenario.script):
            self.timeline.append(asyncio.create_task(self._at(step.at, self._step(i, step)), name=f"step-{i}"))
        for i, fault in enumerate(self.scenario.faults):
            self.timeline.append(asyncio.create_task(self._at(fault.at, self._fault(i)), name=f"fault-{i}"))

    async def _at(self, at: float, coro: Any) -> None:
        assert self.t0 is not None
        delay = self.t0 + at - time.monotonic()
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            coro.close()  # stopped before its time: it never runs (and is not "never awaited")
            raise
        await coro

    async def _fault(self, index: int) -> None:
        assert self.t0 is not None
        fault = self.scenario.faults[index]
        result = self.faults[index]
        result.late = max(0.0, time.monotonic() - self.t0 - fault.at)
        item = {"kind": "fault", "at": utc_iso(), "action": fault.action, "target": fault.target}
        self.publish("fault", {**item, "caption": fault.caption})
        if fault.caption:
            self.caption(fault.caption)
        try:
            if fault.action in ("kill-hub", "freeze-hub", "failover"):
                result.result = await self._hub_fault(fault.action, fault.duration)
            else:
                result.result = await self.controls.act(fault.action, fault.target, source="fault", origin="script")
            result.ok = True
        except ControlError as exc:
            result.result = f"not applied: {exc}"
            if self.view is not None:
                self.view.note(f"fault {fault.action} not applied: {exc}", "yellow")

    async def _step(self, index: int, step: Any) -> None:
        try:
            if isinstance(step, OpenStep):
                await self._open(index, step)
            elif isinstance(step, PostStep):
                cid = await self._channel(step.channel)
                await self._post(cid, step.from_, step.type, {"text": step.text}, f"{self.run_id}-s{index}")
            elif isinstance(step, StreamStep):
                await self._stream(index, step)
        except Exception as exc:
            what = f"script[{index}] {step.action} {getattr(step, 'channel', '')} at {step.at:g} s"
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.problems.append(f"{what} failed: {message}")
            if self.view is not None:
                self.view.note(f"{what} failed: {message}", "bold red")

    async def _open(self, index: int, step: OpenStep) -> None:
        participants = [name for recipient in step.to for name in self.scenario.resolve(recipient)]
        params: dict[str, Any] = {"as_agent": step.from_, "type": step.type, "participants": participants}
        if step.topic is not None:
            params["topic"] = step.topic
        if step.knobs:
            params["knobs"] = step.knobs
        info = await self.observer.request("open_channel", **params)
        cid = info["channel_id"]
        self.aliases[step.channel] = cid
        self.alias_of[cid] = step.channel
        self.model.channel(decode_channel(info))
        self._alias_event(step.channel).set()
        # The dashboard knows channels by id; say which one the scenario calls by this name.
        text = f"channel {step.channel} is {cid} ({step.type}: {step.from_} → {', '.join(participants)})"
        self.publish("caption", {"kind": "caption", "at": utc_iso(), "text": text}, view=False)
        if step.text is not None:
            await self._post(cid, step.from_, "text", {"text": step.text}, f"{self.run_id}-s{index}")

    def _alias_event(self, alias: str) -> asyncio.Event:
        return self.alias_ready.setdefault(alias, asyncio.Event())

    async def _channel(self, alias: str) -> str:
        if alias not in self.aliases:
            async with asyncio.timeout(10):
                await self._alias_event(alias).wait()
        return self.aliases[alias]

    async def _post(self, channel_id: str, sender: str, typ: str, data: dict[str, Any], key: str) -> dict[str, Any]:
        """Post as `sender`; retried with the same idempotency key while the hub is unreachable."""
        from agentnet.client import HubError

        delay = 0.05
        while True:
            try:
                return await self.observer.request(
                    "post", channel_id=channel_id, type=typ, data=data, as_agent=sender, idempotency_key=key
                )
            except HubError as exc:
                if exc.code not in TRANSIENT or self.should_exit.is_set():
                    raise
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

    async def _stream(self, index: int, step: StreamStep) -> None:
        cid = await self._channel(step.channel)
        loop = asyncio.get_running_loop()
        start = loop.time()
        inflight = asyncio.Semaphore(256)
        failures: list[BaseException] = []
        pending: set[asyncio.Task] = set()

        async def one(n: int) -> None:
            try:
                data = {"text": step.text_for(n), "n": n, "count": step.count}
                await self._post(cid, step.from_, step.type, data, f"{self.run_id}-s{index}-{n}")
            except Exception as exc:
                failures.append(exc)
            finally:
                inflight.release()

        for n in range(1, step.count + 1):
            delay = start + (n - 1) / step.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await inflight.acquire()
            task = asyncio.create_task(one(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        if failures:
            raise RuntimeError(f"{len(failures)} of {step.count} posts failed; first: {failures[0]}")

    async def _post_question(self, sender: str, recipients: list[str], text: str) -> str:
        """Open a consulting channel as `sender` to `recipients` and post `text` (the dashboard's post key)."""
        if self.observer is None:
            raise ControlError("the launcher is not connected to the hub yet")
        participants = [name for recipient in recipients for name in self._resolve(recipient)]
        info = await self.observer.request(
            "open_channel", as_agent=sender, type="consulting", participants=participants, topic=text[:100]
        )
        cid = info["channel_id"]
        await self._post(cid, sender, "text", {"text": text}, f"{self.run_id}-{cid}-q")
        return f"{sender} asked {', '.join(participants)} in {cid}"

    async def _live(self, live: LiveSpec) -> None:
        """After the script (and its verdict), ask a new question every `live.every` s until the run stops."""
        while not self.timeline_done():
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while self.expect_met_at is None and self.scenario.expect is not None:
                    await asyncio.sleep(0.1)
        if live.caption:
            self.caption(live.caption)
        n = 0
        while not self.should_exit.is_set():
            n += 1
            try:
                async with asyncio.timeout(max(5.0, live.every * 3)):
                    await self._post_question(live.from_, list(live.to), live.text_for(n))
            except Exception as exc:  # the hub restarting, a refused post: try again next time
                log.info("live question %d not posted: %s", n, getattr(exc, "message", None) or exc)
            await asyncio.sleep(live.every)
