"""Unmodified ag2 1.2.1 clients against agentnet's hub (paths / and /ag2), as real subprocesses.

The ag2 clients run from .venv-ag2 (created by `make test`, or by the fixture below on first use):
`tests/e2e/ag2_peers/peer.py` drives ag2's own HubClient, AgentClient, Channel and `delegate` tool
with scripted models. Native agentnet clients (the SDK, `agentnet ask`, an observer) share the hub.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentnet.client.agent import AgentClient
from agentnet.client.observer import ObserverClient

from .procs import REPO, HubProc, Peer, Proc, Procs, frame, request, wait_until, write_auth_file

pytestmark = pytest.mark.timeout(120)

AG2_PY = REPO / ".venv-ag2" / "bin" / "python"
PEER = Path(__file__).with_name("ag2_peers") / "peer.py"


@pytest.fixture(scope="module")
def ag2_python() -> Path:
    """The ag2 1.2.1 environment: made by `make .venv-ag2/.stamp` (idempotent) if it is not there yet."""
    if not (REPO / ".venv-ag2" / ".stamp").exists():
        subprocess.run(["make", "-s", ".venv-ag2/.stamp"], cwd=REPO, check=True, timeout=600)
    return AG2_PY


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, ag2_python: Path) -> Iterator[tuple[HubProc, Procs]]:
    """One hub (sqlite) for the module's tests; every process of the module is proven gone after."""
    workdir = tmp_path_factory.mktemp("ag2")
    procs = Procs(workdir)
    try:
        hub = HubProc(procs, workdir / "hub.db", extra=["--ack-wait", "5"]).start()
        yield hub, procs
        assert hub.terminate() == 0, hub.proc.log() if hub.proc else ""
    finally:
        procs.close()


def ag2_url(hub: HubProc, path: str = "") -> str:
    return f"ws://127.0.0.1:{hub.port}{path}"


def ag2(procs: Procs, command: str, *args: str) -> Proc:
    return procs.spawn(f"ag2-{command}", [str(AG2_PY), str(PEER), command, *args])


def events(proc: Proc) -> list[dict[str, Any]]:
    out = []
    for line in proc.log().splitlines():
        if line.startswith('{"event"'):
            out.append(json.loads(line))
    return out


def wait_event(proc: Proc, kind: str, timeout: float = 40, count: int = 1) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        got = [e for e in events(proc) if e["event"] == kind]
        if len(got) >= count:
            return got[count - 1]
        if not proc.alive() and any(e["event"] == "error" for e in events(proc)):
            raise AssertionError(f"{proc.name} failed:\n{proc.log()[-3000:]}")
        return None

    try:
        return wait_until(f"{proc.name}: {kind}", found, timeout)
    except AssertionError:
        raise AssertionError(f"{proc.name} never said {kind}:\n{proc.log()[-3000:]}") from None


def finished(proc: Proc, kind: str, timeout: float = 60) -> dict[str, Any]:
    event = wait_event(proc, kind, timeout)
    assert proc.popen.wait(timeout=20) == 0, proc.log()[-3000:]
    return event


async def observe(url: str, until: Any, timeout: float = 40) -> list[dict[str, Any]]:
    """The observer feed's events until `until(events)` holds."""
    got: list[dict[str, Any]] = []
    async with ObserverClient(url, name="ag2-watcher") as feed:
        async with asyncio.timeout(timeout):
            async for kind, item in feed:
                if kind == "event":
                    got.append(item)
                    if until(got):
                        return got
    return got


# --------------------------------------------------------------------------- register, consult, delegate


