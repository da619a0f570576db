"""Active/standby hubs on one PostgreSQL database, with real processes: a 10,000-envelope stream while
the active hub is SIGKILLed (first test) or SIGSTOPped and later woken (second test).

Both peers are given both hubs' URLs. Each run ends with `check_stream` (every post answered ok is
in the WAL exactly once with the seq it was told, seqs gapless, every envelope processed, first
deliveries in seq order, the ack floor at the head), plus: the standby took over, the receiver got
everything it had not acked at the fault, and (SIGSTOP) the woken hub committed nothing: every
envelope row records the leadership term that wrote it, and none after the freeze has the old term.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .procs import HubProc, Procs, Stream, check_stream, db_rows, health, read_jsonl, wait_until

pytestmark = pytest.mark.timeout(150)

LEASE = 1.0  # seconds: how long a frozen hub keeps the leadership


def pair(procs: Procs, pg_url: str) -> tuple[HubProc, HubProc]:
    extra = ["--lease", str(LEASE)]
    a = HubProc(procs, pg_url, extra=extra, label="hub-a").start()
    b = HubProc(procs, pg_url, extra=extra, label="hub-b").start(standby=True)
    assert a.health()["role"] == "active" and a.health()["term"] == 1
    return a, b


def stream_over(procs: Procs, a: HubProc, b: HubProc, evidence: Path, run: str) -> Stream:
    stream = Stream(procs, a, evidence, run=run, urls=f"{a.url},{b.url}", peer_args=["--ping", "0.5"])
    stream.start_receiver()
    stream.start_sender()
    return stream


def takeover(b: HubProc, since: float) -> float:
    """Wait until `b` is the active hub; seconds from `since` (both on this host's monotonic clock)."""
    info = wait_until("the standby to take over", lambda: (h := health(b.port)) and h.get("role") == "active" and h, 30)
    return info["took_over_at"] - since


def unacked_now(stream: Stream) -> set[int]:
    head = stream.head()
    floor = db_rows(
        stream.hub.db,
        "SELECT ack_floor FROM cursors WHERE recipient=? AND channel_id=?",
        (stream.receiver, stream.channel_id),
    )[0][0]
    return set(range(floor + 1, head + 1))


def finish(stream: Stream, b: HubProc) -> dict:
    """Wait for the stream to complete through `b`, stop it; `b`'s last /healthz."""
    stream.hub = b  # the active hub from now on (the store is the same database)
    stream.wait_sent()
    stream.wait_drained()
    assert len(stream.receivers) == 1 and stream.receiver_proc.alive()  # the SDK moved by itself
    last = b.health()
    stream.stop()
    return last


def test_active_hub_sigkilled_mid_stream(procs: Procs, evidence: Path, pg_url: str) -> None:
    a, b = pair(procs, pg_url)
    stream = stream_over(procs, a, b, evidence, "kill")
    stream.wait_processed(3_000)
    stream.pause_receiver()
    killed_at = time.monotonic()
    a.kill()  # kill -9 with posts in flight and the receiver owing acks
    unacked = unacked_now(stream)  # nothing commits until b has taken over
    stream.resume_receiver()
    took = takeover(b, killed_at)
    oks_at_kill = {op["envelope_id"]: op["seq"] for op in read_jsonl(stream.ops_path)}
    assert len(unacked) >= 1_000
    reads = finish(stream, b)["store_reads"]

    report = check_stream(stream)
    print(report, f"takeover {took * 1000:.0f} ms after SIGKILL; unacked at the kill: {len(unacked)}; reads {reads}")
    # the takeover's replay and the posts' idempotency lookups were read off the event loop
    assert reads["ahead"] > 0
    assert report.head == 10_001
    processed = {r["seq"] for r in read_jsonl(stream.processed_path)}
    assert unacked <= processed
    wal = dict(db_rows(pg_url, "SELECT envelope_id, seq FROM envelopes"))
    assert all(wal.get(eid) == seq for eid, seq in oks_at_kill.items())
    # after the crash everything the dead hub committed counts as possibly delivered: attempt >= 2
    replayed = [r for r in read_jsonl(stream.processed_path) if r["session"] > 1 and r["seq"] in unacked]
    assert replayed and all(r["attempt"] >= 2 for r in replayed)
    terms = dict(db_rows(pg_url, "SELECT term, count(*) FROM envelopes GROUP BY term"))
    assert set(terms) == {1, 2}


def test_active_hub_frozen_then_woken_commits_nothing(procs: Procs, evidence: Path, pg_url: str) -> None:
    a, b = pair(procs, pg_url)
    stream = stream_over(procs, a, b, evidence, "freeze")
    stream.wait_processed(3_000)
    stream.pause_receiver()
    a.proc.signal(signal.SIGSTOP)  # frozen: its sockets stay open, its database session goes quiet
    frozen_at = time.monotonic()
    head_at_freeze = stream.head()  # a stopped hub commits nothing more
    stream.resume_receiver()
    took = takeover(b, frozen_at)
    assert took >= LEASE * 0.8, "the standby took over before the frozen hub's lease ran out"
    posted = stream.posted()
    stream.wait_posted(posted + 2_000)  # the stream goes on through b
    a.proc.signal(signal.SIGCONT)
    assert a.proc.popen.wait(timeout=30) == 3, a.proc.log()  # it found its session gone and stepped down
    assert "lost the leadership" in a.proc.log()
    finish(stream, b)

    report = check_stream(stream)
    print(report, f"takeover {took * 1000:.0f} ms after SIGSTOP (lease {LEASE:g} s)")
    assert report.head == 10_001
    by_term = db_rows(
        pg_url, "SELECT term, min(seq), max(seq) FROM envelopes WHERE channel_id=? GROUP BY term", (stream.channel_id,)
    )
    spans = {term: (lo, hi) for term, lo, hi in by_term}
    assert set(spans) == {1, 2}
    assert spans[1][1] <= head_at_freeze < spans[2][0], f"the frozen hub committed after its freeze: {spans}"


def test_active_hub_losing_its_database_session_steps_down(procs: Procs, pg_url: str) -> None:
    """Loss of the database, as the active hub sees it: its writer session is ended from outside.
    It steps down (exit 3) and the standby takes over with the next term."""
    a, b = pair(procs, pg_url)
    rows = db_rows(
        pg_url,
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2",
    )
    assert len(rows) == 1, rows  # exactly one lock holder: the active hub's writer
    cut_at = time.monotonic()
    db_rows(pg_url, "SELECT pg_terminate_backend(?)", (rows[0][0],))
    assert a.proc.popen.wait(timeout=30) == 3, a.proc.log()
    took = takeover(b, cut_at)
    assert health(b.port)["term"] == 2
    print(f"takeover {took * 1000:.0f} ms after the active hub's session was ended")


def test_in_hub_autogen_gateway_follows_the_leadership(procs: Procs, pg_url: str, tmp_path: Path) -> None:
    """`agentnet hub --autogen` on a shared store: the gateway serves on the active hub only. The
    standby starts it when it takes the lead; the active hub that loses its database session stops
    its gateway and steps down (exit 3) like a hub without one."""
    import grpc

    from agentnet.gateway.autogen.protos import agent_worker_pb2, agent_worker_pb2_grpc

    def with_gateway(label: str) -> HubProc:
        port_file = tmp_path / f"{label}-autogen.port"
        extra = ["--lease", str(LEASE), "--autogen", "127.0.0.1:0", "--autogen-port-file", str(port_file)]
        return HubProc(procs, pg_url, extra=extra, label=label)

    def serving(hub: HubProc) -> int:
        port = int(wait_until(f"{hub.label}'s gateway port", lambda: _read(tmp_path / f"{hub.label}-autogen.port"), 30))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = agent_worker_pb2_grpc.AgentRpcStub(channel)
            request = agent_worker_pb2.GetSubscriptionsRequest()
            stub.GetSubscriptions(request, metadata=[("client-id", "probe")], timeout=10)
        return port

    a = with_gateway("hub-a").start()
    serving(a)
    b = with_gateway("hub-b").start(standby=True)
    assert not (tmp_path / "hub-b-autogen.port").exists()  # a standby has no core to serve a gateway from
    holder = db_rows(
        pg_url,
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2",
    )
    db_rows(pg_url, "SELECT pg_terminate_backend(?)", (holder[0][0],))
    assert a.proc.popen.wait(timeout=30) == 3, a.proc.log()
    takeover(b, time.monotonic())
    serving(b)
    assert b.terminate() == 0, b.proc.log()


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None
