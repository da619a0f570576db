"""The gateway's hub identities cannot be taken over: not by a second gateway, not by a client that
says hello under one of their names, not by a worker that asks to be shown under one of them.

Before, any of these superseded the gateway's session, and the gateway's own identities never came
back: every RPC failed with `autogen-gw is not attached to the hub` until the hub was restarted.
Real hub process with the gateway inside it, real autogen-ext 0.7.5 workers.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentnet.client.connection import HubClient, HubError

from .autogen_peers import GatewayProc, InHubGateway, require_autogen, start_worker
from .procs import HubProc, Procs, wait_until

pytestmark = pytest.mark.timeout(120)


async def test_a_second_gateway_a_namesake_client_and_namesake_workers_are_kept_off(
    procs: Procs, tmp_path: Path
) -> None:
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db")
    gw = InHubGateway(hub).start()
    start_worker(procs, "svc", gw.address, ["svc"], [])
    caller = start_worker(procs, "caller", gw.address, ["caller"], [])

    def served(text: str) -> None:
        answer = caller.cmd(cmd="rpc", target="svc", text=text, timeout=10)
        assert answer.get("reply") == f"svc: {text}", answer

    served("before")

    # A second gateway (the sidecar) pointed at this hub: refused, in one line, and it exits.
    sidecar = procs.spawn(
        "sidecar",
        [sys.executable, "-m", "agentnet.cli", "gateway", "autogen", "--hub", hub.url, "--port", "0"],
    )
    assert sidecar.popen.wait(timeout=30) == 1
    said = sidecar.log()
    assert "another AutoGen gateway is attached to the hub" in said and "Traceback" not in said, said
    served("after a second gateway")

    # A client saying hello as the gateway: refused with close 4002 (the name is in use).
    with pytest.raises(HubError) as refused:
        async with HubClient(hub.url, name="autogen-gw"):
            pass
    assert refused.value.code == "conflict" and "served by the gateway inside this hub" in refused.value.message
    served("after a namesake client")

    # Workers asking to be shown as the gateway, as a type's identity, or as a connected worker:
    # they show under their own agw-… name, and everyone is still served.
    for i, name in enumerate(("autogen-gw", "ag-svc", "svc-worker", "svc-worker")):
        start_worker(procs, f"namesake{i}", gw.address, [f"extra{i}"], [], shown_as=name)
        served(f"after worker {i} named {name}")
    async with HubClient(hub.url, name="watcher", role="observer") as watcher:
        deadline = time.monotonic() + 30
        while True:  # the workers' identities attach as their streams open: poll until they all have
            snapshot = await watcher.request("observe")
            agents = {a["name"] for a in snapshot["agents"] if a["connected"]}
            own = [n for n in agents if n.startswith("agw-")]
            # svc, caller, the two reserved names and the second svc-worker under their own agw-… names
            if {"autogen-gw", "svc-worker"} <= agents and len(own) == 5:
                break
            assert time.monotonic() < deadline, sorted(agents)
            await asyncio.sleep(0.05)
    assert hub.proc is not None
    assert hub.proc.log().count("it shows as agw-") == 3, hub.proc.log()
    assert "'svc-worker', which is connected: it shows as agw-" in hub.proc.log()


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
def test_a_busy_grpc_port_is_one_line_and_nothing_starts(tmp_path: Path, shape: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        if shape == "in-hub":
            args = ["hub", "--port", "0", "--autogen", f"127.0.0.1:{port}"]
        else:
            args = ["gateway", "autogen", "--hub", "ws://127.0.0.1:9/v1", "--port", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", "agentnet.cli", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
    assert done.returncode != 0
    assert done.stdout == ""  # no hub banner: nothing started
    assert done.stderr.strip().splitlines() == [
        f"{'agentnet' if shape == 'in-hub' else 'agentnet gateway autogen'}: error: "
        + (f"--autogen 127.0.0.1:{port}: " if shape == "in-hub" else "")
        + f"port {port} on 127.0.0.1 is already in use (pick another, or port 0 for a free one)"
    ]


def test_a_grpc_client_on_the_websocket_port_is_told_where_to_go(procs: Procs, tmp_path: Path) -> None:
    """A worker given the hub's WebSocket port instead of the gateway's: the hub says so in its log."""
    hub = HubProc(procs, tmp_path / "hub.db").start()
    with socket.create_connection(("127.0.0.1", hub.port)) as grpc_client:
        grpc_client.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # HTTP/2's connection preface
        assert grpc_client.recv(1000) == b""  # refused: the hub closes the connection
    assert hub.proc is not None
    wait_until("the hub's hint", lambda: "spoke HTTP/2 to the WebSocket port" in hub.proc.log())
    assert "agentnet hub --autogen HOST:PORT" in hub.proc.log()


def hub_and_gateway(procs: Procs, tmp_path: Path, shape: str) -> tuple[HubProc, InHubGateway | GatewayProc]:
    """A hub (SQLite) with the gateway inside it (`in-hub`) or beside it (`sidecar`), started."""
    hub = HubProc(procs, tmp_path / "hub.db")
    if shape == "in-hub":
        return hub, InHubGateway(hub).start()
    return hub, GatewayProc(procs, hub.start().url).start()


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
@pytest.mark.parametrize("passport", [True, False])
async def test_a_worker_named_like_an_offline_agent_leaves_it_its_name_and_inbox(
    procs: Procs, tmp_path: Path, shape: str, passport: bool
) -> None:
    """alice is offline with three posts waiting; a worker asks to be shown as alice. It ends up
    under its own name (inside the hub: at once; a sidecar cannot look alice up, and gives the name
    back at the first delivery, unacked); alice comes back while it runs and gets her three posts."""
    require_autogen()
    hub, gw = hub_and_gateway(procs, tmp_path, shape)
    async with HubClient(hub.url, name="alice") as alice:
        if passport:
            await alice.request("register", passport={"description": "alice, a native agent"})
    async with HubClient(hub.url, name="bob") as bob:
        channel = (await bob.request("open_channel", type="conversation", participants=["alice"]))["channel_id"]
        for i in range(3):
            await bob.request("post", channel_id=channel, data={"text": f"for alice {i}"})
    start_worker(procs, "namesake", gw.address, ["x1"], [], shown_as="alice")
    assert gw.proc is not None
    wait_until(
        "the worker under its own name",
        lambda: "asked to show as 'alice'" in gw.proc.log() or ("showed as 'alice'" in gw.proc.log()),
    )

    got: list[str] = []
    alice = HubClient(hub.url, name="alice")
    alice.on_frame = lambda f: (
        got.append(f["envelope"]["data"].get("text", ""))
        if f.get("kind") == "notify" and f["envelope"]["type"] == "text"
        else None
    )
    async with alice:
        deadline = time.monotonic() + 30
        while got != ["for alice 0", "for alice 1", "for alice 2"]:
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.05)


async def observed_agents(url: str) -> dict[str, dict]:
    async with HubClient(url, name="watcher", role="observer") as watcher:
        return {a["name"]: a for a in (await watcher.request("observe"))["agents"]}


async def wait_for_agents(url: str, what: str, ok: Any) -> dict[str, dict]:
    deadline = time.monotonic() + 30
    while True:
        agents = await observed_agents(url)
        if ok(agents):
            return agents
        assert time.monotonic() < deadline, f"{what}: {sorted(n for n, a in agents.items() if a['connected'])}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
async def test_a_post_to_a_workers_name_is_settled_and_the_name_stays_the_workers(
    procs: Procs, tmp_path: Path, shape: str
) -> None:
    """bob opens a channel with worker `wb` and posts: acked unhandled (workers read no posts), and
    `wb` stays the worker's, for this worker and the next one that asks for it."""
    require_autogen()
    hub, gw = hub_and_gateway(procs, tmp_path, shape)
    first = start_worker(procs, "wb-1", gw.address, ["s1"], [], shown_as="wb")
    await wait_for_agents(hub.url, "wb connected", lambda a: a.get("wb", {}).get("connected"))
    async with HubClient(hub.url, name="bob") as bob:
        channel = (await bob.request("open_channel", type="conversation", participants=["wb"]))["channel_id"]
        await bob.request("post", channel_id=channel, data={"text": "hello wb"})
        first.kill()
        start_worker(procs, "wb-2", gw.address, ["s1"], [], shown_as="wb")
        await wait_for_agents(hub.url, "wb back", lambda a: a.get("wb", {}).get("connected"))
        cursors = []
        deadline = time.monotonic() + 30
        while not cursors or cursors[0]["lag"]:
            assert time.monotonic() < deadline, cursors
            page = await bob.request("get_channel", channel_id=channel)
            async with HubClient(hub.url, name="watcher", role="observer") as watcher:
                snapshot = await watcher.request("observe")
            cursors = [c for c in snapshot["cursors"] if c["recipient"] == "wb" and c["channel_id"] == channel]
            await asyncio.sleep(0.05)
        assert page["head_seq"] == cursors[0]["ack_floor"]  # the opening and the post: settled


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
async def test_an_agent_that_takes_its_name_back_leaves_the_worker_its_own(
    procs: Procs, tmp_path: Path, shape: str
) -> None:
    """A worker shows as carol, a name the hub did not know; then the native carol connects: she
    gets her name, and the worker goes on under its agw-… name."""
    require_autogen()
    hub, gw = hub_and_gateway(procs, tmp_path, shape)
    start_worker(procs, "namesake", gw.address, ["x1"], [], shown_as="carol")
    await wait_for_agents(hub.url, "the worker as carol", lambda a: a.get("carol", {}).get("connected"))
    async with HubClient(hub.url, name="carol") as carol:
        await carol.request("register", passport={"description": "carol, a native agent"})
        agents = await wait_for_agents(
            hub.url,
            "the worker under its own name",
            lambda a: any(n.startswith("agw-") and x["connected"] for n, x in a.items()),
        )
        assert agents["carol"]["passport"]["description"] == "carol, a native agent"