async def test_register_consult_and_a_native_observer_sees_it(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    bob = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "bob", "--reply", "42 is the answer")
    ready = wait_event(bob, "ready")
    watched: dict[str, str] = {}

    def seen(evs: list[dict[str, Any]]) -> bool:
        for e in evs:
            if e["type"] == "wal.append" and e["envelope"]["type"] == "text" and e["envelope"]["sender"] == "alice":
                watched["channel"] = e["envelope"]["channel_id"]
        ch = watched.get("channel")
        acks = [e for e in evs if e["type"] == "ack" and e.get("channel_id") == ch]
        return ch is not None and len(acks) == 6  # opened, question/reply, closed: each acked by both

    feed = asyncio.create_task(observe(hub.url, seen))
    await asyncio.sleep(0.5)  # the observer's snapshot first (its events start after it)
    alice = ag2(procs, "consult", "--url", ag2_url(hub, "/ag2"), "--name", "alice", "--target", "bob")
    reply = await asyncio.to_thread(finished, alice, "reply")
    assert reply["text"] == "42 is the answer"
    assert reply["causation_id"] == reply["prompt_id"]  # bob's default handler answered the prompt
    assert reply["state"] == "closed" and reply["closed_reason"] == "every target answered"
    evs = await feed
    appended = [
        e["envelope"] for e in evs if e["type"] == "wal.append" and e["envelope"]["channel_id"] == reply["channel_id"]
    ]
    assert [e["type"] for e in appended] == ["channel.opened", "text", "text", "channel.closed"]
    assert appended[2]["sender"] == "bob" and appended[2]["data"]["text"] == "42 is the answer"
    mine = [
        (e["type"], e["recipient"], e["seq"])
        for e in evs
        if e.get("channel_id") == reply["channel_id"] and e["type"] in ("deliver", "ack")
    ]
    for seq, to in ((1, "bob"), (2, "bob"), (3, "alice"), (4, "alice"), (4, "bob")):
        assert ("deliver", to, seq) in mine and ("ack", to, seq) in mine, (seq, to, mine)
    async with ObserverClient(hub.url, name="ag2-snap") as feed2:
        snap = await feed2.request("observe")
    agents = {a["name"]: a for a in snap["agents"]}
    assert agents["bob"]["passport"]["meta"]["via"] == "ag2" and agents["bob"]["agent_id"] == ready["agent_id"]
    bob.terminate()


async def test_delegate_tool_with_a_scripted_model(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    bob = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "bob-d", "--reply", "seven")
    wait_event(bob, "ready")
    carol = ag2(procs, "delegate", "--url", ag2_url(hub), "--name", "carol", "--target", "bob-d")
    done = await asyncio.to_thread(finished, carol, "delegated")
    assert len(done["tool_results"]) == 1 and "seven" in done["tool_results"][0], done
    assert done["final"] == "done"
    bob.terminate()


async def test_ag2_asks_a_native_calc_agent_and_native_ask_reaches_an_ag2_agent(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    calc = procs.spawn(
        "calc",
        [
            sys.executable,
            "-m",
            "agentnet.cli",
            "agent",
            "--name",
            "calc",
            "--hub",
            hub.url,
            "--brain",
            "calc",
            "--state-dir",
            str(procs.workdir / "calc"),
        ],
    )
    bob = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "bob-n", "--reply", "forty-two")
    wait_event(bob, "ready")
    await asyncio.to_thread(wait_until, "calc connected", lambda: "calc" in _agent_names(hub), 20)
    dave = ag2(
        procs,
        "consult",
        "--url",
        ag2_url(hub),
        "--name",
        "dave",
        "--target",
        "calc",
        "--prompt",
        "What is 12 times 11?",
    )
    assert (await asyncio.to_thread(finished, dave, "reply"))["text"] == "132"
    asked = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agentnet.cli", "ask", "--hub", hub.url, "--to", "bob-n", "what is 6*7?"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert asked.stdout.strip() == "forty-two"
    bob.terminate()
    calc.terminate()


def _agent_names(hub: HubProc) -> set[str]:
    async def names() -> set[str]:
        async with ObserverClient(hub.url, name="ag2-names") as feed:
            async for _kind, snap in feed:
                return {a["name"] for a in snap["agents"] if a["connected"]}
        return set()

    return asyncio.run(names())


async def test_a_discussion_goes_round_robin_and_agents_shut_down(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    talkers = [ag2(procs, "serve", "--url", ag2_url(hub), "--name", n, "--reply", f"{n} speaks") for n in ("p1", "p2")]
    for proc in talkers:
        wait_event(proc, "ready")
    dana = ag2(procs, "discuss", "--url", ag2_url(hub), "--name", "dana", "--target", "p1,p2", "--turns", "7")
    done = await asyncio.to_thread(finished, dana, "discussed")
    assert done["speakers"] == ["dana", "p1", "p2", "dana", "p1", "p2", "dana"], done
    assert done["state"] == "closed"
    for proc in talkers:
        assert proc.terminate() == 0, proc.log()[-2000:]  # HubClient.shutdown: unregister, close


# --------------------------------------------------------------------------- away, replay, drops, big WALs


async def test_bob_away_alice_asks_bob_attaches_and_answers(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    first = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "bob-a", "--reply", "later")
    wait_event(first, "ready")
    first.kill()  # bob is away (registered, not connected)
    alice = ag2(procs, "consult", "--url", ag2_url(hub), "--name", "alice-a", "--target", "bob-a")

    def asked() -> bool:
        db = procs.workdir / "hub.db"
        return bool(_rows(db, "SELECT 1 FROM envelopes WHERE sender = 'alice-a' AND type = 'text'"))

    await asyncio.to_thread(wait_until, "alice's question in the WAL", asked, 40)
    again = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "bob-a", "--reply", "later", "--attach", "--since", "")
    wait_event(again, "ready")
    reply = await asyncio.to_thread(finished, alice, "reply")
    assert reply["text"] == "later"
    again.terminate()


