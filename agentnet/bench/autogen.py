"""`agentnet bench autogen`: RPCs through agentnet's AutoGen gateway against AutoGen's own host.

The same two unmodified AutoGen 0.7.5 workers (`agentnet/gateway/autogen/demo_worker.py`, run with
a Python that has autogen-ext[grpc]==0.7.5) are pointed in turn at each host:

* `autogen`: AutoGen's `GrpcWorkerAgentRuntimeHost` (in-memory, at-most-once);
* `agentnet`: `agentnet hub --autogen` (the gateway inside the hub process; durable with sqlite);
* `sidecar`: `agentnet hub` plus `agentnet gateway autogen` as a second process.

A round is: start the host, start the responder (serves type `echo`) and the caller, warm up,
then `--count` RPCs one at a time and `--count` RPCs with `--in-flight` outstanding. Rounds of the
hosts are interleaved (`--runs`), and the medians reported, with the host process's CPU per RPC.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

DEMO_WORKER = Path(__file__).resolve().parents[1] / "gateway" / "autogen" / "demo_worker.py"
DEFAULT_PYTHON = Path.cwd() / ".venv-autogen" / "bin" / "python"


@dataclass
class AutogenBenchConfig:
    python: Path = DEFAULT_PYTHON
    hosts: tuple[str, ...] = ("autogen", "agentnet")
    store: str = "sqlite"
    synchronous: str = "FULL"
    count: int = 2000
    in_flight: int = 64
    size: int = 150
    warmup: int = 300
    runs: int = 1
    dir: Path | None = None


@dataclass
class _Proc:
    popen: subprocess.Popen
    out: Path
    answered: int = 0
    lines_seen: list[dict] = field(default_factory=list)

    def lines(self) -> list[dict]:
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_for(self, what: str, predicate: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{what}: the process exited ({self.popen.returncode}); see {self.out}")
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for {what} (see {self.out})")

    def cmd(self, timeout: float = 300.0, **command: Any) -> dict:
        assert self.popen.stdin is not None
        self.popen.stdin.write((json.dumps(command) + "\n").encode())
        self.popen.stdin.flush()
        self.answered += 1
        want = self.answered

        def answer() -> dict | None:
            results = [r for r in self.lines() if "ok" in r]
            return results[want - 1] if len(results) >= want else None

        return self.wait_for(f"the answer to {command['cmd']}", answer, timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)


def _spawn(args: list[str], out: Path, stdin: bool = False) -> _Proc:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTOGEN_DISABLE_RUNTIME_TRACING": "true"}
    with out.open("wb") as f:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return _Proc(popen, out)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _start_host(cfg: AutogenBenchConfig, host: str, work: Path, n: int) -> tuple[str, list[_Proc]]:
    """Start one host; return the address workers use and the host's processes."""
    py = sys.executable
    if host == "autogen":
        port = _free_port()
        proc = _spawn([str(cfg.python), str(DEMO_WORKER), "--own-host", str(port)], work / f"{host}{n}.log")
        proc.wait_for("AutoGen's host", lambda: any(r.get("ready") for r in proc.lines()), 60)
        return f"127.0.0.1:{port}", [proc]
    store = "memory" if cfg.store == "memory" else f"sqlite:{work / f'{host}{n}.db'}"
    hub_port_file = work / f"{host}{n}.hub-port"
    gw_port_file = work / f"{host}{n}.gw-port"
    hub_args = [py, "-m", "agentnet.cli", "hub", "--port", "0", "--port-file", str(hub_port_file)]
    hub_args += ["--store", store, "--synchronous", cfg.synchronous]
    if host == "agentnet":
        hub = _spawn(
            [*hub_args, "--autogen", "127.0.0.1:0", "--autogen-port-file", str(gw_port_file)], work / f"{host}{n}.log"
        )
        port = hub.wait_for("the hub's gateway port", lambda: gw_port_file.exists() and gw_port_file.read_text(), 60)
        return f"127.0.0.1:{port}", [hub]
    hub = _spawn(hub_args, work / f"{host}{n}-hub.log")
    hub_port = hub.wait_for("the hub's port", lambda: hub_port_file.exists() and hub_port_file.read_text(), 60)
    gw_args = [py, "-m", "agentnet.cli", "gateway", "autogen", "--hub", f"ws://127.0.0.1:{hub_port}/v1"]
    gw = _spawn([*gw_args, "--port", "0", "--port-file", str(gw_port_file)], work / f"{host}{n}-gw.log")
    port = gw.wait_for("the gateway's port", lambda: gw_port_file.exists() and gw_port_file.read_text(), 60)
    return f"127.0.0.1:{port}", [hub, gw]


