"""The launcher's subcommands: `up`, `ctl`, `status`, `check`, `validate`, `schema`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentnet.run.control import VERBS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "up",
        help="run a scenario: hub, agents, script, faults, then a summary",
        description="Run a scenario file: start the hub and the agents, apply the script and the faults on time, "
        "check `expect` and the delivery invariants, print a summary. With the dashboard by default. "
        "Exit code: 0 if `expect` and the invariants hold, 1 if not, 2 for a bad scenario (nothing started). "
        "First Ctrl-C stops gracefully, a second one forces.",
    )
    p.add_argument("file", type=Path, help="the scenario (YAML), e.g. scenarios/consult.yaml")
    p.add_argument(
        "--headless", "--no-tui", action="store_true", help="no dashboard: live status and log in the terminal"
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="give up after S seconds (overrides expect.within; no expect: run S s)",
    )
    p.add_argument("--runs-dir", type=Path, help="where run directories go (default: .agentnet/runs)")
    p.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument(
        "--stop-timeout", type=float, default=5.0, metavar="S", help="SIGTERM grace before SIGKILL (default: 5)"
    )
    p.set_defaults(run=_run_up)

    c = sub.add_parser(
        "ctl",
        help="control a running `agentnet up` from another terminal",
        description="Send a control to a running `agentnet up` (the newest under .agentnet/runs, or --run DIR): "
        "kill (SIGKILL, no restart), stop (SIGTERM, no restart), pause (SIGSTOP), resume (SIGCONT), "
        "disconnect (the hub drops the agent's socket), restart, restart-hub, restart-all.",
    )
    c.add_argument("verb", choices=VERBS, help="what to do (see above)")
    c.add_argument("target", nargs="?", help="a process name (or a replicated agent's name, or hub)")
    c.add_argument("--run", dest="run_dir", type=Path, help="the run directory (default: the newest running one)")
    c.add_argument("--json", action="store_true", help="print the launcher's answer as JSON")
    c.set_defaults(run=_run_ctl)

    s = sub.add_parser(
        "status",
        help="show the processes of a running `agentnet up`",
        description="Ask a running `agentnet up` (the newest, or --run DIR) for its state: processes, counters, "
        "expectations.",
    )
    s.add_argument("--run", dest="run_dir", type=Path, help="the run directory (default: the newest running one)")
    s.add_argument("--json", action="store_true", help="print the whole status as JSON")
    s.set_defaults(run=_run_status)

    k = sub.add_parser(
        "check",
        help="check a run directory's delivery invariants",
        description="Check a finished run from its hub store, the agents' processed-logs and the recording: every "
        "envelope reached every recipient or was dead-lettered, nothing acked that was not processed, first "
        "deliveries in seq order, duplicates only where a fault explains them (and then dedup_skipped). "
        "Exit code 1 on any violation, 2 if the directory cannot be read.",
    )
    k.add_argument("run_dir", type=Path, help="e.g. .agentnet/runs/chaos-20261120-100000")
    k.add_argument("--json", action="store_true", help="print the report as JSON")
    k.add_argument(
        "--strict", action="store_true", help="deliveries still pending when the run stopped are violations too"
    )
    k.set_defaults(run=_run_check)

    v = sub.add_parser(
        "validate",
        help="check scenario files without running them",
        description="Validate scenario files; print every problem, one per line (FILE:LINE: KEY: MESSAGE). "
        "Exit code 2 if any file has a problem.",
    )
    v.add_argument("files", type=Path, nargs="+", help="scenario files (YAML), e.g. scenarios/*.yaml")
    v.set_defaults(run=_run_validate)

    j = sub.add_parser("schema", help="print the JSON Schema of scenario files (for editors)")
    j.add_argument("--indent", type=int, default=2, help="spaces per JSON indent level (default: 2)")
    j.set_defaults(run=_run_schema)


def _run_up(args: argparse.Namespace) -> int:
    from agentnet.run.control import RUNS_DIR

    from .runner import UpOptions, up

    if args.timeout is not None and args.timeout <= 0:
        print("agentnet up: --timeout must be > 0", file=sys.stderr)
        return 2
    opts = UpOptions(
        path=args.file,
        headless=args.headless,
        dashboard=getattr(args, "dashboard", None),
        timeout=args.timeout,
        runs_root=args.runs_dir or RUNS_DIR,
        run_dir=args.run_dir,
        stop_timeout=args.stop_timeout,
    )
    return up(opts)


def _run_ctl(args: argparse.Namespace) -> int:
    from agentnet.run.control import ControlClientError, reply_of, request, resolve_run_dir

    if args.verb not in ("restart-hub", "restart-all") and not args.target:
        print(f"agentnet ctl: {args.verb} needs a target (a process name)", file=sys.stderr)
        return 2
    try:
        run_dir = resolve_run_dir(args.run_dir)
        answer = request(run_dir, {"op": "act", "verb": args.verb, "target": args.target})
        reply = reply_of(answer)
    except ControlClientError as exc:
        print(f"agentnet ctl: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer))
    elif reply.ok:
        print(reply.message if reply.message is not None else "ok")
    else:
        print(f"agentnet ctl: {reply.error}", file=sys.stderr)
    return 0 if reply.ok else 1


def _run_status(args: argparse.Namespace) -> int:
    from agentnet.run.control import ControlClientError, reply_of, request, resolve_run_dir

    try:
        run_dir = resolve_run_dir(args.run_dir)
        reply = reply_of(request(run_dir, {"op": "status"}, timeout=10))
    except ControlClientError as exc:
        print(f"agentnet status: {exc}", file=sys.stderr)
        return 1
    if not reply.ok or reply.status is None:
        print(f"agentnet status: {reply.error}", file=sys.stderr)
        return 1
    status = reply.status
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    from rich.console import Console

    from .headless import status_block
    from .report import status_from_json

    typed = status_from_json(status)
    console = Console(highlight=False)
    console.print(f"{typed.scenario}  {typed.run_dir}  hub {typed.hub_url or '-'}")
    console.print(status_block(typed))
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from .checker import CheckError, check_run

    try:
        report = check_run(args.run_dir, strict=args.strict)
    except CheckError as exc:
        print(f"agentnet check: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _run_validate(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError
    from .scenario_load import load_scenario

    code = 0
    for path in args.files:
        try:
            s = load_scenario(path)
        except ScenarioError as exc:
            for error in exc.all:
                print(error, file=sys.stderr)
            code = 2
            continue
        processes = len(s.agent_names())
        print(
            f"{path}: ok (scenario {s.name}: {_n(processes, 'agent process', 'agent processes')}, "
            f"{_n(len(s.script), 'script step')}, {_n(len(s.faults), 'fault')}{', expect' if s.expect else ''})"
        )
    return code


def _run_schema(args: argparse.Namespace) -> int:
    from .scenario_load import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=args.indent or None))
    return 0
