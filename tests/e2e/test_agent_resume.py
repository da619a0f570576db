"""An agent whose connection drops while it resumes its pending turns keeps running and resumes again."""

from __future__ import annotations

import asyncio
import logging
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


async def test_the_client_logs_when_a_replay_starts_and_ends(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentnet.client")
    supervisor = HubClient(net.url, name="tester", role="supervisor")
    async with HubClient(net.url, name="alice") as alice, HubClient(net.url, name="bob") as bob:
        await supervisor.start()
        try:
            seen: list[dict] = []
            bob.on_frame = seen.append  # never acks: both stay in flight
            channel = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
            for text in ("one", "two"):
                await alice.request("post", channel_id=channel, data={"text": text})
            async with asyncio.timeout(20):
                while [f["envelope"]["data"].get("text") for f in seen][-2:] != ["one", "two"]:
                    await asyncio.sleep(0.02)
            unacked = len(seen)  # the channel's opening notice, one, two
            assert "replay start" not in caplog.text  # a first connection replays nothing
            await supervisor.request("disconnect", name="bob")  # bob reconnects and gets both again
            async with asyncio.timeout(20):
                while "bob: replay end" not in caplog.text:
                    await asyncio.sleep(0.02)
            assert f"bob: replay start: the hub redelivers {unacked} unacked envelope(s) first" in caplog.text
            assert f"bob: replay end: {unacked} envelope(s) redelivered" in caplog.text
            assert seen[unacked:] == [{**f, "attempt": 2} for f in seen[:unacked]]
        finally:
            await supervisor.close()
