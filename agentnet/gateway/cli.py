"""`agentnet gateway ...`: hosts for other agent frameworks' workers, backed by a hub."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

EXAMPLE = """\
Examples:
  agentnet hub --store sqlite:hub.db &
  agentnet gateway autogen --hub ws://127.0.0.1:8765/v1 --port 50051
  # then, in each AutoGen worker (the only change):
  #   GrpcWorkerAgentRuntime(host_address="127.0.0.1:50051")
"""


def register(sub: argparse._SubParsersAction) -> None:
    gateway = sub.add_parser(
        "gateway",
        help="serve another framework's workers through the hub (AutoGen gRPC)",
        description="Gateways let unmodified workers of other agent frameworks use a hub.",
    )
    gsub = gateway.add_subparsers(dest="gateway_command", metavar="FRAMEWORK")
    gateway.set_defaults(run=lambda args: _usage(gateway))
    p = gsub.add_parser(
        "autogen",
        help="host for AutoGen 0.7.5 GrpcWorkerAgentRuntime workers (gRPC agents.AgentRpc)",
        description="Serve the host side of AutoGen 0.7.5's gRPC worker protocol. Every RPC request, "
        "response and published event is stored in the hub: each agent type is an agentnet identity "
        "(ag-<type>) whose inbox keeps requests and events while its worker is down, and delivers them "
        "when a worker registers the type again. Subscriptions survive worker and gateway restarts. "
        "SIGTERM or Ctrl-C stops it gracefully. See docs/autogen.md.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hub", required=True, help="hub URL, e.g. ws://127.0.0.1:8765/v1")
    p.add_argument("--host", default="127.0.0.1", help="address to bind the gRPC server (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port; 0 picks a free one (default: 50051)")
    p.add_argument("--token", help="API key for the gateway's hub connections (hubs with auth on)")
    p.add_argument(
        "--rpc-deadline",
        type=float,
        default=30.0,
        help="seconds a caller waits for an RPC response before it gets an error; a worker can set its own "
        "with the gRPC option ('grpc.primary_user_agent', 'agentnet-rpc-deadline=SECONDS') (default: 30)",
    )
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log level; info also logs each worker and agent type as it comes and goes (default: warning)",
    )
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=_run_autogen)


def port_taken(host: str, port: int) -> str | None:
    """Why the gRPC server could not listen on host:port, found before anything starts (grpc itself
    would print a C-core error and a traceback), or None. Port 0 is always free."""
    from agentnet.launcher.preflight import port_problem

    return port_problem(port, host, "pick another, or port 0 for a free one") if port else None


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fail(message: str) -> int:
    print(f"agentnet gateway autogen: error: {message}", file=sys.stderr)
    return 1


def _run_autogen(args: argparse.Namespace) -> int:
    try:
        from agentnet.gateway.autogen.gateway import GatewayError, GatewaySettings
        from agentnet.gateway.autogen.serving import run_gateway
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("grpc", "google"):
            return _fail("grpcio and protobuf are missing: pip install 'agentnet[autogen]'")
        raise
    from agentnet.client.connection import HubError

    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be 0-65535, not {args.port}")
    if args.rpc_deadline <= 0:
        return _fail("--rpc-deadline must be more than 0")
    taken = port_taken(args.host, args.port)
    if taken:
        return _fail(taken)
    if getattr(args, "exit_with_parent", False):
        from agentnet.child import exit_with_parent

        exit_with_parent()
    settings = GatewaySettings(
        hub=args.hub, host=args.host, port=args.port, token=args.token, rpc_deadline=args.rpc_deadline
    )
    try:
        asyncio.run(run_gateway(settings, port_file=args.port_file))
    except HubError as exc:
        return _fail(f"hub {args.hub}: {exc}")
    except GatewayError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


def hub_with_autogen(
    hub_settings: object,
    address: str,
    port_file: Path | None,
    log_dir: Path | None = None,
    rpc_deadline: float = 30.0,
) -> object:
    """The coroutine `agentnet hub --autogen HOST:PORT` runs, or an error message."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"--autogen takes HOST:PORT (e.g. 127.0.0.1:50051), not {address!r}"
    if rpc_deadline <= 0:
        return "--autogen-rpc-deadline must be more than 0"
    try:
        from agentnet.gateway.autogen.gateway import GatewaySettings
        from agentnet.gateway.autogen.serving import run_hub_with_gateway
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("grpc", "google"):
            return "--autogen needs grpcio and protobuf: pip install 'agentnet[autogen]'"
        raise
    taken = port_taken(host or "127.0.0.1", int(port))
    if taken:
        return f"--autogen {address}: {taken}"
    settings = GatewaySettings(
        hub="", host=host or "127.0.0.1", port=int(port), log_dir=log_dir, rpc_deadline=rpc_deadline
    )
    return run_hub_with_gateway(hub_settings, settings, port_file=port_file)
