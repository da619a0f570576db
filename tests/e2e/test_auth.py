"""API keys against a real hub process: who a token lets you be, and what happens to everyone else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agentnet.client import AgentClient, HubError

from .procs import HubProc, Peer, Procs, db_rows, frame, request, write_auth_file

pytestmark = pytest.mark.timeout(60)

TOKENS = {
    "alice": ("agent", "tok-alice-auth-0123456789"),
    "bob": ("agent", "tok-bob-auth-0123456789ab"),
    "watcher": ("observer", "tok-watcher-auth-01234567"),
}
TOKEN = {name: token for name, (_, token) in TOKENS.items()}
WRONG = "tok-nobody-0123456789abcd"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProc]:
    """One hub for the module (auth on, INFO logging so refusals are logged); proven gone afterwards."""
    workdir = tmp_path_factory.mktemp("auth")
    procs = Procs(workdir)
    try:
        auth = write_auth_file(workdir / "keys.yaml", TOKENS)
        hub = HubProc(procs, workdir / "hub.db", ["--auth-file", str(auth), "--log-level", "info"]).start()
        yield hub
        log = hub.proc.log() if hub.proc else ""
        assert hub.terminate() == 0, log
        assert "Traceback" not in log, log
        assert not any(token in log for token in (*TOKEN.values(), WRONG)), "an API key was written to the hub's log"
    finally:
        procs.close()


def hello(name: str, role: str = "agent", token: str | None = None) -> str:
    fields: dict = {"name": name, "role": role}
    if token is not None:
        fields["auth"] = {"scheme": "api_key", "token": token}
    return frame("hello", **fields)


REFUSED_HELLOS = {
    "no key": hello("alice"),
    "unknown key": hello("alice", token=WRONG),
    "another agent's key": hello("bob", token=TOKEN["alice"]),
    "an agent's key for the observer role": hello("alice", "observer", TOKEN["alice"]),
    "the observer's key for the agent role": hello("watcher", "agent", TOKEN["watcher"]),
    "the observer's key for a supervisor": hello("watcher", "supervisor", TOKEN["watcher"]),
}


@pytest.mark.parametrize("case", list(REFUSED_HELLOS))
async def test_a_hello_with_the_wrong_key_gets_auth_failed_and_4003(hub: HubProc, case: str) -> None:
    peer = await Peer.open(hub.url)
    assert await peer.refused(REFUSED_HELLOS[case]) == ("auth_failed", 4003)


async def test_a_key_in_the_query_string_is_not_a_key(hub: HubProc) -> None:
    peer = await Peer.open(hub.url.replace("/v1", f"/v1?token={TOKEN['alice']}"))
    assert await peer.refused(hello("alice")) == ("auth_failed", 4003)


async def test_the_bearer_header_is_checked_before_the_upgrade(hub: HubProc) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.url, additional_headers={"Authorization": f"Bearer {WRONG}"})
    assert refused.value.response.status_code == 401
    # a good header is a key: the hello needs none of its own, but must name the key's identity
    peer = await Peer.open(hub.url, "alice", additional_headers={"Authorization": f"Bearer {TOKEN['alice']}"})
    await peer.close()
    peer = await Peer.open(hub.url, additional_headers={"Authorization": f"Bearer {TOKEN['alice']}"})
    assert await peer.refused(hello("bob")) == ("auth_failed", 4003)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_the_bearer_scheme_is_case_insensitive(hub: HubProc, scheme: str) -> None:
    peer = await Peer.open(hub.url, "alice", additional_headers={"Authorization": f"{scheme} {TOKEN['alice']}"})
    await peer.close()
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.url, additional_headers={"Authorization": f"{scheme} {WRONG}"})
    assert refused.value.response.status_code == 401


def test_healthz_needs_no_key(hub: HubProc) -> None:
    assert hub.health()["status"] == "ok"


async def test_the_sdk_gives_up_on_a_refused_key_instead_of_retrying(hub: HubProc) -> None:
    for agent in (AgentClient(hub.url, "alice", token=WRONG), AgentClient(hub.url, "bob", token=TOKEN["alice"])):
        async with asyncio.timeout(10):
            with pytest.raises(HubError) as refused:
                await agent.start()
        assert refused.value.code == "auth_failed"
        await agent.close()


async def test_the_sender_is_the_key_holder(hub: HubProc) -> None:
    alice = await Peer.open(hub.url, "alice", TOKEN["alice"])
    bob = await Peer.open(hub.url, "bob", TOKEN["bob"])
    opened = await alice.ask(request("a1", "open_channel", type="conversation", participants=["bob"]))
    channel = opened["result"]["channel_id"]
    spoof = await alice.ask(request("a2", "post", channel_id=channel, type="note", data={}, as_agent="bob"))
    assert (spoof["ok"], spoof["error_code"]) == (False, "access_denied")
    forged = await alice.ask(request("a3", "post", channel_id=channel, type="note", data={}, sender="bob"))
    assert (forged["ok"], forged["error_code"]) == (False, "invalid")
    posted = await alice.ask(request("a4", "post", channel_id=channel, type="note", data={"n": 1}))
    assert posted["ok"]
    assert db_rows(hub.db, "SELECT sender FROM envelopes WHERE envelope_id=?", (posted["result"]["envelope_id"],)) == [
        ("alice",)
    ]
    await alice.close()
    await bob.close()


async def test_a_second_session_with_the_same_key_fences_the_first(hub: HubProc) -> None:
    alice = await Peer.open(hub.url, "alice", TOKEN["alice"])
    bob1 = await Peer.open(hub.url, "bob", TOKEN["bob"])
    opened = await alice.ask(request("f1", "open_channel", type="conversation", participants=["bob"]))
    channel = opened["result"]["channel_id"]
    posted = (await alice.ask(request("f2", "post", channel_id=channel, type="note", data={"n": 1})))["result"]

    async def notifies(peer: Peer, seq: int) -> dict:
        while True:
            got = await peer.recv()
            if got["kind"] == "notify" and (got["envelope"]["channel_id"], got["envelope"]["seq"]) == (channel, seq):
                return got

    first = await notifies(bob1, posted["seq"])  # delivered to the first session, not acked
    assert first["attempt"] == 1
    bob2 = await Peer.open(hub.url, "bob", TOKEN["bob"])
    with pytest.raises(ConnectionClosed):
        while True:
            await bob1.recv()
    assert bob1.ws.close_code == 4001  # superseded
    # the new session gets both envelopes of the channel again, and acks them
    for seq in (1, posted["seq"]):
        again = await notifies(bob2, seq)
        assert again["attempt"] == 2
        env = again["envelope"]
        await bob2.ws.send(frame("receipt", channel_id=channel, seq=seq, envelope_id=env["envelope_id"], status="ack"))
    assert env["envelope_id"] == posted["envelope_id"]
    assert (await bob2.ask(request("b1", "list_channels")))["ok"]  # the receipt before it was handled
    watcher = await Peer.open(hub.url, "watcher", TOKEN["watcher"], role="observer")
    snapshot = (await watcher.ask(request("w1", "observe")))["result"]
    cursor = next(c for c in snapshot["cursors"] if c["recipient"] == "bob" and c["channel_id"] == channel)
    assert cursor["ack_floor"] == posted["seq"] and cursor["inflight"] == 0
    for peer in (alice, bob2, watcher):
        await peer.close()
