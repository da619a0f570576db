"""The think_time / fail_rate wrapper, so that every brain gets the knobs and stays simple itself."""

from __future__ import annotations

import asyncio
import random

from agentnet.agents.brains.base import Brain, BrainError, BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions


class KnobbedBrain:
    """Wraps a brain: waits think_time, then fails with probability fail_rate, else asks the inner brain."""

    def __init__(self, inner: Brain, options: BrainOptions, *, agent: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.think_time = options.think_time
        self.fail_rate = options.fail_rate
        # Mix the agent name in, so agents sharing a seed in a scenario do not fail in lockstep;
        # string seeds are hashed deterministically (not with PYTHONHASHSEED), so runs stay reproducible.
        self.rng = random.Random(f"{options.seed}:{agent}") if options.seed is not None else random.Random()

    def _delay(self) -> float:
        if self.think_time is None:
            return 0.0
        if isinstance(self.think_time, tuple):
            low, high = self.think_time
            return self.rng.uniform(low, high)
        return self.think_time

    async def reply(self, request: BrainRequest) -> BrainReply:
        # Draw both numbers up front so the random sequence does not depend on timing.
        delay = self._delay()
        fail = self.fail_rate > 0 and self.rng.random() < self.fail_rate
        if delay > 0:
            await asyncio.sleep(delay)
        if fail:
            raise BrainError(f"simulated failure (fail_rate={self.fail_rate:g})")
        return await self.inner.reply(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"KnobbedBrain({self.inner!r}, think_time={self.think_time!r}, fail_rate={self.fail_rate!r})"
