"""`agentnet bench failover`: how long a standby hub takes to take over from the active one.

Each run starts two hubs on one PostgreSQL database (A active, B standby), an agent posting one
envelope at a time through a client given both URLs, and a receiver acking them. After a steady
second, A is SIGKILLed (`kill`) or SIGSTOPped (`stop`, woken once B leads: it must exit 3, having
committed nothing). Two figures per run, both on this host's monotonic clock:

* takeover: fault -> B active (lock taken, state loaded, serving): B's `/healthz` says when;
* client gap: fault -> the first post answered ok after it (includes the client's reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentnet.child import cancel_on_signals


class FailoverBenchError(Exception):
    pass


@dataclass
class FailoverConfig:
    runs: int = 5
    faults: tuple[str, ...] = ("kill", "stop")
    lease: float = 1.0
    store: str = "postgresql"  # a throwaway local server, or a postgresql:// URL
    ping: float = 0.5  # the clients' keepalive (a frozen hub is noticed after about 2x this)
    steady: float = 1.0  # seconds of posting before the fault


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None


class _Hub:
    def __init__(self, name: str, store: str, lease: float, workdir: Path) -> None:
        self.name = name
        self.port_file = workdir / f"{name}.port"
        self.log = workdir / f"{name}.log"
        argv = [sys.executable, "-m", "agentnet.cli", "hub", "--port", "0", "--port-file", str(self.port_file)]
        argv += ["--store", store, "--lease", str(lease), "--exit-with-parent"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.port = 0

    async def wait(self, status: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise FailoverBenchError(f"hub {self.name} exited with {self.proc.returncode}: {self.tail()}")
            if not self.port:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    self.port = int(self.port_file.read_text())
            got = await asyncio.to_thread(_health, self.port) if self.port else None
            if got is not None and got[0] == status:
                return got[1]
            if time.monotonic() > deadline:
                raise FailoverBenchError(f"hub {self.name} did not answer /healthz {status} within {timeout:g} s")
            await asyncio.sleep(0.005)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-600:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)


async def one_run(cfg: FailoverConfig, fault: str, store: str, workdir: Path) -> dict[str, Any]:
    from agentnet.client import AgentClient

    a = _Hub("hub-a", store, cfg.lease, workdir)
    b: _Hub | None = None
    rx = tx = None
    try:
        await a.wait(200)
        b = _Hub("hub-b", store, cfg.lease, workdir)
        await b.wait(503)
        urls = [a.url, b.url]
        keep = {"ping_interval": cfg.ping, "ping_timeout": 2 * cfg.ping, "request_timeout": 4 * cfg.ping + 5}

        async def ack(_d: Any) -> None:
            return None

        rx = AgentClient(urls, "bench-rx", handler=ack, **keep)
        tx = AgentClient(urls, "bench-tx", **keep)
        await rx.start()
        await tx.start()
        channel = await tx.open("conversation", ["bench-rx"], topic="failover bench")
        oks: list[float] = []
        stop = asyncio.Event()

        async def post() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await channel.send(data={"n": n}, type="note", idempotency_key=f"fo-{n}", timeout=60)
                oks.append(time.monotonic())

        poster = asyncio.create_task(post())
        await asyncio.sleep(cfg.steady)
        if poster.done():
            poster.result()
        fault_at = time.monotonic()
        os.killpg(a.proc.pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        info = await b.wait(200, timeout=60)
        took = info["took_over_at"] - fault_at
        deadline = time.monotonic() + 60
        while not any(t > fault_at for t in oks):
            if poster.done():
                poster.result()
            if time.monotonic() > deadline:
                raise FailoverBenchError("no post was answered within 60 s of the fault")
            await asyncio.sleep(0.005)
        gap = min(t for t in oks if t > fault_at) - fault_at
        woken_rc = None
        if fault == "stop":
            os.killpg(a.proc.pid, signal.SIGCONT)
            woken_rc = await asyncio.to_thread(a.proc.wait, 30)
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(poster, 30)
        return {
            "fault": fault,
            "takeover_ms": round(took * 1000, 1),
            "client_gap_ms": round(gap * 1000, 1),
            "woken_exit": woken_rc,
            "term": info.get("term"),
        }
    finally:
        for client in (tx, rx):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
        for hub in (a, b):
            if hub is not None:
                if hub.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(hub.proc.pid, signal.SIGCONT)
                        os.killpg(hub.proc.pid, signal.SIGTERM)
                    try:
                        await asyncio.to_thread(hub.proc.wait, 10)
                    except subprocess.TimeoutExpired:
                        hub.kill()
                hub.kill()


async def run_failover_bench(cfg: FailoverConfig, progress: Any = print) -> dict[str, Any]:
    from agentnet.bench.throughput import _fresh_pg_schema

    workdir = Path(tempfile.mkdtemp(prefix="agentnet-bench-failover-"))
    pg = None
    try:
        url = cfg.store
        if url == "postgresql":
            from agentnet.pglocal import LocalPostgres

            pg = await asyncio.to_thread(lambda: LocalPostgres().start())
            url = pg.url
        results = []
        for i in range(cfg.runs):
            for fault in cfg.faults:
                store = await asyncio.to_thread(_fresh_pg_schema, url)
                rundir = workdir / f"{fault}-{i + 1}"
                rundir.mkdir()
                r = await one_run(cfg, fault, store, rundir)
                progress(
                    f"run {i + 1}/{cfg.runs} {fault}: takeover {r['takeover_ms']:.0f} ms, "
                    f"client gap {r['client_gap_ms']:.0f} ms"
                )
                results.append(r)
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {}
    for fault in cfg.faults:
        rs = [r for r in results if r["fault"] == fault]
        summary[fault] = {
            "runs": len(rs),
            "takeover_ms_p50": statistics.median(r["takeover_ms"] for r in rs),
            "takeover_ms_max": max(r["takeover_ms"] for r in rs),
            "client_gap_ms_p50": statistics.median(r["client_gap_ms"] for r in rs),
            "client_gap_ms_max": max(r["client_gap_ms"] for r in rs),
            "woken_hub_exit_codes": sorted({r["woken_exit"] for r in rs if r["woken_exit"] is not None}),
        }
    return {
        "benchmark": "failover",
        "settings": {"runs": cfg.runs, "lease_s": cfg.lease, "client_ping_s": cfg.ping, "steady_s": cfg.steady},
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "runs": results,
        "summary": summary,
    }


def run_failover(cfg: FailoverConfig, *, as_json: bool = False, quiet: bool = False) -> int:
    def note(text: str) -> None:
        if not quiet:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    async def main() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        cancel_on_signals(task)
        return await run_failover_bench(cfg, note)

    try:
        result = asyncio.run(main())
    except FailoverBenchError as exc:
        print(f"agentnet bench failover: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("agentnet bench failover: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"agentnet bench failover: 2 hubs on one PostgreSQL, lease {cfg.lease:g} s, client ping {cfg.ping:g} s, "
        f"{cfg.runs} run(s) per fault, {result['machine']['cpus']} CPUs, load {result['machine']['loadavg_1m']}"
    )
    print(f"{'fault':<8}{'takeover p50 / max ms':>24}{'client gap p50 / max ms':>26}  woken hub")
    for fault, s in result["summary"].items():
        woken = "-" if fault == "kill" else f"exit {s['woken_hub_exit_codes']} (3 = stepped down)"
        print(
            f"{'SIGKILL' if fault == 'kill' else 'SIGSTOP':<8}"
            f"{s['takeover_ms_p50']:>13.0f} / {s['takeover_ms_max']:<8.0f}"
            f"{s['client_gap_ms_p50']:>15.0f} / {s['client_gap_ms_max']:<8.0f}  {woken}"
        )
    print(
        "takeover: fault -> the standby serving (lock taken, state loaded); client gap: fault -> the first post "
        "answered ok after it (one post in flight, through the SDK with both URLs)."
    )
    return 0
