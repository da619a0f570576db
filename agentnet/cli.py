"""The `agentnet` command: thin argument parsing that hands off to each part's runner."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from agentnet import __version__
from agentnet.child import EXIT_USAGE, LOOPS, exit_with_parent_if_asked, fail, loop_factory, run_on_loop
from agentnet.hub.settings import DeliverySettings, KeepaliveSettings

# --------------------------------------------------------------------------- hub


def _add_hub(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hub",
        help="run a hub (WebSocket server with a WAL per channel)",
        description="Run a hub: agents connect on ws://HOST:PORT/v1, unmodified ag2 1.2.1 agents on "
        "ws://HOST:PORT/ (or /ag2; see docs/ag2.md); GET /healthz answers readiness. "
        "SIGTERM or Ctrl-C shuts it down gracefully. Hubs sharing one PostgreSQL database run "
        "active/standby: a standby answers /healthz 503 and takes over when the active hub goes; a hub "
        "that loses the leadership exits with status 3. Example: agentnet hub --port 8765 "
        "--store postgresql://agentnet@db.example:5432/agentnet",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default: 8765)")
    p.add_argument(
        "--store",
        default="memory",
        help="'memory' (volatile), 'sqlite:PATH' (durable, synchronous=FULL) or 'postgresql://USER@HOST:PORT/DB' "
        "(durable and shared: hubs on one database run active/standby) (default: memory)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=2.0,
        help="postgresql: seconds of silence after which the database ends a hub's leadership, so a "
        "standby takes over from a frozen or cut-off hub (default: 2.0)",
    )
    p.add_argument(
        "--advertise", help="postgresql: the URL standbys send clients to while this hub is active (default: own URL)"
    )
    p.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"], help="SQLite fsync policy")
    p.add_argument(
        "--retain-closed",
        type=float,
        metavar="DAYS",
        help="delete channels closed more than DAYS ago (envelopes, cursors, receipts) from the store; observers "
        "get a channels.dropped event (default: keep forever). Example: --retain-closed 30",
    )
    p.add_argument(
        "--keep-receipts",
        action="store_true",
        help="keep every acked receipt (an audit trail for 'agentnet check'; 'agentnet up' sets it). By default "
        "acked receipts at or below a cursor's ack floor are dropped: the floor says it all",
    )
    p.add_argument("--auth-file", type=Path, help="YAML file of API keys: tokens: [{name, role, token}]")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate (serve wss://)")
    p.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without --auth-file (anyone who can reach the port may be anyone)",
    )
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    DeliverySettings.add_arguments(p.add_argument_group("delivery"))
    KeepaliveSettings.add_arguments(p.add_argument_group("keepalive"))
    p.add_argument(
        "--send-timeout",
        type=float,
        default=10.0,
        help="a write to a peer that cannot complete within this drops the peer (default: 10)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("AGENTNET_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
        help="log level (default: $AGENTNET_LOG_LEVEL or warning); API keys are never logged",
    )
    p.add_argument(
        "--autogen",
        metavar="HOST:PORT",
        help="also serve AutoGen 0.7.5 gRPC workers on HOST:PORT from this process (the `agentnet gateway "
        "autogen` sidecar without its WebSocket hop; needs agentnet[autogen]; see docs/autogen.md)",
    )
    p.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop (libuv's, faster), asyncio, or auto: uvloop when installed (default: auto)",
    )
    p.add_argument(
        "--autogen-rpc-deadline",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --autogen: seconds a caller waits for an RPC response before it gets an error; a worker can "
        "ask for its own (docs/autogen.md) (default: 30)",
    )
    p.add_argument("--autogen-port-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--autogen-log-dir", type=Path, help=argparse.SUPPRESS)  # processed-logs for `agentnet check`
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=_run_hub)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost, or "" (every interface)


def _run_hub(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from agentnet.hub.auth import AuthError
    from agentnet.hub.server import HubSettings, HubSteppedDown, run_hub
    from agentnet.hub.store import StoreError

    if bool(args.tls_cert) != bool(args.tls_key):
        return fail("--tls-cert and --tls-key go together")
    if not args.auth_file and not args.insecure_no_auth and not _is_loopback(args.host):
        return fail(
            f"--host {args.host} is reachable from other machines and this hub has no --auth-file: "
            "anyone could act as any agent. Give it an --auth-file, or pass --insecure-no-auth"
        )
    try:
        settings = HubSettings(
            host=args.host,
            port=args.port,
            store=args.store,
            synchronous=args.synchronous,
            keep_receipts=args.keep_receipts,
            retain_closed=args.retain_closed,
            auth_file=args.auth_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            port_file=args.port_file,
            delivery=DeliverySettings.from_args(args),
            keepalive=KeepaliveSettings.from_args(args),
            send_timeout=args.send_timeout,
            lease=args.lease,
            advertise=args.advertise,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        return fail(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}")
    except ValueError as exc:  # a delivery or keepalive option out of bounds
        return fail(str(exc))
    exit_with_parent_if_asked(args)
    startup_errors: tuple[type[Exception], ...] = ()
    if args.autogen:
        from agentnet.gateway.cli import hub_with_autogen

        main = hub_with_autogen(
            settings, args.autogen, args.autogen_port_file, args.autogen_log_dir, args.autogen_rpc_deadline
        )
        if isinstance(main, str):
            return fail(main)
        from agentnet.gateway.autogen.gateway import GatewayError

        startup_errors = (GatewayError,)
    else:
        main = run_hub(settings)
    try:
        uvloop = loop_factory(args.loop) is not None
    except ImportError:
        return fail("--loop uvloop: uvloop is not installed (pip install uvloop), or use --loop auto")
    logging.getLogger("agentnet.hub").info("event loop: %s", "uvloop" if uvloop else "asyncio")
    try:
        run_on_loop(main, args.loop)
    except (StoreError, AuthError, *startup_errors) as exc:
        return fail(str(exc))
    except HubSteppedDown as exc:
        print(f"agentnet hub: {exc}; stopped", file=sys.stderr, flush=True)
        return 3
    except OSError as exc:
        if exc.errno == 98:
            return fail(f"port {args.port} on {args.host} is already in use (pick another with --port, or 0)")
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------- main


async def open_dashboard(feed: Any, controls: Any, *, title: str, recording_path: Path | None) -> str | None:
    """The dashboard `agentnet up` opens: the launcher is handed this, it does not import the tui.

    Quitting it stops the run (so `q` asks first); Ctrl-C in it returns "interrupt"."""
    from agentnet.tui.app import run_dashboard

    return await run_dashboard(feed, controls, title=title, recording_path=recording_path, quit_stops_run=True)


# One example per command at least, shown at the end of its --help (the parser-tree test checks it).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "agentnet": ("agentnet up scenarios/consult.yaml", "agentnet hub --store sqlite:hub.db"),
    "hub": (
        "agentnet hub --store sqlite:hub.db --log-level info",
        "agentnet hub --port 0 --port-file hub.port",
        "agentnet hub --store sqlite:hub.db --autogen 127.0.0.1:50051",
    ),
    "agent": (
        "agentnet agent --name bob --brain calc",
        "agentnet agent --name eve --brain echo --hub ws://127.0.0.1:8765/v1",
    ),
    "ask": ('agentnet ask --to bob "What is 12 times 11?"', 'agentnet ask --as carol --to bob,dave "2+2?"'),
    "up": ("agentnet up scenarios/consult.yaml", "agentnet up scenarios/chaos.yaml --headless"),
    "ctl": ("agentnet ctl kill bob", "agentnet ctl restart-hub --run .agentnet/runs/consult-20261207-101500"),
    "status": ("agentnet status", "agentnet status --json"),
    "check": ("agentnet check .agentnet/runs/chaos-20261207-101500",),
    "validate": ("agentnet validate scenarios/*.yaml",),
    "schema": ("agentnet schema > scenario.schema.json",),
    "tui": ("agentnet tui", "agentnet tui ws://127.0.0.1:8765/v1 --run .agentnet/runs/consult-20261207-101500"),
    "replay": ("agentnet replay .agentnet/runs/consult-20261207-101500",),
    "bench": ("agentnet bench throughput --store memory",),
    "gateway": ("agentnet gateway autogen --help",),
    "bench throughput": ("agentnet bench throughput --store memory", "agentnet bench throughput --store sqlite"),
    "bench failover": ("agentnet bench failover",),
    "bench autogen": ("agentnet bench autogen",),
    "bench scale": ("agentnet bench scale",),
    "bench tui": ("agentnet bench tui",),
    "gateway autogen": ("agentnet gateway autogen --hub ws://127.0.0.1:8765/v1",),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help, unless the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or "%(default)" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            return action.help
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors that help: the subcommand's own usage and a did-you-mean."""

    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'?([\w.-]+)'?", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown:
            flags = [o for a in self._actions for o in a.option_strings]
            close = difflib.get_close_matches(unknown.group(1).split("=")[0], flags, n=1)
            if close:
                message += f"; did you mean {close[0]}?"
        super().error(message)


