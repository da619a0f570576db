"""`agentnet bench throughput`: one sender and one receiver, each in its own process, through a real hub.

Per run: a fresh hub (`agentnet hub --port 0`, memory or SQLite in a temporary directory), a
receiver and a sender (`python -m agentnet.bench.peers`), all on 127.0.0.1, each in its own
process group. The sender keeps `--in-flight` posts outstanding on its one connection; the
receiver acks every delivery. After a warm-up the hub's CPU counters are read, the measured
phase runs, and they are read again when the receiver has acked the last envelope; an observer
then checks that the hub's cursor agrees (every envelope acked).

Reported per run: acked envelopes/s (first measured post -> last ack, on the one monotonic clock
of the machine), post->ok and post->delivery latency percentiles, hub CPU per envelope, hub
cores used, hub RSS, and the CPU the two load processes spent (they share the cores with the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from agentnet.child import cancel_on_signals

# The figures the issue asks us to beat (docs/benchmarks.md, shared reference peer-numbers.md).
TARGETS = {"memory": 5_000, "sqlite": 3_000}
AG2_ACKED_PER_S = {"memory": 1_656, "sqlite": 250}

RX_NAME, TX_NAME = "bench-rx", "bench-tx"


class BenchError(Exception):
    """The benchmark could not complete; the message says which process failed and why."""


def is_postgres(store: str) -> bool:
    return store == "postgresql" or store.startswith(("postgresql://", "postgres://"))


@dataclass
class BenchConfig:
    store: str = "memory"  # memory | sqlite | postgresql (a local throwaway server) | postgresql://URL
    count: int = 20_000
    in_flight: int = 64
    size: int = 200
    warmup: int = 1_000
    idle_count: int = 1_000  # envelopes of the serial (--in-flight 1) pass; 0 skips it
    runs: int = 1
    synchronous: str = "FULL"
    dir: Path | None = None  # where the SQLite file and the logs go (default: a fresh temp dir)
    stall_timeout: float = 30.0  # no progress for this long = the run failed
    compare: bool = True  # with a postgresql store, interleave sqlite runs in the same invocation


# --------------------------------------------------------------------------- progress


class Progress:
    """Progress on stderr: a live bar on a terminal, plain lines otherwise (or nothing if quiet)."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]bench:[/] {text}", highlight=False)

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._t0 = label, total, time.monotonic()
        if self.live:
            from rich import progress as rp

            self._bar = rp.Progress(
                rp.TextColumn("[bold]{task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[rate]}"),
                rp.TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="")
        else:
            self.note(f"{label}: measuring {total:,} envelopes")

    def update(self, done: int) -> None:
        elapsed = max(1e-9, time.monotonic() - self._t0)
        rate = f"{done / elapsed:,.0f} acked/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=rate)
        elif not self.quiet and time.monotonic() - self._last_line >= 2.0:
            self._last_line = time.monotonic()
            self.note(f"  {done:,}/{self._total:,} acked ({rate})")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --------------------------------------------------------------------------- processes


@dataclass(eq=False)
class Child:
    """A child process in its own process group; its stdout is read as JSON lines (peers)."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    reader: asyncio.Task | None = None
    ps: psutil.Process | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        try:
            assert self.ps is not None
            t = self.ps.cpu_times()
            return t.user + t.system
        except (psutil.Error, AssertionError):
            return float("nan")

    def cpu_system(self) -> float:
        try:
            assert self.ps is not None
            return self.ps.cpu_times().system
        except (psutil.Error, AssertionError):
            return float("nan")

    def rss_mb(self) -> float | None:
        try:
            assert self.ps is not None
            return round(self.ps.memory_info().rss / 2**20, 1)
        except (psutil.Error, AssertionError):
            return None

    def peak_rss_mb(self) -> float | None:
        """VmHWM: the high-water mark of the resident set over the process's life (Linux)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def signal_group(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


async def _spawn(name: str, argv: list[str], log: Path, *, pipes: bool) -> Child:
    log_file = open(log, "ab")  # noqa: SIM115 - handed to the child; closed right after spawning
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else log_file,
            stderr=log_file,
            start_new_session=True,  # its own process group: Ctrl-C here never reaches it; we stop it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log_file.close()
    child = Child(name, proc, log)
    with contextlib.suppress(psutil.Error):
        child.ps = psutil.Process(proc.pid)
    return child


