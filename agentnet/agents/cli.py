"""`agentnet agent` (run an agent process) and `agentnet ask` (post a question from the terminal)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from agentnet.protocol.errors import EXIT_SUPERSEDED, CloseCode


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agent",
        help="run an agent process with a brain",
        description="Connect to a hub as NAME, answer every turn owed in the channels it is invited to, "
        "exactly once even under redelivery. SIGTERM or Ctrl-C exits cleanly.",
    )
    p.add_argument("--name", required=True, help="agent name (lowercase letters, digits, _ . -)")
    p.add_argument(
        "--hub",
        default="ws://127.0.0.1:8765/v1",
        help="hub URL, or several comma-separated (active/standby hubs: the active one is found and followed) "
        "(default: ws://127.0.0.1:8765/v1)",
    )
    p.add_argument("--brain", default="echo", help="echo | calc | scripted | transform | llm | python")
    p.add_argument("--options", default="{}", help="brain options as JSON, e.g. '{\"think_time\": 0.2}'")
    p.add_argument("--token", default=os.environ.get("AGENTNET_TOKEN"), help="API key (or $AGENTNET_TOKEN)")
    p.add_argument(
        "--ca-file",
        default=os.environ.get("AGENTNET_CA_FILE"),
        help="PEM file of the CA (or self-signed certificate) to trust for wss:// (or $AGENTNET_CA_FILE)",
    )
    p.add_argument("--state-dir", type=Path, help="where processed.jsonl lives (default: .agentnet/agents/NAME)")
    p.add_argument("--description", help="passport description shown to others")
    p.add_argument(
        "--log-level",
        default=os.environ.get("AGENTNET_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (default: $AGENTNET_LOG_LEVEL or info: a line per connect, disconnect, reconnect "
        "and replay, none per message); API keys are never logged",
    )
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=_run_agent)

    q = sub.add_parser(
        "ask",
        help="ask an agent something from the terminal and print the reply",
        description="Open a channel as --as to --to, post the question, print each reply, exit.",
    )
    q.add_argument("question", help='the prompt, e.g. "What is 12 times 11?"')
    q.add_argument("--hub", default="ws://127.0.0.1:8765/v1", help="hub URL, or several comma-separated")
    q.add_argument(
        "--as",
        dest="as_name",
        default="asker",
        help="who asks (default: asker); a name another connected process uses is refused unless --force",
    )
    q.add_argument(
        "--force",
        action="store_true",
        help="take over --as even if an agent of that name is connected (it is disconnected: impersonation)",
    )
    q.add_argument("--to", action="append", required=True, help="who answers (repeat for several)")
    q.add_argument(
        "--type",
        default="consulting",
        choices=["consulting", "conversation", "discussion", "workflow"],
        help="the kind of channel the question opens (default: consulting: closes once every target answered)",
    )
    q.add_argument("--token", default=os.environ.get("AGENTNET_TOKEN"), help="API key (or $AGENTNET_TOKEN)")
    q.add_argument(
        "--ca-file",
        default=os.environ.get("AGENTNET_CA_FILE"),
        help="PEM file of the CA (or self-signed certificate) to trust for wss:// (or $AGENTNET_CA_FILE)",
    )
    q.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the replies (default: 30)")
    q.add_argument("--json", action="store_true", help="print the reply envelopes as JSON lines")
    q.add_argument(
        "--log-level",
        default=os.environ.get("AGENTNET_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
        help="log level (default: $AGENTNET_LOG_LEVEL or warning); API keys are never logged",
    )
    q.set_defaults(run=_run_ask)


def _run_agent(args: argparse.Namespace) -> int:
    import re

    from agentnet.agents.brains import BrainConfigError, make_brain
    from agentnet.child import exit_with_parent_if_asked, fail
    from agentnet.client import HubError, HubURLError, hub_urls
    from agentnet.protocol.models import NAME_PATTERN

    try:
        hub_urls(args.hub)
    except HubURLError as exc:
        return fail(f"--hub {exc}")
    if not re.match(NAME_PATTERN, args.name):
        return fail(f"--name {args.name!r}: use 1-64 of a-z 0-9 _ . - starting with a letter or digit")
    try:
        options: dict[str, Any] = orjson.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError("must be a JSON object")
    except (orjson.JSONDecodeError, ValueError) as exc:
        return fail(f"--options is not a JSON object: {exc}")
    try:
        brain = make_brain(args.brain, options, agent=args.name)
    except BrainConfigError as exc:
        return fail(str(exc))
    exit_with_parent_if_asked(args)
    passport = {
        "description": args.description or f"{args.brain} brain",
        "capabilities": [args.brain],
        "meta": {"brain": args.brain, "pid": os.getpid()},
    }
    from .runtime import AgentRuntime

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runtime = AgentRuntime(
            args.name,
            args.hub,
            brain,
            token=args.token,
            state_dir=args.state_dir,
            passport=passport,
            ca_file=args.ca_file,
        )
        try:
            await runtime.run(stop, wait_for_hub=True)
        finally:
            superseded.append(runtime.client.hub.close_code == CloseCode.SUPERSEDED)

    superseded: list[bool] = []
    try:
        asyncio.run(main())
    except HubError as exc:
        if superseded and superseded[0]:
            print(
                f"agentnet agent {args.name}: another process connected as {args.name!r} and took over this "
                f"name; exiting ({exc.message})",
                file=sys.stderr,
            )
            return EXIT_SUPERSEDED
        print(f"agentnet agent {args.name}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _run_ask(args: argparse.Namespace) -> int:
    from agentnet.client import AgentClient, HubError, HubURLError, hub_urls

    try:
        hub_urls(args.hub)
    except HubURLError as exc:
        print(f"agentnet ask: --hub {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        targets = [t for item in args.to for t in item.split(",") if t]
        takeover = None if args.force else False  # never silently replace a connected agent
        async with AgentClient(args.hub, args.as_name, token=args.token, takeover=takeover, ca_file=args.ca_file) as me:
            async with asyncio.timeout(args.timeout):
                channel = await me.open(args.type, targets, topic=args.question[:100])
                question = await channel.send(args.question)
                waiting = set(targets)
                after = question.seq
                while waiting:
                    env = await me.wait_for_channel_event(
                        channel.id,
                        lambda e, a=after: e.seq > a and e.causation_id == question.envelope_id and e.sender in waiting,
                        timeout=args.timeout,
                    )
                    after = env.seq
                    waiting.discard(env.sender)
                    if args.json:
                        print(env.model_dump_json())
                    elif len(targets) == 1:
                        print(env.text if env.text is not None else orjson.dumps(env.data).decode())
                    else:
                        print(f"{env.sender}: {env.text}")
        return 0

    try:
        return asyncio.run(main())
    except TimeoutError:
        print(f"agentnet ask: no reply from {', '.join(args.to)} within {args.timeout:g} s", file=sys.stderr)
        return 1
    except HubError as exc:
        if exc.code == "conflict" and not args.force:
            print(
                f"agentnet ask: {exc.message}. Ask under another name (--as NAME; the default is 'asker'), "
                "or pass --force to take over that agent's session (it is disconnected)",
                file=sys.stderr,
            )
            return 1
        print(f"agentnet ask: {exc.message}", file=sys.stderr)
        return 1
