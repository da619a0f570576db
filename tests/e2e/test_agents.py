"""Agent processes end to end: real hub, real agents, real `agentnet ask`, real SIGKILLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentnet.client import HubClient
from tests.stub_openai import StubOpenAI

from .net import Net
from .procs import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def net(tmp_path: Path):
    n = Net(tmp_path)
    yield n
    n.close()


async def driver(net: Net) -> HubClient:
    hub = HubClient(net.url, name="tester", role="supervisor")
    await hub.start()
    return hub


async def wait_agents(hub: HubClient, names: set[str], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while True:
            agents = (await hub.request("list_agents"))["agents"]
            if names <= {a["name"] for a in agents if a["connected"] and a["passport"]}:
                return
            await asyncio.sleep(0.05)


async def wal(hub: HubClient, channel_id: str) -> list[dict]:
    out, after = [], 0
    while True:
        page = await hub.request("read_wal", channel_id=channel_id, after_seq=after, limit=1000)
        out += page["envelopes"]
        if not page["has_more"]:
            return out
        after = out[-1]["seq"]


async def wait_closed(hub: HubClient, channel_id: str, timeout: float) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            info = await hub.request("get_channel", channel_id=channel_id)
            if info["state"] == "closed":
                return info
            await asyncio.sleep(0.05)


def test_ask_calc_prints_132(net: Net):
    net.start_hub()
    net.agent("bob", "calc")
    net.wait_connected(1)
    result = net.ask("--as", "alice", "--to", "bob", "What is 12 times 11?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "132"


def test_ask_times_out_with_a_clear_message(net: Net):
    net.start_hub()
    result = net.ask("--as", "alice", "--to", "nobody", "--timeout", "2", "hello?")
    assert result.returncode == 1
    assert "unknown agent" in result.stderr or "no reply" in result.stderr


@pytest.mark.timeout(120)
async def test_four_agent_discussion_runs_200_rounds(net: Net):
    net.start_hub()
    for name in "abcd":
        net.agent(name, "echo")
    hub = await driver(net)
    try:
        await wait_agents(hub, set("abcd"))
        ch = await hub.request(
            "open_channel", as_agent="a", type="discussion", participants=["b", "c", "d"], knobs={"rounds": 200}
        )
        await hub.request("post", as_agent="a", channel_id=ch["channel_id"], data={"text": "let us count"})
        info = await wait_closed(hub, ch["channel_id"], timeout=100)
        assert info["close_reason"] == "200 rounds completed"
        turns = [e for e in await wal(hub, ch["channel_id"]) if e["type"] == "text"]
        assert len(turns) == 800
        assert [e["sender"] for e in turns[:8]] == list("abcdabcd")
    finally:
        await hub.close()


async def test_three_step_workflow_of_transform_brains(net: Net):
    net.start_hub()
    net.agent("client", "echo")
    net.agent("planner", "transform", {"op": "template", "template": "Plan: {text}"})
    net.agent("writer", "transform", {"op": "upper"})
    net.agent("editor", "transform", {"op": "template", "template": "Edited: {text}"})
    hub = await driver(net)
    try:
        await wait_agents(hub, {"client", "planner", "writer", "editor"})
        ch = await hub.request(
            "open_channel", as_agent="client", type="workflow", participants=["planner", "writer", "editor"]
        )
        await hub.request("post", as_agent="client", channel_id=ch["channel_id"], data={"text": "tides"})
        await wait_closed(hub, ch["channel_id"], timeout=20)
        texts = [(e["sender"], e["data"]["text"]) for e in await wal(hub, ch["channel_id"]) if e["type"] == "text"]
        assert texts == [
            ("client", "tides"),
            ("planner", "Plan: tides"),
            ("writer", "PLAN: TIDES"),
            ("editor", "Edited: PLAN: TIDES"),
        ]
    finally:
        await hub.close()


async def test_workflow_revision_loop(net: Net):
    net.start_hub()
    env = {"PYTHONPATH": str(REPO)}
    net.agent("client", "echo")
    net.agent("writer", "transform", {"op": "upper"})
    net.agent("editor", "python", {"callable": "tests.e2e.workflow_brains:editor"}, env=env)
    hub = await driver(net)
    try:
        await wait_agents(hub, {"client", "writer", "editor"})
        ch = await hub.request(
            "open_channel",
            as_agent="client",
            type="workflow",
            participants=["writer", "editor"],
            knobs={"max_revisions": 1},
        )
        await hub.request("post", as_agent="client", channel_id=ch["channel_id"], data={"text": "draft"})
        await wait_closed(hub, ch["channel_id"], timeout=20)
        turns = [(e["sender"], e["type"]) for e in await wal(hub, ch["channel_id"]) if e["type"] in ("text", "revise")]
        assert turns == [
            ("client", "text"),
            ("writer", "text"),
            ("editor", "revise"),
            ("writer", "text"),
            ("editor", "text"),
        ]
    finally:
        await hub.close()


async def test_redelivery_after_a_crash_between_reply_and_ack_never_answers_twice(net: Net):
    net.start_hub()
    net.agent("alice", "echo")
    bob = net.agent("bob", "calc", env={"AGENTNET_CRASHPOINT": "agent.after_reply_before_ack"})
    hub = await driver(net)
    try:
        await wait_agents(hub, {"alice", "bob"})
        ch = await hub.request("open_channel", as_agent="alice", type="consulting", participants=["bob"])
        q = await hub.request("post", as_agent="alice", channel_id=ch["channel_id"], data={"text": "What is 6 x 7?"})
        wait_until("bob to die at the crash point", lambda: bob.poll() is not None)
        assert bob.returncode == 137
        net.agent("bob", "calc")  # restarted, without the crash point
        await wait_closed(hub, ch["channel_id"], timeout=20)
        replies = [e for e in await wal(hub, ch["channel_id"]) if e["causation_id"] == q["envelope_id"]]
        assert [r["data"]["text"] for r in replies] == ["42"]
        records = wait_until(
            "bob's processed-log entry for the question",
            lambda: [r for r in net.processed("bob") if r["envelope_id"] == q["envelope_id"]] or None,
        )
        assert [r["effect"] for r in records] == ["dedup_skipped"]
        assert records[0]["attempt"] in (0, 2)  # resumed via pending_turns or redelivered
    finally:
        await hub.close()


@pytest.mark.timeout(60)
async def test_llm_brain_fails_clearly_while_the_endpoint_is_down_then_answers(net: Net):
    stub = StubOpenAI(reply=lambda body: "stub says 132").start()
    port = stub.port
    try:
        net.start_hub(max_deliver=50, nack_backoff=0.2)
        net.agent("alice", "echo")
        net.agent("bob", "llm", {"base_url": stub.base_url, "model": "test", "retries": 0, "timeout": 2})
        hub = await driver(net)
        try:
            await wait_agents(hub, {"alice", "bob"})
            ch = await hub.request("open_channel", as_agent="alice", type="consulting", participants=["bob"])
            stub.stop()
            await hub.request("post", as_agent="alice", channel_id=ch["channel_id"], data={"text": "12 x 11?"})
            wait_until("bob to report the dead endpoint", lambda: "unreachable" in net.log("bob"), timeout=20)
            assert "nack" in net.log("bob") or "handler failed" in net.log("bob")
            stub = StubOpenAI(reply=lambda body: "stub says 132", port=port).start()
            await wait_closed(hub, ch["channel_id"], timeout=30)
            replies = [e for e in await wal(hub, ch["channel_id"]) if e["sender"] == "bob"]
            assert [r["data"]["text"] for r in replies] == ["stub says 132"]
        finally:
            await hub.close()
    finally:
        stub.stop()