async def _read_events(child: Child, queue: asyncio.Queue) -> None:
    assert child.proc.stdout is not None
    while True:
        line = await child.proc.stdout.readline()
        if not line:
            break
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            await queue.put((child.name, event))
    rc = await child.proc.wait()
    await queue.put((child.name, {"event": "exit", "rc": rc}))


async def _stop_all(children: list[Child], hub: Child | None) -> None:
    """Peers first (end of stdin = leave cleanly), then the hub (SIGTERM = graceful); kill stragglers."""
    for child in children:
        if child.proc.stdin is not None and not child.proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                child.proc.stdin.close()
    await _wait_or_kill(children, 5.0)
    if hub is not None:
        hub.signal_group(signal.SIGTERM)
        await _wait_or_kill([hub], 10.0)
    for child in [*children, *([hub] if hub else [])]:
        if child.reader is not None:
            child.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await child.reader


async def _wait_or_kill(children: list[Child], timeout: float) -> None:
    running = [c for c in children if c.proc.returncode is None]
    if not running:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(c.proc.wait() for c in running))
    for c in running:
        if c.proc.returncode is None:
            c.signal_group(signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3.0):
            await asyncio.gather(*(c.proc.wait() for c in running))
    for c in running:
        if c.proc.returncode is None:
            c.signal_group(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await c.proc.wait()


# --------------------------------------------------------------------------- one run


@dataclass
class RunPlan:
    mode: str  # "pipelined" | "serial"
    in_flight: int
    count: int
    warmup: int
    results: dict[str, Any] = field(default_factory=dict)
    store: str = ""  # memory | sqlite | a postgresql:// URL (default: the config's store)
    label: str = ""  # the store as reported: memory | sqlite | postgresql


class Run:
    def __init__(self, cfg: BenchConfig, plan: RunPlan, workdir: Path, progress: Progress) -> None:
        self.cfg, self.plan, self.dir, self.progress = cfg, plan, workdir, progress
        self.queue: asyncio.Queue = asyncio.Queue()
        self.hub: Child | None = None
        self.peers: list[Child] = []

    def _python(self, name: str, *args: str) -> list[str]:
        """The command line of a child; AGENTNET_BENCH_PROFILE=DIR runs each under cProfile (DIR/NAME.prof)."""
        profile_dir = os.environ.get("AGENTNET_BENCH_PROFILE")
        if profile_dir:
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            out = Path(profile_dir) / f"{name}-{self.plan.mode}.prof"
            return [sys.executable, "-m", "cProfile", "-o", str(out), *args]
        return [sys.executable, *args]

    async def _start_hub(self) -> str:
        port_file = self.dir / "hub.port"
        port_file.unlink(missing_ok=True)
        kind = self.plan.store or self.cfg.store
        if kind == "sqlite":
            db = self.dir / "bench.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            store = f"sqlite:{db}"
        elif is_postgres(kind):
            store = await asyncio.to_thread(_fresh_pg_schema, kind)  # every run starts empty, like sqlite
        else:
            store = "memory"
        argv = self._python(
            "hub",
            "-m",
            "agentnet.cli",
            "hub",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--store",
            store,
            "--synchronous",
            self.cfg.synchronous,
            "--window",
            str(max(256, 2 * self.plan.in_flight)),
            "--exit-with-parent",
        )
        self.hub = await _spawn("hub", argv, self.dir / "hub.log", pipes=False)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.hub.proc.returncode is not None:
                raise BenchError(f"the hub exited with code {self.hub.proc.returncode}:\n{self.hub.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the hub did not start listening within 20 s:\n{self.hub.tail()}")
            await asyncio.sleep(0.02)
        return f"ws://127.0.0.1:{int(port_file.read_text())}/v1"

    async def _start_peer(self, role: str, argv: list[str]) -> Child:
        argv = self._python(role, "-m", "agentnet.bench.peers", role, *argv)
        child = await _spawn(role, argv, self.dir / f"{role}.log", pipes=True)
        child.reader = asyncio.create_task(_read_events(child, self.queue))
        self.peers.append(child)
        return child

    def _child(self, name: str) -> Child:
        return next(c for c in self.peers if c.name == name)

    async def _next_event(self, timeout: float, waiting_for: str) -> tuple[str, dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout):
                name, event = await self.queue.get()
        except TimeoutError:
            hub = self.hub
            if hub is not None and hub.proc.returncode is not None:
                raise BenchError(f"the hub exited (code {hub.proc.returncode}):\n{hub.tail()}") from None
            raise BenchError(f"no progress for {timeout:g} s while waiting for {waiting_for}") from None
        kind = event.get("event")
        if kind == "error":
            raise BenchError(f"the {name} failed: {event.get('message')}\n{self._child(name).tail()}")
        if kind == "exit":
            raise BenchError(f"the {name} exited early (code {event.get('rc')}):\n{self._child(name).tail()}")
        return name, event

    async def _wait_for(self, wanted: set[tuple[str, str]], timeout: float) -> dict[tuple[str, str], dict]:
        got: dict[tuple[str, str], dict] = {}
        while not wanted <= got.keys():
            missing = ", ".join(f"{n} {e}" for n, e in sorted(wanted - got.keys()))
            name, event = await self._next_event(timeout, missing)
            got[(name, event.get("event", ""))] = event
        return got

    async def execute(self) -> dict[str, Any]:
        plan, cfg = self.plan, self.cfg
        try:
            url = await self._start_hub()
            assert self.hub is not None
            common = ["--url", url, "--count", str(plan.count), "--warmup", str(plan.warmup)]
            rx = await self._start_peer("receiver", [*common, "--name", RX_NAME])
            await self._wait_for({("receiver", "ready")}, 20.0)
            tx_args = ["--name", TX_NAME, "--to", RX_NAME, "--in-flight", str(plan.in_flight), "--size", str(cfg.size)]
            tx = await self._start_peer("sender", [*common, *tx_args])
            if plan.warmup:
                self.progress.note(f"{plan.mode}: warming up with {plan.warmup:,} envelopes")
            got = await self._wait_for(
                {("sender", "ready"), ("sender", "warm"), ("receiver", "warm")}, 20.0 + plan.warmup / 100
            )
            channel_id = got[("sender", "ready")]["channel_id"]

            hub, rss_start = self.hub, self.hub.rss_mb()
            cpu0 = {c.name: c.cpu() for c in (hub, rx, tx)}
            cpu0["hub-sys"] = hub.cpu_system()
            wall0 = time.monotonic()
            assert tx.proc.stdin is not None
            tx.proc.stdin.write(b"go\n")
            await tx.proc.stdin.drain()

            self.progress.start(f"{plan.mode} ({plan.in_flight} in flight)", plan.count)
            done: dict[str, dict[str, Any]] = {}
            cpu1: dict[str, float] = {}
            wall1 = wall0
            try:
                while "receiver" not in done or "sender" not in done:
                    name, event = await self._next_event(cfg.stall_timeout, "the measured phase to finish")
                    kind = event["event"]
                    if kind == "progress" and name == "receiver":
                        self.progress.update(event["acked"])
                    elif kind == "done":
                        done[name] = event
                        if name == "receiver":  # the last ack is out: the hub's work is over
                            cpu1 = {c.name: c.cpu() for c in (hub, rx, tx)}
                            cpu1["hub-sys"] = hub.cpu_system()
                            wall1 = time.monotonic()
                            self.progress.update(event["acked"])
            finally:
                self.progress.stop()
            rss_end, rss_peak = hub.rss_mb(), hub.peak_rss_mb()
            verified = await _verify_acked(url, channel_id, RX_NAME)
            return self._results(plan, done, cpu0, cpu1, wall1 - wall0, rss_start, rss_end, rss_peak, verified)
        finally:
            await _stop_all(self.peers, self.hub)

    def _results(
        self,
        plan: RunPlan,
        done: dict[str, dict[str, Any]],
        cpu0: dict[str, float],
        cpu1: dict[str, float],
        wall: float,
        rss_start: float | None,
        rss_end: float | None,
        rss_peak: float | None,
        verified: dict[str, Any],
    ) -> dict[str, Any]:
        rx, tx = done["receiver"], done["sender"]
        n = rx["acked"]
        hub_cpu = cpu1["hub"] - cpu0["hub"]
        load_cpu = (cpu1["receiver"] - cpu0["receiver"]) + (cpu1["sender"] - cpu0["sender"])
        assert self.hub is not None
        return {
            "mode": plan.mode,
            "in_flight": plan.in_flight,
            "count": n,
            "warmup": plan.warmup,
            "acked_per_s": rx["acked_per_s"],
            "elapsed_s": rx["elapsed_s"],
            "post_ok_ms": tx["ok_ms"],
            "delivery_ms": rx["delivery_ms"],
            "hub_cpu_s": round(hub_cpu, 4),
            "hub_cpu_us_per_env": round(hub_cpu / n * 1e6, 1) if n else None,
            "hub_cores": round(hub_cpu / wall, 2) if wall > 0 else None,
            "hub_cpu_kernel_share": round((cpu1["hub-sys"] - cpu0["hub-sys"]) / hub_cpu, 2) if hub_cpu > 0 else None,
            "load_cpu_us_per_env": round(load_cpu / n * 1e6, 1) if n else None,
            "sender_cpu_us_per_env": round((cpu1["sender"] - cpu0["sender"]) / n * 1e6, 1) if n else None,
            "receiver_cpu_us_per_env": round((cpu1["receiver"] - cpu0["receiver"]) / n * 1e6, 1) if n else None,
            "hub_rss_mb": {"start": rss_start, "end": rss_end, "peak": rss_peak},
            "data_bytes": tx.get("data_bytes"),
            "redelivered": rx["redelivered"],
            "hub_confirms_all_acked": verified["ok"],
            "hub_cursor": verified["cursor"],
            "pids": {"hub": self.hub.pid, **{c.name: c.pid for c in self.peers}},
        }


async def _verify_acked(url: str, channel_id: str, recipient: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the hub itself (as an observer) whether the receiver's cursor reached the channel's head."""
    from agentnet.client import HubClient, HubError

    cursor: dict[str, Any] | None = None
    try:
        async with HubClient(url, name="bench-check", role="observer", reconnect=False) as hub:
            deadline = time.monotonic() + timeout
            while True:
                snap = await hub.request("observe")
                head = next((c["head_seq"] for c in snap["channels"] if c["channel_id"] == channel_id), None)
                cursor = next(
                    (c for c in snap["cursors"] if c["channel_id"] == channel_id and c["recipient"] == recipient),
                    None,
                )
                if cursor is not None and head is not None and cursor["ack_floor"] >= head:
                    return {"ok": True, "cursor": {**cursor, "head_seq": head}}
                if time.monotonic() > deadline:
                    return {"ok": False, "cursor": {**(cursor or {}), "head_seq": head}}
                await asyncio.sleep(0.1)
    except HubError as exc:
        return {"ok": False, "cursor": {"error": str(exc)}}


# --------------------------------------------------------------------------- the whole benchmark


def _fs_type(path: Path) -> str | None:
    best, fstype = "", None
    with contextlib.suppress(Exception):
        for part in psutil.disk_partitions(all=True):
            if str(path).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
                best, fstype = part.mountpoint, part.fstype
    return fstype


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return round(statistics.median(nums), 3) if nums else None


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the runs of one mode."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in (
        "acked_per_s",
        "hub_cpu_us_per_env",
        "hub_cores",
        "load_cpu_us_per_env",
        "sender_cpu_us_per_env",
        "receiver_cpu_us_per_env",
        "elapsed_s",
    ):
        out[key] = _median([r[key] for r in runs])
    for key in ("post_ok_ms", "delivery_ms"):
        out[key] = {p: _median([r[key][p] for r in runs]) for p in runs[0][key]}
    out["hub_rss_mb"] = {p: _median([r["hub_rss_mb"][p] for r in runs]) for p in ("start", "end", "peak")}
    out["redelivered"] = sum(r["redelivered"] for r in runs)
    out["hub_confirms_all_acked"] = all(r["hub_confirms_all_acked"] for r in runs)
    return out


_schemas = iter(range(1, 1_000_000))


def _fresh_pg_schema(url: str) -> str:
    """An empty schema of its own for one run; the URL that uses it."""
    import psycopg

    name = f"agentnet_bench_{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{name}"


def _loadavg() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


async def run_benchmark(cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    load_before = _loadavg()
    own_dir = cfg.dir is None
    workdir = Path(tempfile.mkdtemp(prefix="agentnet-bench-")) if own_dir else Path(cfg.dir)  # type: ignore[arg-type]
    workdir.mkdir(parents=True, exist_ok=True)
    pg_local = None
    stores: list[tuple[str, str]] = []  # (store given to the hub, label)
    if is_postgres(cfg.store):
        url = cfg.store
        if url == "postgresql":
            from agentnet.pglocal import LocalPostgres

            progress.note("starting a throwaway PostgreSQL (fsync and synchronous_commit on) ...")
            pg_local = await asyncio.to_thread(lambda: LocalPostgres(workdir / "pg").start())
            url = pg_local.url
        stores.append((url, "postgresql"))
        if cfg.compare:
            stores.append(("sqlite", "sqlite"))  # interleaved with the PostgreSQL runs, same machine state
    else:
        stores.append((cfg.store, cfg.store))
    plans: list[RunPlan] = []
    for _ in range(cfg.runs):
        for store, label in stores:
            plans.append(RunPlan("pipelined", cfg.in_flight, cfg.count, cfg.warmup, store=store, label=label))
            if cfg.idle_count > 0 and cfg.in_flight != 1:
                plans.append(RunPlan("serial", 1, cfg.idle_count, min(cfg.warmup, 200), store=store, label=label))
    fstype = _fs_type(workdir) if any(label != "memory" for _, label in stores) else None
    if fstype in ("tmpfs", "ramfs"):
        progress.note(f"[yellow]warning[/]: {workdir} is on {fstype}; fsync costs nothing there")
    progress.note(
        f"store {' and '.join(label for _, label in stores)}"
        f"{f' (synchronous={cfg.synchronous}, {workdir})' if cfg.store == 'sqlite' else ''};"
        f" {cfg.runs} run(s); logs in {workdir}"
    )
    failed = False
    try:
        for i, plan in enumerate(plans, 1):
            progress.note(
                f"run {i}/{len(plans)}: {plan.label} {plan.mode}, {plan.in_flight} in flight, {plan.count:,} envelopes"
            )
            plan.results = await Run(cfg, plan, workdir, progress).execute()
            plan.results["store"] = plan.label
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise  # interrupted: nothing to investigate, the directory goes
    except BaseException:
        failed = True
        raise
    finally:
        if pg_local is not None:
            await asyncio.to_thread(pg_local.stop if not own_dir or failed else pg_local.discard)
        if own_dir and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
        elif own_dir:
            progress.note(f"logs kept in {workdir}")
    main = stores[0][1]
    every = [p.results for p in plans]
    runs = [r for r in every if r["store"] == main]
    modes = [m for m in ("pipelined", "serial") if any(r["mode"] == m for r in runs)]
    compared = {
        label: {
            m: summarize_runs([r for r in every if r["store"] == label and r["mode"] == m])
            for m in modes
            if any(r["store"] == label and r["mode"] == m for r in every)
        }
        for _, label in stores[1:]
    }
    return {
        "benchmark": "throughput",
        "store": main,
        "compare": compared,
        "compare_runs": [r for r in every if r["store"] != main],
        "synchronous": cfg.synchronous if cfg.store == "sqlite" else None,
        "settings": {
            "count": cfg.count,
            "in_flight": cfg.in_flight,
            "size": cfg.size,
            "warmup": cfg.warmup,
            "idle_count": cfg.idle_count,
            "runs": cfg.runs,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "fs": fstype,
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": _loadavg(),
        },
        "target_acked_per_s": TARGETS.get(main),
        "ag2_acked_per_s": AG2_ACKED_PER_S.get(main),
        "runs": runs,
        "summary": {m: summarize_runs([r for r in runs if r["mode"] == m]) for m in modes},
    }


# --------------------------------------------------------------------------- output


def _ms(d: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    return f"{f(d.get('p50'))} / {f(d.get('p99'))}"


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    s, machine = result["settings"], result["machine"]
    store = result["store"] + (f" (synchronous={result['synchronous']})" if result["synchronous"] else "")
    table = Table(
        title=f"agentnet bench throughput: store {store}, {s['size']} B of data per envelope, "
        f"{machine['cpus']} CPUs, Python {machine['python']}",
        title_justify="left",
    )
    table.add_column("pass")
    table.add_column("envelopes", justify="right")
    table.add_column("acked\nenv/s", justify="right", style="bold")
    table.add_column("post→ok ms\np50 / p99", justify="right")
    table.add_column("post→delivery ms\np50 / p99", justify="right")
    table.add_column("hub CPU\nµs/env", justify="right")
    table.add_column("hub\ncores", justify="right")
    table.add_column("hub RSS MB\nstart→peak", justify="right")
    table.add_column("load CPU\nµs/env", justify="right")

    multi = s["runs"] > 1

    def row(label: str, r: dict[str, Any], count: int, style: str | None = None) -> None:
        rss = r["hub_rss_mb"]
        table.add_row(
            label,
            f"{count:,}",
            _num(r["acked_per_s"], ",.0f"),
            _ms(r["post_ok_ms"]),
            _ms(r["delivery_ms"]),
            _num(r["hub_cpu_us_per_env"], ".0f"),
            _num(r["hub_cores"], ".2f"),
            f"{_num(rss['start'], '.0f')}→{_num(rss['peak'], '.0f')}",
            _num(r["load_cpu_us_per_env"], ".0f"),
            style=style,
        )

    sections = [(result["store"], result["summary"], result["runs"])]
    for other, summaries in (result.get("compare") or {}).items():
        sections.append((other, summaries, [r for r in result["compare_runs"] if r["store"] == other]))
    for store_label, summaries, store_runs in sections:
        prefix = f"{store_label}: " if len(sections) > 1 else ""
        for mode, summary in summaries.items():
            runs = [r for r in store_runs if r["mode"] == mode]
            label = prefix + f"{runs[0]['in_flight']} in flight" + (" (idle)" if mode == "serial" else "")
            if multi:
                for i, r in enumerate(runs, 1):
                    row(f"{label}, run {i}", r, r["count"], style="dim")
                row(f"{label}, median", summary, runs[0]["count"])
            else:
                row(label, runs[0], runs[0]["count"])
    console.print(table)

    runs = result["runs"] + result.get("compare_runs", [])
    redelivered = sum(r["redelivered"] for r in runs)
    if all(r["hub_confirms_all_acked"] for r in runs):
        check = f"[green]the hub's cursor confirms every envelope acked[/]; {redelivered} redelivered"
    else:
        check = "[red]the hub's cursor does NOT show every envelope acked[/] (see --json: hub_cursor)"
    console.print(f"check: {check}", highlight=False)
    target, ag2 = result["target_acked_per_s"], result["ag2_acked_per_s"]
    if target and "pipelined" in result["summary"]:
        got = result["summary"]["pipelined"]["acked_per_s"] or 0
        verdict = "[green]met[/]" if got >= target else "[yellow]not met[/]"
        console.print(
            f"target on 2 cores: ≥ {target:,} acked env/s: {verdict}   (AG2 hub network, same test: {ag2:,} env/s)",
            highlight=False,
        )
    sqlite = (result.get("compare") or {}).get("sqlite")
    if result["store"] == "postgresql" and sqlite and "pipelined" in result["summary"]:
        pg_rate = result["summary"]["pipelined"]["acked_per_s"] or 0
        sq_rate = sqlite["pipelined"]["acked_per_s"] or 0
        share = pg_rate / sq_rate if sq_rate else 0.0
        verdict = "[green]met[/]" if share >= 0.7 else "[yellow]not met[/]"
        console.print(
            f"postgresql {pg_rate:,.0f} vs sqlite {sq_rate:,.0f} acked env/s in this run: {share:.0%} "
            f"(goal ≥ 70%: {verdict})",
            highlight=False,
        )
        if "serial" in result["summary"] and "serial" in sqlite:
            pg_idle, sq_idle = result["summary"]["serial"]["post_ok_ms"], sqlite["serial"]["post_ok_ms"]
            console.print(
                f"idle latency, post→ok p50 / p99 ms: postgresql {_ms(pg_idle)}, sqlite {_ms(sq_idle)}",
                highlight=False,
            )
    load = machine.get("loadavg_1m_before")
    if load is not None and load > 0.5:
        console.print(
            f"[yellow]note[/]: the machine was busy before the run (load average {load:.2f}); "
            "throughput and latency are lower bounds, CPU per envelope is the steadier figure",
            highlight=False,
        )
    console.print(
        "[dim]acked env/s: first measured post → last ack, on the machine's monotonic clock. "
        "hub CPU: user+sys of the hub process over the measured phase; hub cores = that / wall time. "
        "load CPU: sender + receiver, which share the cores with the hub.[/]"
    )


def run_throughput(cfg: BenchConfig, *, as_json: bool = False, quiet: bool = False) -> int:
    from rich.console import Console

    progress = Progress(quiet=quiet)

    async def main() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        cancel_on_signals(task)
        return await run_benchmark(cfg, progress)

    try:
        result = asyncio.run(main())
    except BenchError as exc:
        progress.stop()
        print(f"agentnet bench: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.stop()
        print("agentnet bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 132))  # piped: do not squeeze the table into 80
        render(result, console)
    return 0
