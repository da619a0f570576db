"""The in-hub AutoGen gateway hands a request to an idle type's worker while the request's commit is
in flight, and releases the worker's response to the caller only once the request is stored
(docs/autogen.md, "Handed on while it commits"). Its crash semantics, shown with a failing commit: the
worker ran the request, the caller gets an error, never that response. And the worker sees requests
in the hub's order.

Real hub shell on a SQLite store, the gateway inside it (`LocalHubClient`, as `agentnet hub --autogen`);
the two workers are stand-ins at the gateway's edge (its `Worker` objects, fed protobuf messages as the
gRPC stream would), so the test can look at the store between handoff and commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentnet.gateway.autogen.gateway import AutogenGateway, GatewaySettings
from agentnet.gateway.autogen.protos import agent_worker_pb2 as pb
from agentnet.gateway.autogen.state import TypeState, Worker
from agentnet.gateway.local import LocalHubClient
from agentnet.hub.server import Hub, HubSettings
from tests.waiting import await_until

pytestmark = pytest.mark.timeout(60)


@dataclass
class Rig:
    hub: Hub
    gw: AutogenGateway
    ts: TypeState
    caller: Worker
    responder: Worker
    seen: list[tuple[str, int]] = field(default_factory=list)  # (request text, inbox seq committed then)
    answers: list[tuple[pb.Message, int]] = field(default_factory=list)  # (to the caller, seq committed then)

    def committed(self) -> int:
        return self.hub.core.channels[self.ts.channel_id].committed_seq

    def call(self, text: str, n: int) -> None:
        msg = pb.Message(
            request=pb.RpcRequest(
                request_id=str(n),
                target=pb.AgentId(type="echo", key="default"),
                method="Ping",
                payload=pb.Payload(data_type="Ping", data_content_type="application/json", data=text.encode()),
            )
        )
        self.gw._on_message(self.caller, msg)


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setenv("AGENTNET_FAULT_DISK_FULL", str(tmp_path / "disk-full"))
    hub = Hub(HubSettings(port=0, store=f"sqlite:{tmp_path / 'hub.db'}"))
    await hub.start()
    gw = AutogenGateway(GatewaySettings(hub=hub.url, port=0), connect=lambda name: LocalHubClient(hub, name=name))
    await gw.start()
    loop = asyncio.get_running_loop()
    caller, responder = Worker("c1", None, 30.0, "agw-c1"), Worker("r1", None, 30.0, "agw-r1")
    ts = await gw._ensure_type("echo")
    ts.owner = responder
    responder.types.add("echo")
    client = gw._hub_client(ts.identity)
    client.on_frame = lambda frame: gw._on_type_frame(ts, client, frame)
    ts.client = client
    await client.start()
    ts.held = None  # as after RegisterAgent and the worker's subscriptions
    rig = Rig(hub, gw, ts, caller, responder)

    def serve(msg: pb.Message, written: object = None) -> None:  # the worker answers on its next turn
        rig.seen.append((msg.request.payload.data.decode(), rig.committed()))
        answer = pb.Message(response=pb.RpcResponse(request_id=msg.request.request_id, payload=msg.request.payload))
        loop.call_soon(gw._on_message, responder, answer)

    responder.send = serve  # type: ignore[method-assign]
    caller.send = lambda msg, written=None: rig.answers.append((msg, rig.committed()))  # type: ignore[method-assign]
    try:
        yield rig
    finally:
        await gw.stop(0)
        await hub.stop()


async def test_an_idle_type_gets_the_request_before_its_commit_and_the_caller_after(rig: Rig) -> None:
    for n in range(1, 4):  # one at a time, as a sequential caller sends them
        before = rig.committed()
        rig.call(f"ping {n}", n)
        assert rig.seen[-1] == (f"ping {n}", before), "handed on before the request was committed"
        await await_until(f"answer {n}", lambda n=n: len(rig.answers) == n)
        answer, committed = rig.answers[-1]
        assert answer.response.request_id == str(n) and answer.response.payload.data == f"ping {n}".encode()
        assert committed > before, "the caller got the response before the request was stored"
    assert rig.gw.stats["early"] == 3
    # Each request is stored, then its response (causation: the request), and the request is acked.
    await await_until("the last request acked", lambda: not rig.hub.core.cursors["ag-echo"][rig.ts.channel_id].inflight)
    page = await rig.ts.client.request("read_wal", channel_id=rig.ts.channel_id, after_seq=0, limit=100)
    kinds = [(e["type"], e["data"].get("text", "")) for e in page["envelopes"] if e["type"].startswith("ag.rpc")]
    assert kinds == [
        (k, f"{p} ping {n}") for n in range(1, 4) for k, p in (("ag.rpc.request", "Ping"), ("ag.rpc.response", "Ping"))
    ]


async def test_a_failed_commit_means_an_error_for_the_caller_though_the_worker_ran_it(rig: Rig, tmp_path: Path) -> None:
    full = tmp_path / "disk-full"
    full.touch()  # the request's commit fails (it needs new pages: the store may not grow)
    rig.call("lost " + "x" * 20_000, 1)
    assert [text[:4] for text, _ in rig.seen] == ["lost"]  # handed on while committing
    await await_until("the caller's answer", lambda: rig.answers)
    answer = rig.answers[0][0].response
    assert answer.request_id == "1" and answer.error.startswith("the hub refused the request: overloaded"), answer
    assert not answer.payload.data, "the worker's response to an unstored request reached the caller"
    full.unlink()
    await await_until("the type attached again", lambda: rig.ts.client is not None and rig.ts.client.connected, 10)
    rig.call("after", 2)
    await await_until("the next answer", lambda: len(rig.answers) == 2)
    assert rig.answers[1][0].response.payload.data == b"after"


async def test_requests_reach_the_worker_in_the_hubs_order(rig: Rig) -> None:
    for n in range(1, 6):  # five in one loop turn: all handed on at once, then stored in that order
        rig.call(f"burst {n}", n)
    await await_until("five answers", lambda: len(rig.answers) == 5)
    assert [text for text, _ in rig.seen] == [f"burst {n}" for n in range(1, 6)]
    assert rig.gw.stats["early"] == 5
    page = await rig.ts.client.request("read_wal", channel_id=rig.ts.channel_id, after_seq=0, limit=100)
    stored = [e["data"]["text"] for e in page["envelopes"] if e["type"] == "ag.rpc.request"]
    assert stored == [f"Ping burst {n}" for n in range(1, 6)]
