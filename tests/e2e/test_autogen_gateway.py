"""The AutoGen gateway with real autogen-ext 0.7.5 workers (subprocesses of `.venv-autogen`).

One hub (SQLite), one observer and one gateway carry a whole story, so the workers' slow start
(AutoGen's imports take about a second each) is paid as few times as possible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import psutil
import pytest
from google.protobuf import descriptor_pb2

from agentnet.gateway.autogen.protos import agent_worker_pb2, agent_worker_pb2_grpc, cloudevent_pb2
from agentnet.launcher.checker import check_run

from .autogen_peers import AUTOGEN_PYTHON, GatewayProc, InHubGateway, require_autogen, start_worker
from .procs import REPO, HubProc, Procs, read_jsonl, wait_until
from .test_up_scenarios import assert_all_gone, run_pids, the_run_dir

DUMP_AUTOGEN_DESCRIPTORS = """
import json
from autogen_ext.runtimes.grpc.protos import agent_worker_pb2, cloudevent_pb2
from google.protobuf import descriptor_pb2
out = {}
for m in (agent_worker_pb2, cloudevent_pb2):
    fd = descriptor_pb2.FileDescriptorProto()
    m.DESCRIPTOR.CopyToProto(fd)
    out[fd.name] = fd.SerializeToString().hex()
