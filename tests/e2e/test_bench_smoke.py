"""`agentnet bench`: a tiny throughput run reports every field and leaves no process behind.

Speed is measured by the benchmark, never asserted here: these tests only check the plumbing
(three processes, the report, the hub's own confirmation, clean-up on success and on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil

from tests.waiting import WaitTimeout, wait_until

AGENTNET = [sys.executable, "-m", "agentnet.cli"]
TIMEOUT = 120


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after waiting up to `timeout` s for all of them to go."""
    with contextlib.suppress(WaitTimeout):
        wait_until("the processes to go", lambda: not any(_alive(pid) for pid in pids), timeout)
    return [pid for pid in pids if _alive(pid)]


def _envelopes_stored(workdir: Path) -> int:
    """Envelopes in the bench hub's SQLite store so far (read-only beside the running hub)."""
    for db in workdir.rglob("bench.db"):
        with contextlib.suppress(sqlite3.Error):
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                return con.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
            finally:
                con.close()
    return 0


def test_tiny_memory_run_reports_every_field_and_leaves_no_process(tmp_path: Path) -> None:
    workdir = tmp_path / "bench"
    done = subprocess.run(
        [
            *AGENTNET,
            *("bench", "throughput", "--store", "memory", "--count", "300", "--warmup", "50"),
            *("--idle-count", "40", "--json", "--dir", str(workdir)),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["store"] == "memory"
    assert [r["mode"] for r in result["runs"]] == ["pipelined", "serial"]
    pipelined, serial = result["runs"]
    assert (pipelined["count"], pipelined["in_flight"]) == (300, 64)
    assert (serial["count"], serial["in_flight"]) == (40, 1)
    for run in result["runs"]:
        assert run["acked_per_s"] > 0
        for key in ("post_ok_ms", "delivery_ms"):
            assert set(run[key]) >= {"p50", "p99"}
            assert 0 <= run[key]["p50"] <= run[key]["p99"]
        assert run["hub_cpu_us_per_env"] >= 0
        assert run["hub_rss_mb"]["peak"] > 0
        assert run["load_cpu_us_per_env"] >= 0
        assert run["hub_confirms_all_acked"] is True  # the hub's own cursor reached the head
        assert set(run["pids"]) == {"hub", "receiver", "sender"}
    assert set(result["summary"]) == {"pipelined", "serial"}
    assert result["summary"]["pipelined"]["acked_per_s"] == pipelined["acked_per_s"]

    pids = [pid for run in result["runs"] for pid in run["pids"].values()]
    assert _wait_gone(pids) == []
    assert _processes_mentioning(str(workdir)) == []


def test_table_output_names_the_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *AGENTNET,
            *("bench", "throughput", "--count", "200", "--warmup", "0", "--idle-count", "0"),
            *("--dir", str(tmp_path / "bench")),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    for label in ("acked", "post→ok", "post→delivery", "p50 / p99", "hub CPU", "µs/env", "hub RSS", "64 in flight"):
        assert label in done.stdout, label
    assert "confirms every envelope acked" in done.stdout
    assert "measuring 200 envelopes" in done.stderr  # progress goes to stderr


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    workdir = tmp_path / "bench"
    bench = subprocess.Popen(
        [
            *AGENTNET,
            *("bench", "throughput", "--store", "sqlite", "--count", "5000000", "--warmup", "0"),
            *("--dir", str(workdir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as a background job of a script starts it: asyncio.run alone would then never see Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:

        def three_children() -> list[int]:  # hub, receiver, sender
            assert bench.poll() is None, bench.stderr.read() if bench.stderr else ""
            try:
                children = [c.pid for c in psutil.Process(bench.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                return []
            return children if len(children) >= 3 else []

        children = wait_until("the bench to start its three processes", three_children, 60)
        wait_until("the measured phase to store envelopes", lambda: _envelopes_stored(workdir) >= 200, 60)
        bench.send_signal(signal.SIGINT)
        try:
            _, err = bench.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            states = {c.pid: c.status() for c in psutil.Process(bench.pid).children(recursive=True)}
            bench.send_signal(signal.SIGUSR1)  # its threads' stacks, to say where it hangs
            try:
                _, err = bench.communicate(timeout=3)
            except subprocess.TimeoutExpired as exc:
                err = (exc.stderr or b"").decode(errors="replace")
            raise AssertionError(f"no exit 60 s after SIGINT; children {states}; stderr:\n{err[-6000:]}") from None
        assert bench.returncode == 130, err
        assert "interrupted" in err
        assert _wait_gone(children) == []
        assert _processes_mentioning(str(workdir)) == []
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()


def test_tui_benchmark_runs_or_says_it_is_missing() -> None:
    done = subprocess.run(
        [*AGENTNET, "bench", "tui", "--events", "2000"], capture_output=True, text=True, timeout=TIMEOUT
    )
    if importlib.util.find_spec("agentnet.tui.bench") is None:
        assert done.returncode == 1
        assert "agentnet.tui.bench" in done.stderr and "not part of this build" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "agentnet bench tui" in done.stdout