def _polish(parser: argparse.ArgumentParser, name: str) -> None:
    """Give every parser of the tree the help formatter, examples and our usage errors."""
    parser.formatter_class = HelpFormatter
    examples = EXAMPLES.get(name)
    if examples and "example" not in (parser.epilog or "").lower():  # a parser's own examples win
        block = "\n".join(f"  {line}" for line in examples)
        parser.epilog = ((parser.epilog + "\n\n") if parser.epilog else "") + f"Examples:\n{block}"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                child.__class__ = Parser
                _polish(child, child_name if name == "agentnet" else f"{name} {child_name}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="agentnet",
        description="A local, inspectable agent network: hub, agents, launcher and dashboard.",
        epilog="Start with: agentnet up scenarios/consult.yaml",
    )
    parser.add_argument("--version", action="version", version=f"agentnet {__version__}")
    parser.set_defaults(dashboard=open_dashboard)  # `up` is given its dashboard from here, the top layer
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_hub(sub)
    for register in _EXTRA_COMMANDS:
        register(sub)
    _polish(parser, "agentnet")
    return parser


_EXTRA_COMMANDS: list = []


def _load_extra_commands() -> None:
    """Each part registers its own subcommands (keeps this module thin)."""
    import importlib

    if _EXTRA_COMMANDS:
        return  # already loaded (main() may be called more than once in a process)
    for module in (
        "agentnet.agents.cli",
        "agentnet.launcher.cli",
        "agentnet.tui.cli",
        "agentnet.bench.cli",
        "agentnet.gateway.cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and (module == exc.name or module.startswith(exc.name + ".")):  # part not installed
                continue
            raise
        _EXTRA_COMMANDS.append(mod.register)


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest parser the command line chose (e.g. `bench throughput`)."""
    current = parser
    while True:
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, sub.dest, None) if sub is not None and sub.dest != argparse.SUPPRESS else None
        if sub is None or chosen is None or chosen not in sub.choices:
            return current
        current = sub.choices[chosen]


def main(argv: list[str] | None = None) -> int:
    _load_extra_commands()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # say so with the subcommand's usage, not the top level's
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    # `kill -USR1 PID` prints every thread's stack to stderr: what a stuck process is doing, without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    level = getattr(args, "log_level", "warning")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from agentnet.protocol import redact

    redact.add_secret(getattr(args, "token", None))
    redact.install()  # no API key in any log line, at any level
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
