"""Stored events reach a worker only once it holds the subscription they need, and once per worker.

An AutoGen worker drops an event it holds no local subscription for, and fans an event out to all
its agent types subscribed to the topic. So the gateway hands a type's stored events to a worker
only after the worker has subscribed that type to the topic (AutoGen's usual order is register,
then subscribe), and hands a copy stored for a second type of the same worker only if the worker
has not fanned the event out to that type already. Real autogen-ext 0.7.5 workers, in-hub gateway.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from agentnet.client.connection import HubClient
from agentnet.gateway.autogen.state import identity_for

from .autogen_peers import AgWorker, InHubGateway, require_autogen, start_worker
from .procs import HubProc, Procs, wait_until

pytestmark = pytest.mark.timeout(120)


def test_a_worker_that_subscribes_after_registering_gets_the_backlog(procs: Procs, tmp_path: Path) -> None:
    require_autogen()
    gw = InHubGateway(HubProc(procs, tmp_path / "hub.db")).start()
    pub = start_worker(procs, "publisher", gw.address, ["pub"], [])
    s1 = start_worker(procs, "subscriber", gw.address, ["t0"], ["news"], "--subscribe-after", "0")
    assert pub.cmd(cmd="publish", topic="news", text="live", n=1)["ok"]
    wait_until("event 1, live", lambda: [e["n"] for e in s1.events("t0")] == [1])

    s1.kill()
    for n in (2, 3, 4):
        assert pub.cmd(cmd="publish", topic="news", text=f"while down {n}", n=n)["ok"]
    # registers t0, and subscribes it to "news" 0.3 s later: the backlog waits for that
    s2 = start_worker(procs, "subscriber-2", gw.address, ["t0"], ["news"], "--subscribe-after", "0.3")
    wait_until("the backlog, after the subscription", lambda: [e["n"] for e in s2.events("t0")] == [2, 3, 4])

    # A worker that never subscribes t0 to "news": the stored event is dropped after the gateway's
    # wait (logged), and the type's RPCs, held behind it meanwhile, are served.
    s2.kill()
    assert pub.cmd(cmd="publish", topic="news", text="for nobody", n=5)["ok"]
    s3 = start_worker(procs, "no-subscriptions", gw.address, ["t0"], [])
    started = time.monotonic()
    answer = pub.cmd(cmd="rpc", target="t0", text="still there?", timeout=15)
    assert answer["ok"] and answer["reply"] == "t0: still there?", answer
    assert time.monotonic() - started < 10
    assert s3.events() == []
    assert gw.proc is not None
    wait_until("the drop in the hub's log", lambda: "has not subscribed it to topic 'news'" in gw.proc.log())

    # Its wait for "news" is over; a topic it subscribes to at run time gets its events at once.
    assert s3.cmd(cmd="subscribe", type="t0", topic="sports")["ok"]
    assert pub.cmd(cmd="publish", topic="sports", text="goal", n=6)["ok"]
    wait_until("the run-time subscription's event", lambda: [e["n"] for e in s3.events("t0")] == [6])


def test_an_event_stored_for_two_types_reaches_a_worker_that_serves_both(procs: Procs, tmp_path: Path) -> None:
    """beta's copy went to an old worker; gamma's waited. A new worker serving both gets gamma's
    (and fans it out to beta again: at least once, never lost)."""
    require_autogen()
    gw = InHubGateway(HubProc(procs, tmp_path / "hub.db")).start()
    pub = start_worker(procs, "publisher", gw.address, ["pub"], [])
    w_beta = start_worker(procs, "w-beta", gw.address, ["beta"], ["news"])
    w_gamma = start_worker(procs, "w-gamma", gw.address, ["gamma"], ["news"])
    w_gamma.kill()
    assert pub.cmd(cmd="publish", topic="news", text="five", n=5)["ok"]
    wait_until("beta got event 5", lambda: [e["n"] for e in w_beta.events("beta")] == [5])
    w_beta.kill()

    both = start_worker(procs, "w-both", gw.address, ["beta", "gamma"], ["news"])
    wait_until("gamma got event 5", lambda: [e["n"] for e in both.events("gamma")] == [5])
    # and a live event reaches each of the worker's types once
    assert pub.cmd(cmd="publish", topic="news", text="six", n=6)["ok"]
    wait_until(
        "event 6 once per type", lambda: sorted(e["type"] for e in both.events() if e["n"] == 6) == ["beta", "gamma"]
    )


def inboxes_settled(hub: HubProc, *agent_types: str) -> bool:
    """Everything stored for these types is settled: handed to their worker's stream, or acked."""

    async def look() -> bool:
        async with HubClient(hub.url, name="watcher", role="observer") as watcher:
            snapshot = await watcher.request("observe")
        names = {identity_for(t) for t in agent_types}
        connected = {a["name"] for a in snapshot["agents"] if a["connected"]}
        mine = [c for c in snapshot["cursors"] if c["recipient"] in names]
        return names <= connected and bool(mine) and all(c["lag"] == 0 and c["inflight"] == 0 for c in mine)

    return asyncio.run(look())


