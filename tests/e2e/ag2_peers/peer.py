"""A real ag2 1.2.1 client for the tests: run with .venv-ag2/bin/python, never imported by agentnet.

Every subcommand uses ag2's own public client (`HubClient(WsLink(url))`, `AgentClient`, `Channel`, the
`delegate` tool) with a scripted model (`ag2.testing.TestConfig`), and prints what happened as JSON
lines on stdout:

    peer.py serve    --url U --name bob [--reply TEXT] [--attach] [--since ''|none|ID]  (until SIGTERM)
    peer.py consult  --url U --name alice --target bob --prompt TEXT                    (open + send + wait)
    peer.py delegate --url U --name alice --target bob --prompt TEXT                    (the LLM calls delegate)
    peer.py count    --url U --name bob [--attach]   (receives everything, prints each text, acks; no LLM)
    peer.py bigwal   --url U --name alice --target bob --posts N --size BYTES  (a conversation past 1 MiB)
    peer.py discuss  --url U --name dana --target p1,p2 --turns 7   (a round-robin discussion, then close)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from ag2 import Agent
from ag2.events import ToolCallEvent, ToolResultEvent
from ag2.network import AuthBlock, HubClient, Passport, Resume, WsLink
from ag2.network.client.agent_client import AgentClient
from ag2.network.envelope import EV_CHANNEL_CLOSED, EV_TEXT
from ag2.stream import MemoryStream
from ag2.testing import TestConfig


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def passport(name: str, token: str | None) -> Passport:
    if token is None:
        return Passport(name=name)
    return Passport(name=name, auth=AuthBlock(scheme="api_key", claim={"token": token}))


async def join(args: argparse.Namespace, agent: Agent, hub: HubClient) -> AgentClient:
    pp = passport(args.name, args.token)
    if args.attach:
        since = None if args.since == "none" else args.since
        return await hub.attach(agent, args.name, passport=pp, resume=Resume(), since_envelope_id=since)
    return await hub.register(agent, pp, Resume(summary=f"ag2 test peer {args.name}"))


async def until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(args: argparse.Namespace) -> None:
    """An ag2 agent with the default notify handler: answers every turn with --reply."""
    hub = HubClient(WsLink(args.url))
    agent = Agent(args.name, config=TestConfig(*[args.reply] * 1000))
    client = await join(args, agent, hub)
    say("ready", agent_id=client.agent_id, pid=os.getpid())
    await until_stopped()
    await hub.shutdown()  # unregister, then close: what an ag2 app does on its way out


async def consult(args: argparse.Namespace) -> None:
    """AgentClient.open + Channel.send + wait_for_channel_event, as an ag2 app would consult a peer."""
    hub = HubClient(WsLink(args.url))
    client = await join(args, Agent(args.name, config=TestConfig("unused")), hub)
    channel = await client.open(type="consulting", target=args.target)
    client.ensure_channel_inbox(channel.channel_id)
    client._suppress_handler(channel.channel_id)  # this app reads the reply itself
    target_id = (await hub.get_agent(args.target)).agent_id
    prompt_id = await channel.send(args.prompt, audience=[target_id])
    reply = await client.wait_for_channel_event(
        channel_id=channel.channel_id,
        predicate=lambda e: e.event_type == EV_TEXT and e.sender_id == target_id,
        timeout=args.timeout,
    )
    closed = await client.wait_for_channel_event(
        channel_id=channel.channel_id, predicate=lambda e: e.event_type == EV_CHANNEL_CLOSED, timeout=args.timeout
    )
    info = await channel.info()
    say(
        "reply",
        text=reply.event_data.get("text"),
        causation_id=reply.causation_id,
        prompt_id=prompt_id,
        channel_id=channel.channel_id,
        closed_reason=closed.event_data.get("reason"),
        state=info.state.value,
    )
    await hub.close()


async def delegate(args: argparse.Namespace) -> None:
    """A scripted model whose first turn calls the `delegate` tool (NetworkPlugin), then answers."""
    call = ToolCallEvent(name="delegate", arguments=json.dumps({"target": args.target, "prompt": args.prompt}))
    hub = HubClient(WsLink(args.url))
    agent = Agent(args.name, config=TestConfig(call, "done"))
    await join(args, agent, hub)
    stream = MemoryStream()
    reply = await agent.ask("ask your peer", stream=stream)
    results = [e for e in await stream.history.get_events() if isinstance(e, ToolResultEvent)]
    say("delegated", tool_results=[str(e.result) for e in results], final=reply.body)
    await hub.close()


async def count(args: argparse.Namespace) -> None:
    """A receiver app: its own handler (installed before attach, so replays reach it) prints each text."""

    async def record(self: AgentClient, envelope: Any) -> None:
        say("got", text=envelope.event_data.get("text"), type=envelope.event_type, id=envelope.envelope_id)

    AgentClient._run_default_handler = record  # type: ignore[method-assign]
    stopped = asyncio.ensure_future(until_stopped())
    while True:
        # ag2's HubClient never reconnects by itself: when the hub drops the socket, this app makes a
        # new one and attaches (since_envelope_id=""), which is how an ag2 deployment recovers.
        hub = HubClient(WsLink(args.url))
        client = await join(args, Agent(args.name, config=TestConfig("unused")), hub)
        args.attach = True
        say("ready", agent_id=client.agent_id, pid=os.getpid())
        assert hub._receive_task is not None
        done, _ = await asyncio.wait([stopped, hub._receive_task], return_when=asyncio.FIRST_COMPLETED)
        if stopped in done:
            await hub.close()
            return
        say("dropped")
        await hub.close()


async def bigwal(args: argparse.Namespace) -> None:
    """Fill a conversation's WAL past 1 MiB, then read it the way ag2's handler does (read_wal since=0)."""
    hub = HubClient(WsLink(args.url), rpc_timeout=20)
    client = await join(args, Agent(args.name, config=TestConfig("unused")), hub)
    channel = await client.open(type="conversation", target=args.target)
    client._suppress_handler(channel.channel_id)
    body = "x" * args.size
    for i in range(args.posts):
        await channel.send(f"{i} {body}", event_type="note", event_data={"text": f"{i} {body}"})
    wal = await hub.read_wal(channel.channel_id)
    first = await hub.read_wal(channel.channel_id, since=0, until=3)
    again = await hub.get_channel(channel.channel_id)  # the socket is still open: later calls work
    size = sum(len(json.dumps(e.to_dict())) for e in wal)
    say(
        "read",
        count=len(wal),
        bytes=size,
        last=wal[-1].event_data.get("text", "")[:8] if wal else None,
        first=[e.event_type for e in first],
        state=again.state.value,
    )
    await hub.close()


async def discuss(args: argparse.Namespace) -> None:
    """Open a round-robin discussion with --target (comma-separated); every participant, this one
    included, answers its turns with ag2's default handler; after --turns texts, close it."""
    hub = HubClient(WsLink(args.url))
    client = await join(args, Agent(args.name, config=TestConfig(*[f"{args.name} again"] * 100)), hub)
    targets = args.target.split(",")
    channel = await client.open(type="discussion", target=targets, knobs={"ordering": "round_robin"})
    await channel.send(args.prompt)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    while True:
        texts = [e for e in await hub.read_wal(channel.channel_id) if e.event_type == EV_TEXT]
        if len(texts) >= args.turns or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    closed = await channel.close(reason="enough")
    names = await hub._rpc("names_for", {"agent_ids": [e.sender_id for e in texts]})
    say("discussed", speakers=[names[e.sender_id] for e in texts][: args.turns], state=closed.state.value)
    await hub.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["serve", "consult", "delegate", "count", "bigwal", "discuss"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--token")
    parser.add_argument("--target")
    parser.add_argument("--prompt", default="what is 6*7?")
    parser.add_argument("--reply", default="42 is the answer")
    parser.add_argument("--attach", action="store_true")
    parser.add_argument("--since", default="")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--turns", type=int, default=7)
    args = parser.parse_args()
    try:
        asyncio.run(globals()[args.command](args))
    except Exception as exc:  # one line the test can show
        say("error", type=type(exc).__name__, message=str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