def _rows(db: Path, sql: str) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql).fetchall()


async def test_1000_envelopes_to_an_ag2_receiver_dropped_mid_stream_nothing_lost(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    bob = ag2(procs, "count", "--url", ag2_url(hub), "--name", "bob-s")
    wait_event(bob, "ready")
    total = 1000
    async with AgentClient(hub.url, "streamer") as sender, ObserverClient(hub.url, name="ag2-dropper") as obs:
        channel = await sender.open("conversation", "bob-s")

        async def post(first: int, last: int) -> None:
            for n in range(first, last + 1):
                await channel.send(f"n{n}", type="note")

        posting = asyncio.gather(*(post(k * 100 + 1, k * 100 + 100) for k in range(total // 100)))

        def got() -> set[str]:
            return {e["text"] for e in events(bob) if e["event"] == "got" and e["type"] == "note"}

        await asyncio.to_thread(wait_until, "300 received", lambda: len(got()) >= 300, 60)
        await obs.request("disconnect", name="bob-s")  # the hub drops bob's socket mid-stream
        await posting
        await asyncio.to_thread(wait_event, bob, "dropped")
        await asyncio.to_thread(wait_event, bob, "ready", 40, 2)  # it attached again (since_envelope_id="")
        want = {f"n{n}" for n in range(1, total + 1)}
        await asyncio.to_thread(wait_until, "every envelope received", lambda: want <= got(), 60)
        log = events(bob)
        cut = next(i for i, e in enumerate(log) if e["event"] == "dropped")
        before = {e["text"] for e in log[:cut] if e["event"] == "got"}
        after = [e["text"] for e in log[cut:] if e["event"] == "got"]
        assert 300 <= len(before) < total and after, (len(before), len(after))  # dropped mid-stream
        snap = await obs.request("observe")
        cur = next(c for c in snap["cursors"] if c["recipient"] == "bob-s" and c["channel_id"] == channel.id)
        await asyncio.to_thread(
            wait_until, "bob's ack floor at the head", lambda: _floor(procs, channel.id) >= total + 1, 30
        )
        assert cur["dead"] == 0
    bob.terminate()


def _floor(procs: Procs, channel_id: str) -> int:
    rows = _rows(
        procs.workdir / "hub.db",
        f"SELECT ack_floor FROM cursors WHERE recipient = 'bob-s' AND channel_id = '{channel_id}'",
    )
    return rows[0][0] if rows else 0


async def test_a_wal_over_1_mib_is_read_without_closing_the_socket(net: tuple[HubProc, Procs]) -> None:
    hub, procs = net
    bob = ag2(procs, "count", "--url", ag2_url(hub), "--name", "bob-w")
    wait_event(bob, "ready")
    fay = ag2(
        procs, "bigwal", "--url", ag2_url(hub), "--name", "fay", "--target", "bob-w", "--posts", "300", "--size", "4000"
    )
    read = await asyncio.to_thread(finished, fay, "read", 90)
    assert 0 < read["count"] < 301 and read["bytes"] < 1024 * 1024  # the newest part that fits
    assert read["last"].startswith("299 ")  # ... ending with the newest envelope
    assert read["first"] == ["ag2.channel.opened", "note", "note"]
    assert read["state"] == "active"  # a later call on the same socket worked
    bob.terminate()


async def test_receipts_move_the_floor_over_the_contiguous_prefix_and_nacks_come_back(
    net: tuple[HubProc, Procs],
) -> None:
    """ag2's hub keeps the highest acked id and skips a nacked envelope below it; agentnet does not."""
    hub, _procs = net
    rx = await Peer.open(ag2_url(hub))
    gid = (await _ask(rx, "1", "register", passport={"name": "rx"}))["result"]["agent_id"]

    async def notify() -> dict[str, Any]:
        while (got := await rx.recv())["kind"] != "notify":
            pass
        return got["envelope"]

    async def receipt(env: dict[str, Any], status: str = "ack") -> None:
        await rx.ws.send(
            frame(
                "receipt",
                envelope_id=env["envelope_id"],
                status=status,
                recipient_id=gid,
                channel_id=env["channel_id"],
                reason="handler failed" if status == "nack" else "",
            )
        )

    async def floor(obs: ObserverClient, channel_id: str) -> int:
        snap = await obs.request("observe")
        return next(c["ack_floor"] for c in snap["cursors"] if c["recipient"] == "rx" and c["channel_id"] == channel_id)

    async with AgentClient(hub.url, "tx") as tx, ObserverClient(hub.url, name="ag2-floor") as obs:
        channel = await tx.open("conversation", "rx")
        for text in ("n1", "n2", "n3"):
            await channel.send(text, type="note")
        opened, n1, n2, n3 = [await notify() for _ in range(4)]
        assert [e["event_data"].get("text") for e in (n1, n2, n3)] == ["n1", "n2", "n3"]
        await receipt(opened)
        await receipt(n2, "nack")
        await receipt(n3)  # a later ack does not carry the floor past n1 (unacked) and n2 (nacked)
        again = await notify()  # the nacked one comes back after its backoff
        assert again["envelope_id"] == n2["envelope_id"]
        assert await floor(obs, channel.id) == 1
        await receipt(n1)
        await receipt(again)
        async with asyncio.timeout(20):
            while await floor(obs, channel.id) != 4:  # the floor reaches n3 once the gap is filled
                await asyncio.sleep(0.05)
        # away with one unacked: a hello with since_envelope_id=None still gets it (agentnet never skips)
        await channel.send("n4", type="note")
        n4 = await notify()
        await rx.close()
        back = await Peer.open(ag2_url(hub))
        await back.ws.send(frame("hello", name="rx", auth_scheme="none", auth_claim={}, since_envelope_id=None))
        assert (await back.recv())["kind"] == "welcome"
        replayed = await back.recv()
        assert replayed["kind"] == "notify" and replayed["envelope"]["envelope_id"] == n4["envelope_id"]
        assert replayed["recipient_id"] == gid
        await back.close()


# --------------------------------------------------------------------------- auth


def test_api_key_right_token_accepted_another_names_refused(tmp_path: Path, ag2_python: Path) -> None:
    procs = Procs(tmp_path)
    try:
        keys = write_auth_file(
            tmp_path / "keys.yaml", {"ann": ("agent", "token-ann-0123456789"), "ben": ("agent", "token-ben-0123456789")}
        )
        hub = HubProc(procs, tmp_path / "hub.db", extra=["--auth-file", str(keys)]).start()
        ann = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "ann", "--token", "token-ann-0123456789")
        wait_event(ann, "ready")
        ben = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "ben", "--token", "token-ann-0123456789")
        refused = wait_event(ben, "error")
        assert refused["type"] == "AuthError" and "for agent 'ann', not agent 'ben'" in refused["message"]
        nobody = ag2(procs, "serve", "--url", ag2_url(hub), "--name", "ben")
        assert wait_event(nobody, "error")["type"] == "AuthError"
        ann.kill()
        # attach's hello is checked the same way: ann's name with ben's token is refused
        thief = ag2(
            procs, "serve", "--url", ag2_url(hub), "--name", "ann", "--attach", "--token", "token-ben-0123456789"
        )
        refused = wait_event(thief, "error")
        assert refused["type"] == "AuthError" and "not agent 'ann'" in refused["message"]
        back = ag2(
            procs, "serve", "--url", ag2_url(hub), "--name", "ann", "--attach", "--token", "token-ann-0123456789"
        )
        wait_event(back, "ready")
        back.terminate()
        assert hub.terminate() == 0
    finally:
        procs.close()


# --------------------------------------------------------------------------- golden key sets, bad frames

FIELDS = """
import dataclasses, json
from ag2.network import envelope, identity, channel, rule
from ag2.network.hub import PendingTurn
from ag2.network.transport import frames
classes = {"Envelope": envelope.Envelope, "Passport": identity.Passport, "AuthBlock": identity.AuthBlock,
           "Resume": identity.Resume, "Rule": rule.Rule, "ChannelMetadata": channel.ChannelMetadata,
           "ChannelManifest": channel.ChannelManifest, "Participant": channel.Participant,
           "ParticipantSchema": channel.ParticipantSchema, "Expectation": channel.Expectation,
           "PendingTurn": PendingTurn, "WelcomeFrame": frames.WelcomeFrame, "ErrorFrame": frames.ErrorFrame,
           "NotifyFrame": frames.NotifyFrame, "ResponseFrame": frames.ResponseFrame}
print(json.dumps({k: [f.name for f in dataclasses.fields(c)] + (["kind"] if k.endswith("Frame") else [])
                  for k, c in classes.items()}))
"""


@pytest.fixture(scope="module")
def ag2_fields(ag2_python: Path) -> dict[str, set[str]]:
    out = subprocess.run([str(ag2_python), "-c", FIELDS], capture_output=True, text=True, check=True, timeout=60)
    return {k: set(v) for k, v in json.loads(out.stdout).items()}


async def _ask(peer: Peer, rid: str, op: str, **params: Any) -> dict[str, Any]:
    return await peer.ask(request(rid, op, **params))


async def test_golden_key_sets_per_op(net: tuple[HubProc, Procs], ag2_fields: dict[str, set[str]]) -> None:
    hub, _procs = net
    f = ag2_fields
    a = await Peer.open(ag2_url(hub))
    b = await Peer.open(ag2_url(hub, "/ag2"))
    passport = lambda name: {"name": name, "auth": {"scheme": "none", "claim": {}}}  # noqa: E731

    def keys(record: dict[str, Any], cls: str) -> None:
        assert set(record) == f[cls], (cls, set(record) ^ f[cls])

    def channel_keys(meta: dict[str, Any]) -> None:
        keys(meta, "ChannelMetadata")
        keys(meta["manifest"], "ChannelManifest")
        keys(meta["manifest"]["participants"], "ParticipantSchema")
        for e in meta["manifest"]["expectations"]:
            keys(e, "Expectation")
        for p in meta["participants"]:
            keys(p, "Participant")

    reg = await _ask(a, "1", "register", passport=passport("gold-a"), resume={}, skill_md=None, rule=None)
    keys(reg, "ResponseFrame")
    keys(reg["result"], "Passport") or keys(reg["result"]["auth"], "AuthBlock")
    gid_a = reg["result"]["agent_id"]
    gid_b = (await _ask(b, "2", "register", passport=passport("gold-b")))["result"]["agent_id"]
    for op, params in [("get_agent", {"name_or_id": "gold-b"}), ("list_agents", {})]:
        result = (await _ask(a, "x", op, **params))["result"]
        for pp in result if isinstance(result, list) else [result]:
            keys(pp, "Passport")
    keys((await _ask(a, "3", "get_resume", agent_id=gid_b))["result"], "Resume")
    keys((await _ask(a, "4", "get_rule", agent_id=gid_b))["result"], "Rule")
    assert (await _ask(a, "5", "find_agent_id", name="gold-b"))["result"] == gid_b
    assert (await _ask(a, "6", "names_for", agent_ids=[gid_b]))["result"] == {gid_b: "gold-b"}
    created = await _ask(a, "7", "create_channel", creator_id=gid_a, manifest_type="conversation", participants=[gid_b])
    channel_keys(created["result"])
    cid = created["result"]["channel_id"]
    channel_keys((await _ask(a, "8", "get_channel", channel_id=cid))["result"])
    for meta in (await _ask(a, "9", "list_channels", agent_id=gid_a))["result"]:
        channel_keys(meta)
    env = {
        "channel_id": cid,
        "sender_id": gid_a,
        "audience": None,
        "event_type": "ag2.msg.text",
        "event_data": {"text": "hi"},
        "trace_id": "00-abc",
        "depth": 2,
    }
    posted = await _ask(a, "10", "post_envelope", envelope=env)
    eid = posted["result"]
    assert isinstance(eid, str) and eid
    while True:  # b gets the opened envelope and the text as notifies
        got = await b.recv()
        if got["kind"] == "notify":
            keys(got, "NotifyFrame")
            keys(got["envelope"], "Envelope")
            if got["envelope"]["envelope_id"] == eid:
                assert got["envelope"]["trace_id"] == "00-abc" and got["envelope"]["depth"] == 2
                assert got["envelope"]["event_data"] == {"text": "hi"} and got["recipient_id"] == gid_b
                break
    wal = (await _ask(b, "11", "read_wal", channel_id=cid, since=0, until=None))["result"]
    for e in wal:
        keys(e, "Envelope")
    assert [e["event_type"] for e in wal] == ["ag2.channel.opened", "ag2.msg.text"]
    reply = dict(env, sender_id=gid_b, event_data={"text": "yo"}, causation_id=eid)
    await _ask(b, "12", "post_envelope", envelope=reply)
    found = await _ask(a, "13", "find_envelope_by_causation", channel_id=cid, sender_id=gid_b, causation_id=eid)
    keys(found["result"], "Envelope")
    assert (await _ask(a, "14", "can_send", channel_id=cid, sender_id=gid_a, event_type=None))["result"] is True
    turns = (await _ask(a, "15", "pending_turns_for", agent_id=gid_a))["result"]
    assert [t["channel_id"] for t in turns] == [cid]  # b spoke last: a owes the next turn
    for turn in turns:
        keys(turn, "PendingTurn")
    channel_keys((await _ask(a, "16", "close_channel", channel_id=cid, reason="done"))["result"])
    # the ops whose result is None, and what they changed
    resume = {"claimed_capabilities": ["math"], "summary": "adds"}
    assert (await _ask(b, "17", "set_resume", agent_id=gid_b, resume=resume))["result"] is None
    got_resume = (await _ask(a, "18", "get_resume", agent_id=gid_b))["result"]
    keys(got_resume, "Resume")
    assert got_resume["claimed_capabilities"] == ["math"] and got_resume["last_updated"]
    assert (await _ask(b, "19", "set_skill", agent_id=gid_b, skill_md="# adds"))["result"] is None
    assert (await _ask(a, "20", "get_skill", agent_id=gid_b))["result"] == "# adds"
    listed = (await _ask(a, "21", "list_agents", capability="math"))["result"]
    assert [pp["name"] for pp in listed] == ["gold-b"]
    failure = {"channel_id": cid, "agent_id": gid_b, "envelope_id": eid, "error": "model down"}
    assert (await _ask(b, "22", "report_turn_failure", **failure))["result"] is None
    assert (await _ask(b, "23", "unregister", agent_id=gid_b))["result"] is None
    gone = await _ask(b, "24", "can_send", channel_id=cid, sender_id=gid_b, event_type=None)
    assert gone["error_code"] == "access_denied"  # b no longer holds gold-b on this connection
    # hello/welcome on a third socket, and a refused hello's error frame
    c = await Peer.open(ag2_url(hub))
    await c.ws.send(frame("hello", name="gold-a", auth_scheme="none", auth_claim={}, since_envelope_id=""))
    welcome = await c.recv()
    assert welcome["kind"] == "welcome"
    keys(welcome, "WelcomeFrame")
    await c.ws.send(frame("hello", name="nobody-here", since_envelope_id=None))
    replayed = []  # a never acked what it was sent: the new session of gold-a gets it again
    while (error := await c.recv())["kind"] == "notify":
        keys(error, "NotifyFrame")
        replayed.append(error["envelope"]["event_type"])
    assert "ag2.msg.text" in replayed and "ag2.channel.closed" in replayed, replayed
    assert error["kind"] == "error" and error["code"] == "not_found"
    keys(error, "ErrorFrame")
    for peer in (a, b, c):
        await peer.close()


async def test_bad_ag2_frames_get_ag2_errors_and_everyone_carries_on(net: tuple[HubProc, Procs]) -> None:
    hub, _procs = net
    a = await Peer.open(ag2_url(hub))
    b = await Peer.open(ag2_url(hub))
    gid_a = (await _ask(a, "1", "register", passport={"name": "bad-a"}))["result"]["agent_id"]
    gid_b = (await _ask(b, "2", "register", passport={"name": "bad-b"}))["result"]["agent_id"]
    unknown = await _ask(a, "3", "no_such_op")
    assert (
        unknown["ok"] is False
        and unknown["error_code"] == "protocol_error"
        and "no_such_op" in unknown["error_message"]
    )
    wrong = await _ask(a, "4", "create_channel", creator_id=gid_a, manifest_type="consulting", participants="bad-b")
    assert wrong["error_code"] == "protocol_error" and "participants" in wrong["error_message"]
    extra = await _ask(a, "5", "get_agent", name_or_id="bad-b", surprise=1)
    assert extra["error_code"] == "protocol_error"
    workflow = await _ask(a, "6", "create_channel", creator_id=gid_a, manifest_type="workflow", participants=[gid_b])
    assert workflow["error_code"] == "protocol_error" and "not supported" in workflow["error_message"]
    not_mine = await _ask(
        a,
        "7",
        "post_envelope",
        envelope={
            "channel_id": "x",
            "sender_id": gid_b,
            "audience": None,
            "event_type": "ag2.msg.text",
            "event_data": {},
        },
    )
    assert not_mine["error_code"] == "access_denied"
    # a receipt for someone else's envelope, and one for an envelope never delivered
    created = await _ask(a, "8", "create_channel", creator_id=gid_a, manifest_type="consulting", participants=[gid_b])
    cid = created["result"]["channel_id"]
    eid = (
        await _ask(
            a,
            "9",
            "post_envelope",
            envelope={
                "channel_id": cid,
                "sender_id": gid_a,
                "audience": [gid_b],
                "event_type": "ag2.msg.text",
                "event_data": {"text": "q"},
            },
        )
    )["result"]
    await a.ws.send(frame("receipt", envelope_id=eid, status="ack", recipient_id=gid_b, channel_id=cid, reason=""))
    err = await a.recv()
    assert err == {"kind": "error", "code": "access_denied", "message": err["message"], "envelope_id": eid}
    await a.ws.send(frame("receipt", envelope_id=eid, status="ack", recipient_id=gid_a, channel_id=cid, reason=""))
    err = await a.recv()
    assert err["code"] == "not_found" and err["envelope_id"] == eid
    await a.ws.send(b"{not json")
    assert (await a.recv())["code"] == "protocol_error"
    await a.ws.send(frame("receipt", envelope_id=1, status="maybe"))
    assert (await a.recv())["code"] == "protocol_error"
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    nested = await _ask(a, "12", "register", passport={"name": "deep"}, resume={"examples": deep})
    assert nested["error_code"] == "protocol_error" and "deeper" in nested["error_message"], nested
    huge = await _ask(a, "13", "register", passport={"name": "huge"}, rule={"n": 2**63 + 5})
    assert huge["error_code"] == "protocol_error", huge
    assert (await _ask(a, "14", "find_agent_id", name="deep"))["result"] is None  # nothing was registered
    # the same socket still works, b still gets its delivery and the turn rules hold (one question only)
    assert (await _ask(a, "10", "find_agent_id", name="bad-b"))["result"] == gid_b
    again = await _ask(
        a,
        "11",
        "post_envelope",
        envelope={
            "channel_id": cid,
            "sender_id": gid_a,
            "audience": None,
            "event_type": "ag2.msg.text",
            "event_data": {"text": "2nd"},
        },
    )
    assert again["error_code"] == "protocol_error" and "asked already" in again["error_message"]
    while True:
        got = await b.recv()
        if got["kind"] == "notify" and got["envelope"]["envelope_id"] == eid:
            break
    assert hub.health() is not None
    for peer in (a, b):
        await peer.close()
    assert orjson.loads(orjson.dumps(hub.health()))["status"] == "ok"


# --------------------------------------------------------------------------- the shipped scenario


def test_the_ag2_consult_scenario_passes_headless_and_its_run_checks(tmp_path: Path, ag2_python: Path) -> None:
    from agentnet.launcher.checker import check_run

    from .test_up_scenarios import assert_all_gone, run_pids, the_run_dir

    scenario = REPO / "scenarios" / "ag2-consult.yaml"
    up = subprocess.run(
        [sys.executable, "-m", "agentnet.cli", "up", str(scenario), "--headless"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
    assert "agentnet up ag2-consult: PASSED" in up.stdout
    assert "fault kill bob" in up.stdout and "q2 #3 bob: 42" in up.stdout
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    check = subprocess.run(
        [sys.executable, "-m", "agentnet.cli", "check", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    report = check_run(run_dir)
    assert report.ok and report.stats["dead"] == 0
    # alice (ag2) asked the native calc agent through ag2's delegate tool: a third channel, answered 132
    texts = [r[0] for r in _rows(run_dir / "hub.sqlite3", "SELECT body FROM envelopes WHERE sender = 'calc'")]
    assert any(b'"132"' in t for t in texts), texts