async def test_a_sidecar_worker_leaves_an_offline_agents_name_and_passport_alone(procs: Procs, tmp_path: Path) -> None:
    """The sidecar looks the name up too (list_agents): alice is an agent, offline, nothing waiting."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db").start()
    gw = GatewayProc(procs, hub.url).start()
    async with HubClient(hub.url, name="alice") as alice:
        await alice.request("register", passport={"description": "alice, a native agent"})
    start_worker(procs, "namesake", gw.address, ["x1"], [], shown_as="alice")
    agents = await wait_for_agents(
        hub.url,
        "the worker under its own name",
        lambda a: any(n.startswith("agw-") and x["connected"] for n, x in a.items()),
    )
    assert not agents["alice"]["connected"]
    assert agents["alice"]["passport"]["description"] == "alice, a native agent"


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
async def test_a_name_an_agent_took_back_goes_to_no_worker_again(procs: Procs, tmp_path: Path, shape: str) -> None:
    """dave took his name back from a worker without registering a passport (so the hub's record
    still reads like a worker's); he goes offline with a post waiting. The next worker that asks for
    dave does not get the name, nor dave's post."""
    require_autogen()
    hub, gw = hub_and_gateway(procs, tmp_path, shape)
    first = start_worker(procs, "first", gw.address, ["x1"], [], shown_as="dave")
    await wait_for_agents(hub.url, "the worker as dave", lambda a: a.get("dave", {}).get("connected"))
    async with HubClient(hub.url, name="dave"):  # a native agent with no passport of its own
        await wait_for_agents(hub.url, "the worker under its own name", lambda a: any(n.startswith("agw-") for n in a))
    first.kill()
    async with HubClient(hub.url, name="bob") as bob:
        channel = (await bob.request("open_channel", type="conversation", participants=["dave"]))["channel_id"]
        await bob.request("post", channel_id=channel, data={"text": "for dave"})
    start_worker(procs, "second", gw.address, ["x2"], [], shown_as="dave")
    assert gw.proc is not None
    wait_until("the refusal", lambda: "asked to show as 'dave', an agent's that took it back" in gw.proc.log())
    agents = await observed_agents(hub.url)
    assert not agents["dave"]["connected"]
    async with HubClient(hub.url, name="watcher", role="observer") as watcher:
        cursors = (await watcher.request("observe"))["cursors"]
    assert [c["lag"] for c in cursors if c["recipient"] == "dave" and c["channel_id"] == channel] == [2]


async def test_the_sidecar_refuses_a_name_it_cannot_look_up(procs: Procs, tmp_path: Path) -> None:
    """zed-b is an offline agent; 21 agents whose names sort just below it carry 300 kB passports,
    one per page of list_agents: past its page limit the sidecar refuses the name (fails closed)."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db").start()
    gw = GatewayProc(procs, hub.url).start()
    async with HubClient(hub.url, name="zed-b") as zed:
        await zed.request("register", passport={"description": "zed-b, a native agent"})
    for i in range(21):
        async with HubClient(hub.url, name=f"zed-a{i:04d}") as filler:
            await filler.request("register", passport={"description": "filler", "meta": {"blob": "x" * 300_000}})
    start_worker(procs, "namesake", gw.address, ["x1"], [], shown_as="zed-b")
    assert gw.proc is not None
    wait_until("the refusal", lambda: "asked to show as 'zed-b'" in gw.proc.log())
    async with HubClient(hub.url, name="watcher", role="observer") as watcher:
        (zed,) = [
            a for a in (await watcher.request("list_agents", after="zed-a0020"))["agents"] if a["name"] == "zed-b"
        ]
    assert not zed["connected"] and zed["passport"]["description"] == "zed-b, a native agent"
