"""Fixtures of the end-to-end tests: process bookkeeping that proves every child is gone, and the
receiver-kill run that the stream test and the observer test both read."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import HubProc, KillRun, Procs, Stream, read_jsonl, wait_until


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Processes started by one test; afterwards each is killed if needed and proven gone."""
    registry = Procs(tmp_path)
    try:
        yield registry
    finally:
        registry.close()


def _evidence_dir(prefix: str) -> Path:
    """Where the peers' logs go: tmpfs if the machine has one (fsync per delivery costs ~2.5 ms on
    this VM's disk, which would make the receiver the bottleneck of every run), else the tmp dir."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shm.stat().st_mode & 0o002 else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def _keep(evidence: Path, workdir: Path) -> None:
    """Move the peers' logs next to the test's other files (pytest keeps the last runs' tmp dirs)."""
    shutil.copytree(evidence, workdir / "evidence", dirs_exist_ok=True)
    shutil.rmtree(evidence, ignore_errors=True)


@pytest.fixture
def evidence(tmp_path: Path) -> Iterator[Path]:
    path = _evidence_dir("agentnet-e2e-")
    try:
        yield path
    finally:
        _keep(path, tmp_path)


KILL_AT = (3_000, 7_000)  # processed deliveries at which the receiver is SIGKILLed


@pytest.fixture(scope="session")
def receiver_kill_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillRun]:
    workdir = tmp_path_factory.mktemp("receiver-kill")
    evidence = _evidence_dir("agentnet-e2e-kill-")
    procs = Procs(workdir)
    try:
        hub = HubProc(procs, workdir / "hub.db").start()
        events_path = evidence / "observer.jsonl"
        ready = evidence / "observer.ready"
        observer = procs.peer(
            "observer",
            "observe",
            "--url",
            hub.url,
            "--name",
            "watcher",
            "--log",
            str(events_path),
            "--ready",
            str(ready),
        )
        wait_until("the observer's snapshot", ready.exists, 20)
        stream = Stream(procs, hub, evidence, run="kill")
        stream.start_receiver()
        stream.start_sender()
        for i, at in enumerate(KILL_AT):
            stream.wait_processed(at)
            if i:  # the second kill is sure to find a full window in flight and a backlog behind it
                stream.pause_receiver()
            victim = stream.receiver_proc
            assert victim.kill() == -9
            assert victim.gone()
            stream.start_receiver()
        stream.wait_sent()
        stream.wait_drained()
        stream.stop_receiver()
        # the observer has seen everything up to the receiver's last goodbye before it is stopped
        wait_until(
            "the observer to see the receiver leave",
            lambda: any(
                e.get("type") == "agent.disconnected" and e.get("name") == stream.receiver and e.get("code") == 1000
                for e in read_jsonl(events_path)[-50:]
            ),
            20,
        )
        assert observer.terminate() == 0, observer.log()
        assert hub.terminate() == 0, hub.proc.log()
        procs.close()
        yield KillRun(stream, read_jsonl(events_path), len(KILL_AT), [p.pid for p in stream.receivers])
    finally:
        procs.close()
        _keep(evidence, workdir)
