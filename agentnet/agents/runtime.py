"""The agent process: answer every turn it owes exactly once, however often the hub redelivers.

For each delivery: if it gives this agent a turn (the hub stamps `turn.next` on the envelope),
look for an earlier reply first (its processed-log, then `find_by_causation` on the hub), run the
brain only if there is none, post the reply with `causation_id` = the question and an idempotency
key derived from it, record the outcome in the processed-log (fsynced), and only then ack.
A crash anywhere in that sequence leads to a redelivery that finds the reply instead of making a
second one. On start and on every reconnect the agent asks `pending_turns` and resumes what it owes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

from agentnet.child import crashpoint
from agentnet.client import AgentClient, Channel, Delivery, HubError, HubUnavailable
from agentnet.protocol.models import Envelope

from .brains import Brain, BrainReply, BrainRequest

log = logging.getLogger("agentnet.agent")

HISTORY = 20  # envelopes of context given to the brain


class ProcessedLog:
    """Append-only JSON lines of outcomes, each flushed and fsynced before the ack it justifies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.applied: dict[tuple[str, str], dict[str, Any]] = {}  # (channel_id, envelope_id) -> record
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash mid-write: it was never acked
                if rec.get("effect") == "applied":
                    self.applied[(rec["channel_id"], rec["envelope_id"])] = rec
        self._file = path.open("ab")

    def record(self, agent: str, env: Envelope, attempt: int, effect: str, **extra: Any) -> dict[str, Any]:
        rec = {
            "ts": time.time(),
            "agent": agent,
            "channel_id": env.channel_id,
            "seq": env.seq,
            "envelope_id": env.envelope_id,
            "causation_id": env.causation_id,
            "attempt": attempt,
            "effect": effect,
            **extra,
        }
        self._file.write(orjson.dumps(rec) + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        if effect == "applied":
            self.applied[(env.channel_id, env.envelope_id)] = rec
        return rec

    def close(self) -> None:
        self._file.close()


class AgentRuntime:
    def __init__(
        self,
        name: str,
        hub_url: str,
        brain: Brain,
        *,
        token: str | None = None,
        state_dir: Path | None = None,
        passport: dict[str, Any] | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.name = name
        self.brain = brain
        self.state_dir = state_dir or Path(".agentnet") / "agents" / name
        self.log = ProcessedLog(self.state_dir / "processed.jsonl")
        self.client = AgentClient(
            hub_url, name, token=token, handler=self._on_delivery, passport=passport or {}, ca_file=ca_file
        )
        self.client.on_reconnect = self.resume_pending
        self._lock = asyncio.Lock()  # one turn at a time: deliveries and resumed turns alike
        self.replies = 0

    async def run(self, stop: asyncio.Event, *, wait_for_hub: bool = False) -> None:
        """Serve until `stop`. With `wait_for_hub`, a hub that is not up yet is waited for (retried
        with a growing delay, each attempt logged) instead of failing at once."""
        delay = 0.5
        while True:
            try:
                await self.client.start()
                break
            except HubUnavailable as exc:
                if not wait_for_hub or stop.is_set():
                    raise
                log.warning("%s: waiting for the hub: %s; retrying in %.1f s", self.name, exc.message, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                if stop.is_set():
                    await self.brain.aclose()
                    self.log.close()
                    return
                delay = min(5.0, delay * 2)
        try:
            try:
                await self.resume_pending()
            except HubError as exc:
                # A connection lost mid-resume is no reason to exit: the reconnect resumes again
                # (on_reconnect), exactly as after any later drop. A fatal close is raised below.
                log.info("%s: resuming pending turns: %s; again after the reconnect", self.name, exc.message)
            stopping = asyncio.ensure_future(stop.wait())
            ended = asyncio.ensure_future(self.client.hub.ended.wait())
            try:
                await asyncio.wait({stopping, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                ended.cancel()
            fatal = self.client.hub.fatal
            if fatal is not None and not stop.is_set():
                raise fatal  # superseded, refused: reconnecting cannot help, so say why and exit
        finally:
            await self.client.close()
            await self.brain.aclose()
            self.log.close()

    async def resume_pending(self) -> None:
        """Answer the turns the channel rules still expect from this agent (after a crash or reconnect)."""
        for turn in await self.client.pending_turns():
            channel = await self.client.channel(turn["channel_id"])
            page = await channel.read_wal(after_seq=turn["after_seq"], limit=1)
            if page.envelopes:
                await self._handle(channel, page.envelopes[0], attempt=0)

    async def _on_delivery(self, delivery: Delivery) -> None:
        await self._handle(delivery.channel, delivery.envelope, delivery.attempt)

    async def _handle(self, channel: Channel, env: Envelope, attempt: int) -> None:
        async with self._lock:
            if (env.channel_id, env.envelope_id) in self.log.applied:
                self.log.record(self.name, env, attempt, "dedup_skipped", reason="in processed-log")
                return
            turn = (env.model_extra or {}).get("turn") or {}
            if self.name not in turn.get("next", ()) or env.sender == self.name:
                self.log.record(self.name, env, attempt, "applied")  # nothing owed: seen and done
                return
            earlier = await channel.find_by_causation(env.envelope_id, sender=self.name)
            if earlier is not None:
                self.log.record(self.name, env, attempt, "dedup_skipped", reason="reply found", reply_seq=earlier.seq)
                return
            reply = await self.brain.reply(await self._request(channel, env, attempt))
            try:
                posted = await channel.send(
                    reply.text,
                    data=reply.data,
                    type="revise" if reply.data.get("revise") else "text",
                    causation_id=env.envelope_id,
                    idempotency_key=f"reply-{env.envelope_id}",
                )
            except HubError as exc:
                if exc.code not in ("turn_violation", "closed"):
                    raise  # transient: nack, the hub redelivers
                self.log.record(self.name, env, attempt, "rejected", reason=exc.message)
                return
            crashpoint("agent.after_reply_before_ack")
            self.replies += 1
            effect = "dedup_skipped" if posted.duplicate else "applied"
            self.log.record(self.name, env, attempt, effect, reply_seq=posted.seq, reply=_clip(reply))

    async def _request(self, channel: Channel, env: Envelope, attempt: int) -> BrainRequest:
        history: list[dict[str, Any]] = []
        if env.seq > 1:
            page = await channel.read_wal(after_seq=max(0, env.seq - 1 - HISTORY), limit=HISTORY)
            history = [
                {"sender": e.sender, "type": e.type, "data": e.data}
                for e in page.envelopes
                if e.seq < env.seq and e.type in ("text", "revise")
            ]
        turn = (env.model_extra or {}).get("turn") or {}
        return BrainRequest(
            agent=self.name,
            text=env.text or "",
            data=env.data,
            sender=env.sender,
            channel_id=env.channel_id,
            channel_type=channel.info.type,
            topic=channel.info.topic,
            seq=env.seq,
            attempt=attempt,
            history=tuple(history),
            meta={k: v for k, v in turn.items() if k != "next"},
        )


def _clip(reply: BrainReply) -> str:
    return reply.text if len(reply.text) <= 200 else reply.text[:197] + "..."
