"""An ordinary ag2 1.2.1 agent program (run it with .venv-ag2/bin/python); nothing in it knows agentnet.

The only line that names the hub is the URL: ag2's `HubClient(WsLink(url))` with agentnet's hub at
`ws://HOST:PORT/` (or `/ag2`) instead of ag2's `serve_ws`. The models are scripted (ag2.testing.TestConfig)
so the demo needs no LLM:

    ag2_agent.py respond --url ws://127.0.0.1:8765/ --name bob --reply "42"
        answers every question with --reply (ag2's default notify handler runs the model)
    ag2_agent.py delegate --url ws://127.0.0.1:8765/ --name alice --target calc --prompt "What is 12 times 11?"
        its model calls the `delegate` tool once (a consulting channel to --target), then it stays online
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from ag2 import Agent
from ag2.events import ToolCallEvent
from ag2.network import AuthBlock, HubClient, Passport, Resume, WsLink
from ag2.testing import TestConfig


def passport(name: str) -> Passport:
    token = os.environ.get("AGENTNET_TOKEN")  # set by `agentnet up` when the scenario's hub has auth on
    if token:
        return Passport(name=name, auth=AuthBlock(scheme="api_key", claim={"token": token}))
    return Passport(name=name)


async def main(args: argparse.Namespace) -> None:
    if args.command == "respond":
        model = TestConfig(*[args.reply] * 10_000)
    else:
        call = ToolCallEvent(name="delegate", arguments=json.dumps({"target": args.target, "prompt": args.prompt}))
        model = TestConfig(call, "asked", *["nothing to add"] * 10_000)
    agent = Agent(args.name, config=model)
    hub = HubClient(WsLink(args.url))
    # attach = register the first time, re-bind (and get what was missed) after a restart
    await hub.attach(agent, args.name, passport=passport(args.name), resume=Resume(summary=args.command))
    print(f"{args.name}: attached to {args.url}", flush=True)
    if args.command == "delegate":
        reply = await agent.ask(f"Ask {args.target}: {args.prompt}")
        print(f"{args.name}: delegated to {args.target}; model said {reply.body!r}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await hub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["respond", "delegate"])
    parser.add_argument("--url", required=True, help="the hub, e.g. ws://127.0.0.1:8765/")
    parser.add_argument("--name", required=True)
    parser.add_argument("--reply", default="42")
    parser.add_argument("--target", default="calc")
    parser.add_argument("--prompt", default="What is 12 times 11?")
    asyncio.run(main(parser.parse_args()))
