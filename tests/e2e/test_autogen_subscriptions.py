"""Stored events reach a worker only once it holds the subscription they need, and once per worker.

An AutoGen worker drops an event it holds no local subscription for, and fans an event out to all
its agent types subscribed to the topic. So the gateway hands a type's stored events to a worker
only after the worker has subscribed that type to the topic (AutoGen's usual order is register,
then subscribe), and hands a copy stored for a second type of the same worker only if the worker
has not fanned the event out to that type already. Real autogen-ext 0.7.5 workers, in-hub gateway.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .autogen_peers import InHubGateway, require_autogen, start_worker
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