def _round(cfg: AutogenBenchConfig, host: str, work: Path, n: int, say: Any) -> dict[str, Any]:
    address, host_procs = _start_host(cfg, host, work, n)
    procs = list(host_procs)
    try:
        worker = [str(cfg.python), str(DEMO_WORKER), "--host", address, "--exit-on-eof"]
        responder = _spawn([*worker, "--serve", "echo"], work / f"{host}{n}-responder.out")
        procs.append(responder)
        responder.wait_for("the responder", lambda: any(r.get("ready") for r in responder.lines()), 60)
        caller = _spawn(worker, work / f"{host}{n}-caller.out", stdin=True)
        procs.append(caller)
        caller.wait_for("the caller", lambda: any(r.get("ready") for r in caller.lines()), 60)
        pids = [p.popen.pid for p in host_procs]
        caller.cmd(cmd="bench", target="echo", count=cfg.warmup, in_flight=cfg.in_flight, size=cfg.size)
        result: dict[str, Any] = {"host": host}
        for label, in_flight in (("sequential", 1), (f"{cfg.in_flight} in flight", cfg.in_flight)):
            cpu0 = _cpu(pids)
            r = caller.cmd(cmd="bench", target="echo", count=cfg.count, in_flight=in_flight, size=cfg.size)
            cpu = _cpu(pids) - cpu0
            result[label] = {
                "rps": r["rps"],
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "errors": r["errors"],
                "host_cpu_us_per_rpc": round(cpu / cfg.count * 1e6, 1),
            }
            say(f"  {host:8} {label:14} {r['rps']:8,.0f} RPC/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
        return result
    finally:
        for p in reversed(procs):
            p.stop()


def run_autogen_bench(cfg: AutogenBenchConfig, *, as_json: bool = False, quiet: bool = False) -> int:
    if not Path(cfg.python).exists():
        print(
            f"agentnet bench autogen: {cfg.python} not found: it needs a Python with autogen-ext[grpc]==0.7.5 "
            "(make .venv-autogen/.stamp makes one), or pass --python",
            file=sys.stderr,
        )
        return 1
    work = cfg.dir or Path(tempfile.mkdtemp(prefix="agentnet-bench-autogen-"))
    work.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    say(f"agentnet bench autogen: {cfg.count} RPCs of {cfg.size} bytes per pass, store {cfg.store}; logs in {work}")
    rounds: dict[str, list[dict]] = {h: [] for h in cfg.hosts}
    for n in range(cfg.runs):
        for host in cfg.hosts:  # interleaved: one round of each host, then again
            rounds[host].append(_round(cfg, host, work, n, say))
    labels = ["sequential", f"{cfg.in_flight} in flight"]
    summary: dict[str, Any] = {"config": {k: str(v) for k, v in cfg.__dict__.items()}, "hosts": {}}
    for host, results in rounds.items():
        summary["hosts"][host] = {
            label: {
                key: statistics.median(r[label][key] for r in results)
                for key in ("rps", "p50_ms", "p99_ms", "errors", "host_cpu_us_per_rpc")
            }
            for label in labels
        }
    base = summary["hosts"].get("autogen")
    if base:
        summary["ratio_vs_autogen"] = {
            host: {label: round(v[label]["rps"] / base[label]["rps"], 2) for label in labels}
            for host, v in summary["hosts"].items()
            if host != "autogen"
        }
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"agentnet bench autogen: RPC round trips, same workers (median of {cfg.runs} interleaved runs)",
        title_justify="left",
    )
    for col in ("host", "pass", "RPC/s", "p50 ms", "p99 ms", "host CPU µs/RPC", "vs AutoGen", "errors"):
        table.add_column(col, justify="left" if col in ("host", "pass") else "right")
    names = {
        "autogen": "AutoGen host (memory)",
        "agentnet": f"agentnet hub --autogen ({cfg.store})",
        "sidecar": f"agentnet gateway sidecar ({cfg.store})",
    }
    for host, v in summary["hosts"].items():
        for label in labels:
            row = v[label]
            ratio = summary.get("ratio_vs_autogen", {}).get(host, {}).get(label)
            table.add_row(
                names.get(host, host),
                label,
                f"{row['rps']:,.0f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{row['host_cpu_us_per_rpc']:,.0f}",
                f"{ratio:.2f}x" if ratio is not None else "-",
                str(row["errors"]),
            )
    Console(width=max(130, Console().width)).print(table)
    return 0
