"""An agent whose connection drops while it resumes its pending turns keeps running and resumes again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentnet.agents.brains import make_brain
from agentnet.agents.runtime import AgentRuntime
from agentnet.client import HubClient

from .net import Net


@pytest.fixture
def net(tmp_path: Path):
    n = Net(tmp_path)
    n.start_hub()
    yield n
    n.close()


class DroppedWhileResuming(AgentRuntime):
    """The first resume finds its connection dropped by the hub under a request in flight."""

    supervisor: HubClient
    resumes = 0

    async def resume_pending(self) -> None:
        self.resumes += 1
        if self.resumes == 1:
            await self.supervisor.request("disconnect", name=self.name)  # the hub closes our socket now
        await super().resume_pending()


async def test_a_drop_during_the_first_resume_does_not_end_the_agent(net: Net, tmp_path: Path) -> None:
    supervisor = HubClient(net.url, name="tester", role="supervisor")
    await supervisor.start()
    bob = DroppedWhileResuming("bob", net.url, make_brain("echo", {}, agent="bob"), state_dir=tmp_path / "bob")
    bob.supervisor = supervisor
    stop = asyncio.Event()
    running = asyncio.create_task(bob.run(stop))
    try:
        async with asyncio.timeout(20):
            while bob.resumes < 2 and not running.done():  # resumed again after the reconnect
                await asyncio.sleep(0.02)
        assert not running.done(), running.exception()
        assert bob.client.hub.connections >= 2
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)  # a clean stop: run() raises nothing
        await supervisor.close()
