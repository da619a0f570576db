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


@pytest.mark.parametrize("shape", ["in-hub", "sidecar"])
@pytest.mark.parametrize("passport", [True, False])
async def test_a_worker_named_like_an_offline_agent_leaves_it_its_name_and_inbox(
    procs: Procs, tmp_path: Path, shape: str, passport: bool
) -> None:
    """alice is offline with three posts waiting; a worker asks to be shown as alice. It ends up
    under its own name (inside the hub: at once; a sidecar cannot look alice up, and gives the name
    back at the first delivery, unacked); alice comes back while it runs and gets her three posts."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db")
    gw: InHubGateway | GatewayProc = (
        InHubGateway(hub).start() if shape == "in-hub" else GatewayProc(procs, hub.start().url).start()
    )
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
