"""`agentnet bench ...`: registers the benchmark subcommands (imports stay lazy until one runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _store(text: str) -> str:
    if text in ("memory", "sqlite", "postgresql") or text.startswith(("postgresql://", "postgres://")):
        return text
    raise argparse.ArgumentTypeError(f"expected memory, sqlite, postgresql or postgresql://URL, not {text!r}")


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure throughput and latency (hub, sender and receiver in separate processes)",
        description="Benchmarks. Speed is measured here, never asserted in tests.",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bench.set_defaults(run=lambda args: _no_benchmark(bench))

    t = bench_sub.add_parser(
        "throughput",
        help="acked envelopes/s and post->delivery latency through a real hub",
        description="Start a hub, a receiver and a sender (three processes on 127.0.0.1). The sender keeps "
        "--in-flight posts outstanding on one connection; the receiver acks each delivery. Prints acked "
        "envelopes/s, post->ok and post->delivery latency p50/p99, hub CPU per envelope and hub RSS; a second "
        "line repeats the test one envelope at a time (idle latency).",
    )
    t.add_argument(
        "--store",
        type=_store,
        default="memory",
        help="hub store: memory, sqlite, postgresql (a throwaway local server) or postgresql://URL; a "
        "postgresql run interleaves sqlite runs and compares them (default: memory). "
        "Example: agentnet bench throughput --store postgresql --runs 3",
    )
    t.add_argument("--no-compare", action="store_true", help="with a postgresql store: do not run sqlite beside it")
    t.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite fsync policy for --store sqlite (default: FULL, durable against power loss)",
    )
    t.add_argument("--count", type=_positive, default=20_000, help="envelopes measured (default: 20000)")
    t.add_argument("--in-flight", type=_positive, default=64, help="posts outstanding at once (default: 64)")
    t.add_argument("--size", type=_non_negative, default=200, help="bytes of envelope data (default: 200)")
    t.add_argument(
        "--warmup", type=_non_negative, default=1_000, help="envelopes sent before measuring (default: 1000)"
    )
    t.add_argument(
        "--idle-count",
        type=_non_negative,
        default=1_000,
        help="envelopes of the second, one-at-a-time pass (idle latency); 0 skips it (default: 1000)",
    )
    t.add_argument("--runs", type=_positive, default=1, help="repeat each pass and report the median (default: 1)")
    t.add_argument("--dir", type=Path, help="directory for the SQLite file and logs (default: a fresh temp dir)")
    t.add_argument("--json", action="store_true", help="print the results as JSON (progress still goes to stderr)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(run=_run_throughput)

    fo = bench_sub.add_parser(
        "failover",
        help="takeover time of a standby hub after the active one is SIGKILLed or SIGSTOPped",
        description="Two hubs on one PostgreSQL database, a client posting through both URLs; the active hub "
        "is SIGKILLed (kill) or SIGSTOPped and later woken (stop). Prints the takeover time (fault -> "
        "standby serving) and the client's gap (fault -> next post answered ok), p50 and max over the runs. "
        "Example: agentnet bench failover --runs 5",
    )
    fo.add_argument("--runs", type=_positive, default=5, help="runs per fault (default: 5)")
    fo.add_argument("--fault", choices=["kill", "stop", "both"], default="both", help="which fault (default: both)")
    fo.add_argument("--lease", type=float, default=1.0, help="the hubs' --lease, seconds (default: 1.0)")
    fo.add_argument("--ping", type=float, default=0.5, help="the clients' keepalive ping, seconds (default: 0.5)")
    fo.add_argument(
        "--store",
        type=_store,
        default="postgresql",
        help="postgresql (a throwaway local server, default) or postgresql://URL (each run uses a fresh schema)",
    )
    fo.add_argument("--json", action="store_true", help="print the results as JSON")
    fo.add_argument("--quiet", action="store_true", help="no progress output")
    fo.set_defaults(run=_run_failover)

    ag = bench_sub.add_parser(
        "autogen",
        help="RPC/s and p50/p99 through agentnet's AutoGen gateway vs AutoGen's own host, same workers",
        description="Point the same two unmodified AutoGen 0.7.5 workers at AutoGen's GrpcWorkerAgentRuntimeHost "
        "and at agentnet (the gateway inside the hub: `agentnet hub --autogen`; `sidecar` adds the separate "
        "`agentnet gateway autogen` process), in interleaved rounds. Each round measures --count RPCs one at a "
        "time and --count with --in-flight outstanding; prints RPC/s, latency p50/p99, the host's CPU per RPC "
        "and the ratio to AutoGen's host. Example: agentnet bench autogen --runs 3 --hosts autogen,agentnet,sidecar",
    )
    ag.add_argument(
        "--python",
        type=Path,
        default=Path(".venv-autogen/bin/python"),
        help="a Python with autogen-ext[grpc]==0.7.5 for the workers (default: .venv-autogen/bin/python)",
    )
    ag.add_argument(
        "--hosts",
        default="autogen,agentnet",
        help="comma-separated: autogen, agentnet, sidecar (default: autogen,agentnet)",
    )
    ag.add_argument(
        "--store", choices=["memory", "sqlite"], default="sqlite", help="agentnet's store (default: sqlite)"
    )
    ag.add_argument(
        "--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite fsync policy (default: FULL)"
    )
    ag.add_argument("--count", type=_positive, default=2000, help="RPCs per pass (default: 2000)")
    ag.add_argument("--in-flight", type=_positive, default=64, help="RPCs outstanding in the second pass (default: 64)")
    ag.add_argument("--size", type=_non_negative, default=150, help="bytes of JSON payload (default: 150)")
    ag.add_argument("--warmup", type=_non_negative, default=300, help="RPCs before measuring (default: 300)")
    ag.add_argument("--runs", type=_positive, default=1, help="interleaved rounds per host; medians (default: 1)")
    ag.add_argument("--dir", type=Path, help="directory for logs and SQLite files (default: a fresh temp dir)")
    ag.add_argument("--json", action="store_true", help="print the results as JSON")
    ag.add_argument("--quiet", action="store_true", help="no progress output")
    ag.set_defaults(run=_run_autogen)

    sc = bench_sub.add_parser(
        "scale",
        help="cost as channels, agents and depth grow (CPU per consult, RSS, snapshot, lookups)",
        description="Start a hub (SQLite in a temp dir) and run --channels sequential consults among --agents "
        "agents (--concurrency at a time): hub CPU per consult for the first and last 1,000, hub RSS at 1,000 "
        "and after every channel closed, the observer snapshot's time and size, the largest listing response. "
        "Then a channel of --depth envelopes: find_by_causation miss/hit times and a full read_wal pass with "
        "the hub's RSS before and after. Then the dashboard, headless, attached to a synthetic hub that size while "
        "events stream: attach time and key latency. Example: agentnet bench scale --channels 10000 --depth 100000",
    )
    sc.add_argument("--channels", type=_positive, default=50_000, help="consults, one channel each (default: 50000)")
    sc.add_argument("--agents", type=_positive, default=100, help="connected agents (default: 100)")
    sc.add_argument("--concurrency", type=_positive, default=8, help="consults at a time (default: 8)")
    sc.add_argument(
        "--depth", type=_positive, default=1_000_000, help="envelopes in the deep channel (default: 1000000)"
    )
    sc.add_argument("--lookups", type=_positive, default=200, help="find_by_causation misses and hits (default: 200)")
    sc.add_argument("--dashboard-agents", type=_positive, default=1000, help="dashboard part: agents (default: 1000)")
    sc.add_argument(
        "--dashboard-events", type=_positive, default=20_000, help="dashboard part: events streamed (default: 20000)"
    )
    sc.add_argument("--dashboard-rate", type=_positive, default=1000, help="dashboard part: events/s (default: 1000)")
    sc.add_argument(
        "--only",
        choices=["consults", "depth", "dashboard", "attached"],
        help="run one part only (default: all; 'attached': the real dashboard on a real hub of --channels closed "
        "consults and --dashboard-agents agents, --dashboard-events at --dashboard-rate/s)",
        default=None,
    )
    sc.add_argument("--dir", type=Path, help="directory for the SQLite files (default: a fresh temp dir, removed)")
    sc.add_argument("--json", action="store_true", help="print the results as JSON (progress goes to stderr)")
    sc.add_argument("--quiet", action="store_true", help="no progress output")
    sc.set_defaults(run=_run_scale)

    tui = bench_sub.add_parser(
        "tui",
        help="dashboard benchmark: how fast the TUI model digests hub events",
        description="Feed the dashboard a synthetic event stream and report its rate and key latency. "
        "Example (a big hub at a steady rate): agentnet bench tui --agents 1000 --channels 50000 --pace 1000 "
        "--events 20000",
    )
    tui.add_argument("--events", type=_positive, default=100_000, help="events to feed (default: 100000)")
    tui.add_argument("--agents", type=_positive, default=8, help="agents in the hub's snapshot (default: 8)")
    tui.add_argument("--channels", type=_positive, default=4, help="channels in the hub's snapshot (default: 4)")
    tui.add_argument(
        "--pace", type=_positive, default=None, help="feed at most this many events/s (default: as fast as it goes)"
    )
    tui.add_argument("--json", action="store_true", help="print the results as JSON")
    tui.set_defaults(run=_run_tui)


def _run_failover(args: argparse.Namespace) -> int:
    from .failover import FailoverConfig, run_failover

    faults = ("kill", "stop") if args.fault == "both" else (args.fault,)
    cfg = FailoverConfig(runs=args.runs, faults=faults, lease=args.lease, store=args.store, ping=args.ping)
    return run_failover(cfg, as_json=args.json, quiet=args.quiet)


def _no_benchmark(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _run_throughput(args: argparse.Namespace) -> int:
    from .throughput import BenchConfig, run_throughput

    cfg = BenchConfig(
        store=args.store,
        count=args.count,
        in_flight=args.in_flight,
        size=args.size,
        warmup=args.warmup,
        idle_count=args.idle_count,
        runs=args.runs,
        synchronous=args.synchronous,
        dir=args.dir,
        compare=not args.no_compare,
    )
    return run_throughput(cfg, as_json=args.json, quiet=args.quiet)


def _run_autogen(args: argparse.Namespace) -> int:
    from .autogen import AutogenBenchConfig, run_autogen_bench

    hosts = tuple(h.strip() for h in args.hosts.split(",") if h.strip())
    unknown = [h for h in hosts if h not in ("autogen", "agentnet", "sidecar")]
    if unknown or not hosts:
        print(
            f"agentnet bench autogen: unknown host(s) {unknown}; pick from autogen, agentnet, sidecar", file=sys.stderr
        )
        return 2
    cfg = AutogenBenchConfig(
        python=args.python.absolute(),
        hosts=hosts,
        store=args.store,
        synchronous=args.synchronous,
        count=args.count,
        in_flight=args.in_flight,
        size=args.size,
        warmup=args.warmup,
        runs=args.runs,
        dir=args.dir,
    )
    return run_autogen_bench(cfg, as_json=args.json, quiet=args.quiet)


def _run_scale(args: argparse.Namespace) -> int:
    from .scale import ScaleConfig, run_scale

    cfg = ScaleConfig(
        channels=args.channels,
        agents=max(2, args.agents),
        concurrency=args.concurrency,
        depth=args.depth,
        lookups=args.lookups,
        dashboard_agents=args.dashboard_agents,
        dashboard_events=args.dashboard_events,
        dashboard_rate=args.dashboard_rate,
        dir=args.dir,
        parts=(args.only,) if args.only else ("consults", "depth", "dashboard", "attached"),
    )
    return run_scale(cfg, as_json=args.json, quiet=args.quiet)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix, value)]


def _run_tui(args: argparse.Namespace) -> int:
    try:
        from agentnet.tui.bench import run_tui_bench  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name not in ("agentnet.tui", "agentnet.tui.bench"):
            raise
        print(
            "agentnet bench tui: the dashboard benchmark (agentnet.tui.bench) is not part of this build yet",
            file=sys.stderr,
        )
        return 1
    except ImportError:
        print("agentnet bench tui: agentnet.tui.bench has no run_tui_bench() yet", file=sys.stderr)
        return 1
    result = run_tui_bench(events=args.events, agents=args.agents, channels=args.channels, pace=args.pace)
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"agentnet bench tui: {args.events:,} events", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in _flatten(result):
        if isinstance(value, float):
            text = f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        table.add_row(key, text)
    Console().print(table)
    return 0