print(json.dumps(out))
"""


def test_our_proto_is_autogen_0_7_5s() -> None:
    """Our .proto (and the code generated from it) has exactly the messages, field numbers and
    service of the descriptors inside the installed autogen-ext 0.7.5 wheel."""
    require_autogen()
    raw = subprocess.run(
        [str(AUTOGEN_PYTHON), "-c", DUMP_AUTOGEN_DESCRIPTORS], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    theirs = json.loads(raw)
    for module in (agent_worker_pb2, cloudevent_pb2):
        ours = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(ours)
        expected = descriptor_pb2.FileDescriptorProto.FromString(bytes.fromhex(theirs[ours.name]))
        assert ours == expected, f"{ours.name} differs from autogen-ext 0.7.5's"


def _appends(path: Path, env_type: str) -> list[dict]:
    return [
        e["envelope"] for e in read_jsonl(path) if e.get("type") == "wal.append" and e["envelope"]["type"] == env_type
    ]


@pytest.mark.parametrize("shape", ["sidecar", "in-hub"])
def test_workers_through_the_gateway(procs: Procs, tmp_path: Path, shape: str) -> None:
    """The same story through `agentnet gateway autogen` (a process of its own, restarted alone) and
    through `agentnet hub --autogen` (inside the hub: restarting the gateway restarts the hub)."""
    require_autogen()
    hub = HubProc(procs, tmp_path / "hub.db")
    gw: GatewayProc | InHubGateway
    if shape == "in-hub":
        gw = InHubGateway(hub).start()
    else:
        hub.start()
    observed = tmp_path / "observer.jsonl"
    ready = tmp_path / "observer.ready"
    procs.peer(
        "observer", "observe", "--url", hub.url, "--name", "watcher", "--log", str(observed), "--ready", str(ready)
    )
    wait_until("the observer", ready.exists)
    if shape == "sidecar":
        gw = GatewayProc(procs, hub.url).start()
    assert gw.proc is not None and "autogen gateway listening on" in gw.proc.log()

    # Worker A serves alpha; worker B serves beta and gamma; all three subscribe to topic "news".
    a = start_worker(procs, "worker-a", gw.address, ["alpha"], ["news"], "--deadline", "1.5")
    b = start_worker(procs, "worker-b", gw.address, ["beta", "gamma"], ["news"])

    # An RPC round trip.
    assert a.cmd(cmd="rpc", target="beta", text="hi")["reply"] == "beta: hi"

    # A publish reaches each subscribed type once: worker B gets one copy and fans out to beta and gamma.
    assert a.cmd(cmd="publish", topic="news", text="first", n=1)["ok"]
    wait_until("beta, gamma and alpha got event 1", lambda: len(b.events()) == 2 and len(a.events()) == 1)

    # An RPC to a type nobody ever registered fails at once.
    answer = a.cmd(cmd="rpc", target="nobody", text="hi", timeout=10)
    assert not answer["ok"] and answer["ms"] < 1000, answer  # measured by the caller, around send_message
    assert "'nobody' is not registered" in answer["error"]

    # A payload over the hub's size limit (256 KiB of data) is an error, not a hang.
    answer = a.cmd(cmd="rpc", target="beta", text="x" * 300_000, timeout=20)
    assert not answer["ok"] and "too_large" in answer["error"], answer

    # The subscriber's worker is SIGKILLed; three events are published while it is down, and an RPC
    # to its type fails after the caller's deadline (1.5 s, asked for by worker A).
    b.kill()
    # ... which the observer is told as such (not as a clean close, `bye`)
    wait_until(
        "beta's identity gone with a broken stream",
        lambda: any(
            e.get("type") == "agent.disconnected" and e["reason"] == "its worker's gRPC stream broke"
            for e in read_jsonl(observed)
        ),
    )
    for n in (2, 3, 4):
        assert a.cmd(cmd="publish", topic="news", text=f"while down {n}", n=n)["ok"]
    answer = a.cmd(cmd="rpc", target="beta", text="anyone?", timeout=15)
    assert not answer["ok"] and "within 1.5 s" in answer["error"], answer
    assert 1400 <= answer["ms"] < 10_000, answer

    # A new worker registers the types and gets all three, once per type.
    b2 = start_worker(procs, "worker-b2", gw.address, ["beta", "gamma"], ["news"])
    for agent_type in ("beta", "gamma"):
        wait_until(f"{agent_type}'s backlog", lambda t=agent_type: sorted(e["n"] for e in b2.events(t)) == [2, 3, 4])
    assert b2.cmd(cmd="rpc", target="alpha", text="back")["reply"] == "alpha: back"
    # The expired request was not handed to worker B2: acked unhandled, and observers are told why.
    expired = "expired: its caller's deadline passed before a worker took it"
    wait_until(
        "the expired request's ack, with its reason",
        lambda: [e["reason"] for e in read_jsonl(observed) if e.get("type") == "ack" and e.get("reason")] == [expired],
    )

    # The gateway restarts: subscriptions and backlog survive it. Events 5 and 6 wait for beta and
    # gamma while worker B2 is down; the gateway is killed; after the restart a new worker A2
    # publishes 7 before anyone has re-added a subscription; a new worker B3 gets 5, 6 and 7.
    b2.kill()
    for n in (5, 6):
        assert a.cmd(cmd="publish", topic="news", text=f"before restart {n}", n=n)["ok"]
    wait_until("events 5 and 6 stored", lambda: len(_appends(observed, "ag.event")) == 3 * 6)
    gw.proc.kill()
    a.kill()
    gw.start()
    if shape == "in-hub":  # the observer reconnects to the restarted hub (a fresh snapshot) before we go on
        wait_until("the observer back", lambda: sum(e.get("kind") == "snapshot" for e in read_jsonl(observed)) >= 2)
    # What the restarted gateway serves, asked with our own generated stub: the stored subscriptions
    # (before any worker re-added one), and AutoGen's error codes.
    with grpc.insecure_channel(gw.address) as channel:
        stub = agent_worker_pb2_grpc.AgentRpcStub(channel)
        subs = stub.GetSubscriptions(agent_worker_pb2.GetSubscriptionsRequest(), metadata=[("client-id", "probe")])
        kinds = {(s.WhichOneof("subscription"), s.typeSubscription.agent_type or s.typePrefixSubscription.agent_type)
                 for s in subs.subscriptions}  # fmt: skip
        assert {("typeSubscription", t) for t in ("alpha", "beta", "gamma")} <= kinds, kinds
        assert {("typePrefixSubscription", t) for t in ("alpha", "beta", "gamma")} <= kinds, kinds
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetSubscriptions(agent_worker_pb2.GetSubscriptionsRequest())
        assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as control:
            next(iter(stub.OpenControlChannel(iter([]), metadata=[("client-id", "probe")])))
        assert control.value.code() == grpc.StatusCode.UNIMPLEMENTED
    a2 = start_worker(procs, "worker-a2", gw.address, [], [])
    assert a2.cmd(cmd="publish", topic="news", text="after restart", n=7)["ok"]
    b3 = start_worker(procs, "worker-b3", gw.address, ["beta", "gamma"], ["news"])
    for agent_type in ("beta", "gamma"):
        wait_until(
            f"{agent_type}'s backlog after the restart",
            lambda t=agent_type: sorted(e["n"] for e in b3.events(t)) == [5, 6, 7],
        )
    assert a2.cmd(cmd="rpc", target="gamma", text="hello again")["reply"] == "gamma: hello again"

    # The observer saw every request, response and event as envelopes in the WAL. Requests: the
    # round trip, the one while beta was down (never handed over: it expired), B2's and A2's.
    # A response is handed to its caller before it is stored: wait for the last one.
    def answered() -> int:
        causes = {r["causation_id"] for r in _appends(observed, "ag.rpc.response")}
        return sum(r["envelope_id"] in causes for r in _appends(observed, "ag.rpc.request"))

    wait_until("three stored responses", lambda: answered() == 3)
    requests = _appends(observed, "ag.rpc.request")
    assert len(requests) == 4, [r["data"]["text"] for r in requests]
    events = _appends(observed, "ag.event")
    published = sorted({(e["data"]["event_id"], tuple(e["data"]["recipients"])) for e in events})
    assert len(published) == 7 and all(r == ("alpha", "beta", "gamma") for _, r in published), published
    assert any(e["data"]["text"].startswith("News ") and "first" in e["data"]["text"] for e in events)
    identities = {e["name"]: e for e in read_jsonl(observed) if e.get("type") == "agent.registered"}
    assert identities["ag-beta"]["passport"]["meta"]["via"] == "autogen"


GATEWAY_KEY = "tok-autogen-gateway-0123456789"


def test_the_sidecar_on_a_hub_with_keys(procs: Procs, tmp_path: Path) -> None:
    """`agentnet gateway autogen --token KEY` on a hub with API keys: one key, bound to the gateway's
    identities (`names:` with `prefix*` patterns), covers them all; a wrong key is one clear line."""
    require_autogen()
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "tokens:\n"
        '  - names: [autogen-gw, autogen-registry, "ag-*", "agw-*"]\n'
        "    role: agent\n"
        f"    token: {GATEWAY_KEY}\n"
    )
    hub = HubProc(procs, tmp_path / "hub.db", ["--auth-file", str(keys)]).start()
    for name, token in (("wrong", "tok-not-the-gateway-0123456789"), ("none", None)):
        args = [sys.executable, "-m", "agentnet.cli", "gateway", "autogen", "--hub", hub.url, "--port", "0"]
        refused = procs.spawn(f"gateway-{name}", [*args, *(["--token", token] if token else [])])
        assert refused.popen.wait(timeout=30) == 1
        lines = refused.log().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("agentnet gateway autogen: error: hub ws://"), lines
        assert ("refused the API key" if token else "requires an API key") in lines[0], lines
        assert token is None or token not in lines[0]
    gw = GatewayProc(procs, hub.url, ["--token", GATEWAY_KEY]).start()
    responder = start_worker(procs, "responder", gw.address, ["echo"], [])
    caller = start_worker(procs, "caller", gw.address, [], [])
    assert caller.cmd(cmd="rpc", target="echo", text="with a key")["reply"] == "echo: with a key"
    assert responder.proc.alive() and gw.proc is not None and "Traceback" not in gw.proc.log()


def test_the_autogen_rpc_scenario_headless_and_checked(tmp_path: Path) -> None:
    """`agentnet up scenarios/autogen-rpc.yaml --headless`: the gateway inside the hub, worker-b killed
    and started again; what worker-a published while it was down reaches the new worker-b."""
    require_autogen()
    result = subprocess.run(
        [sys.executable, "-m", "agentnet.cli", "up", str(REPO / "scenarios" / "autogen-rpc.yaml"), "--headless"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentnet up autogen-rpc: PASSED" in result.stdout
    assert "check: delivery invariants hold" in result.stdout
    run_dir = the_run_dir(tmp_path)
    assert_all_gone(run_pids(run_dir))
    assert check_run(run_dir).ok
    caller = [
        json.loads(line) for line in (run_dir / "logs" / "worker-a.log").read_text().splitlines() if line[:1] == "{"
    ]
    while_down = {r["round"] for r in caller if r.get("rpc") == "error"}
    assert while_down, "no RPC failed: the kill fault did not take worker-b down while worker-a ran"
    second_life = (run_dir / "logs" / "worker-b.log").read_text().split("launcher: starting worker-b")[-1]
    received = {json.loads(line)["n"] for line in second_life.splitlines() if line.startswith('{"event"')}
    assert while_down <= received, (while_down, received)


def test_bench_autogen_reports_both_hosts_and_leaves_nothing(tmp_path: Path) -> None:
    """`agentnet bench autogen`, tiny: the plumbing (speed is measured by the bench, never asserted)."""
    require_autogen()
    args = ["bench", "autogen", "--python", str(AUTOGEN_PYTHON), "--count", "30", "--warmup", "5", "--in-flight", "4"]
    args += ["--store", "memory", "--json", "--quiet", "--dir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "agentnet.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    for host in ("autogen", "agentnet"):
        for label in ("sequential", "4 in flight"):
            row = report["hosts"][host][label]
            assert row["rps"] > 0 and row["errors"] == 0 and row["p99_ms"] >= row["p50_ms"] > 0, (host, label, row)
    assert set(report["ratio_vs_autogen"]["agentnet"]) == {"sequential", "4 in flight"}
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, leftovers