def handled_everything_before(worker: AgWorker, via: AgWorker, target: str) -> None:
    """An RPC round trip to `target` on `worker` after its stream carried the events: the worker
    handles its stream's messages in order, so their handlers have run when the answer is back."""
    answer = via.cmd(cmd="rpc", target=target, text="sync", timeout=10)
    assert answer.get("ok"), answer


@pytest.mark.parametrize("subscribe_after", ["0", "0.5"])
def test_a_worker_serving_two_types_gets_a_backlog_event_once_per_type(
    procs: Procs, tmp_path: Path, subscribe_after: str
) -> None:
    """Registered, then subscribed (AutoGen's usual order), at once or 0.5 s later: the event stored
    for beta and for gamma reaches the worker once, and the worker fans it out to both."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db")
    gw = InHubGateway(hub).start()
    pub = start_worker(procs, "publisher", gw.address, ["pub"], [])
    start_worker(procs, "first", gw.address, ["beta", "gamma"], ["news"]).kill()
    assert pub.cmd(cmd="publish", topic="news", text="seven", n=7)["ok"]
    both = start_worker(procs, "both", gw.address, ["beta", "gamma"], ["news"], "--subscribe-after", subscribe_after)
    wait_until("both inboxes settled", lambda: inboxes_settled(hub, "beta", "gamma"))
    handled_everything_before(both, pub, "beta")
    assert sorted((e["type"], e["n"]) for e in both.events()) == [("beta", 7), ("gamma", 7)]


def test_a_copy_stored_for_a_second_type_is_acked_only_once_the_first_is_on_the_stream(
    procs: Procs, tmp_path: Path
) -> None:
    """A worker serving beta and gamma stops reading (SIGSTOP) while events pile up, and is killed.
    What its stream never carried stays unacked for both types, so each type's next worker gets it:
    gamma's copies were not acked on the strength of beta's copies that never left the gateway."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db")
    gw = InHubGateway(hub).start()
    pub = start_worker(procs, "publisher", gw.address, ["pub"], [])
    both = start_worker(procs, "both", gw.address, ["beta", "gamma"], ["news"])
    both.proc.signal(signal.SIGSTOP)
    for n in range(1, 151):  # 150 x 100 kB: more than the stream and its socket take
        assert pub.cmd(cmd="publish", topic="news", text="y" * 100_000, n=n)["ok"]
    both.kill()
    beta = start_worker(procs, "beta-only", gw.address, ["beta"], ["news"])
    gamma = start_worker(procs, "gamma-only", gw.address, ["gamma"], ["news"])
    wait_until("both inboxes settled", lambda: inboxes_settled(hub, "beta", "gamma"), timeout=60)
    handled_everything_before(beta, pub, "beta")
    handled_everything_before(gamma, pub, "gamma")
    got_beta = {e["n"] for e in beta.events("beta")}
    got_gamma = {e["n"] for e in gamma.events("gamma")}
    assert got_beta, "the stopped worker's stream took everything: the test proves nothing"
    assert got_beta == got_gamma, (sorted(got_beta), sorted(got_gamma))


def test_events_of_many_unwanted_topics_hold_a_types_rpcs_once_not_once_per_topic(procs: Procs, tmp_path: Path) -> None:
    """An old worker subscribed svc to eight topics; one event of each waits. The new worker wants
    none of them: they are dropped after one wait of 3 s (not 3 s each), and an RPC to svc behind
    them is answered within its caller's 8 s deadline."""
    require_autogen()
    gw = InHubGateway(HubProc(procs, tmp_path / "hub.db")).start()
    pub = start_worker(procs, "publisher", gw.address, ["pub"], [], "--deadline", "8")
    topics = [f"t{i}" for i in range(8)]
    start_worker(procs, "old", gw.address, ["svc"], topics).kill()
    for n, topic in enumerate(topics):
        assert pub.cmd(cmd="publish", topic=topic, text="unwanted", n=n)["ok"]
    new = start_worker(procs, "new", gw.address, ["svc"], ["other"])
    answer = pub.cmd(cmd="rpc", target="svc", text="still there?", timeout=15)
    assert answer.get("reply") == "svc: still there?", answer
    assert new.events() == []
