"""An unmodified AutoGen 0.7.5 worker for tests, the bench and scenarios (run it with a Python that
has `autogen-ext[grpc]==0.7.5`, e.g. `.venv-autogen/bin/python`; agentnet never imports it).

    python demo_worker.py --host 127.0.0.1:50051 --serve echo --topic news

serves agent type `echo` (answers `Ping` RPCs with `Pong`, prints each `News` event it gets as a
JSON line on stdout) subscribed to topic type `news`, then reads commands, one JSON object a line,
on stdin and answers each with one JSON line on stdout:

    {"cmd": "rpc", "target": "echo", "text": "hi", "timeout": 5}
    {"cmd": "publish", "topic": "news", "text": "hello", "n": 1}
    {"cmd": "bench", "target": "echo", "count": 1000, "in_flight": 1, "size": 150}
    {"cmd": "stop"}

It works the same against AutoGen's own host (`--own-host PORT` starts one in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import sys
import time
from dataclasses import dataclass

from autogen_core import (
    AgentId,
    MessageContext,
    RoutedAgent,
    TopicId,
    TypeSubscription,
    message_handler,
    try_get_known_serializers_for_type,
)
from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime, GrpcWorkerAgentRuntimeHost


@dataclass
class Ping:
    text: str


@dataclass
class Pong:
    text: str


@dataclass
class News:
    text: str
    n: int


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Echo(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("echoes pings, prints news")
        self.delay = float(os.environ.get("DEMO_WORKER_DELAY", "0"))

    @message_handler
    async def on_ping(self, message: Ping, ctx: MessageContext) -> Pong:
        if self.delay:
            await asyncio.sleep(self.delay)
        return Pong(f"{self.id.type}: {message.text}")

    @message_handler
    async def on_news(self, message: News, ctx: MessageContext) -> None:
        emit({"event": "news", "type": self.id.type, "key": self.id.key, "n": message.n, "text": message.text})


async def bench(runtime: GrpcWorkerAgentRuntime, target: AgentId, count: int, in_flight: int, size: int) -> dict:
    text = "x" * max(0, size - 12)
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def one_caller() -> None:
        nonlocal sent, errors
        while sent < count:
            sent += 1
            t0 = time.perf_counter()
            try:
                await runtime.send_message(Ping(text), target)
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one_caller() for _ in range(in_flight)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3) if latencies else 0.0

    return {"rps": round(count / elapsed, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", help="host address, e.g. 127.0.0.1:50051")
    ap.add_argument("--own-host", type=int, help="start AutoGen's GrpcWorkerAgentRuntimeHost on this port instead")
    ap.add_argument("--serve", action="append", default=[], help="agent type to serve (repeatable)")
    ap.add_argument("--topic", action="append", default=[], help="topic type the served types subscribe to")
    ap.add_argument(
        "--subscribe-after",
        type=float,
        metavar="SECONDS",
        help="add the --topic subscriptions this long after registering the types (AutoGen's usual order), "
        "not before (default: before)",
    )
    ap.add_argument("--deadline", type=float, help="ask the gateway for this RPC deadline (seconds)")
    ap.add_argument("--exit-on-eof", action="store_true", help="stop when stdin closes (default: keep serving)")
    ap.add_argument("--rpc", help="drive: each round, send a Ping to this agent type and print the answer")
    ap.add_argument("--publish", help="drive: each round, publish News(n) to this topic type")
    ap.add_argument("--rounds", type=int, default=0, help="drive: rounds, then keep serving (default: 0)")
    ap.add_argument("--interval", type=float, default=0.5, help="drive: seconds between rounds (default: 0.5)")
    args = ap.parse_args()

    if args.own_host is not None:
        host = GrpcWorkerAgentRuntimeHost(address=f"127.0.0.1:{args.own_host}")
        host.start()
        emit({"ready": "host", "port": args.own_host})
        await asyncio.Event().wait()

    # Optional hints for agentnet's gateway, in the one place a worker can put them (AutoGen's host
    # ignores them): the name the worker shows in the dashboard, and how long its RPCs may wait.
    hints = []
    if os.environ.get("AGENTNET_AGENT_NAME"):
        hints.append(f"agentnet-worker={os.environ['AGENTNET_AGENT_NAME']}")
    if args.deadline:
        hints.append(f"agentnet-rpc-deadline={args.deadline}")
    extra = [("grpc.primary_user_agent", " ".join(hints))] if hints else None
    runtime = GrpcWorkerAgentRuntime(
        host_address=args.host or os.environ["AGENTNET_AUTOGEN_ADDRESS"], extra_grpc_config=extra
    )
    for cls in (Ping, Pong, News):
        runtime.add_message_serializer(try_get_known_serializers_for_type(cls))
    await runtime.start()
    for agent_type in args.serve:
        if args.subscribe_after is None:
            for topic in args.topic:
                await runtime.add_subscription(TypeSubscription(topic_type=topic, agent_type=agent_type))
        await Echo.register(runtime, agent_type, Echo)
    if args.subscribe_after is not None:
        await asyncio.sleep(args.subscribe_after)
        for agent_type in args.serve:
            for topic in args.topic:
                await runtime.add_subscription(TypeSubscription(topic_type=topic, agent_type=agent_type))
    emit({"ready": "worker", "serves": args.serve})
    for n in range(1, args.rounds + 1):
        if args.rpc:
            try:
                reply = await asyncio.wait_for(
                    runtime.send_message(Ping(f"ping {n}"), AgentId(args.rpc, "default")), 30
                )
                emit({"round": n, "rpc": "ok", "reply": reply.text})
            except Exception as exc:
                emit({"round": n, "rpc": "error", "error": f"{type(exc).__name__}: {exc}"[:300]})
        if args.publish:
            await runtime.publish_message(News(f"news {n}", n), TopicId(args.publish, "default"))
            emit({"round": n, "published": n})
        await asyncio.sleep(args.interval)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):  # no command pipe (e.g. /dev/null): serve
        await asyncio.Event().wait()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            if args.exit_on_eof:
                break
            await asyncio.Event().wait()
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "stop":
            break
        try:
            if op == "rpc":
                target = AgentId(cmd["target"], cmd.get("key", "default"))
                t0 = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(
                        runtime.send_message(Ping(cmd["text"]), target), cmd.get("timeout", 10)
                    )
                except Exception as exc:
                    ms = round((time.perf_counter() - t0) * 1000, 2)
                    emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "ms": ms})
                    continue
                emit({"ok": True, "reply": reply.text, "ms": round((time.perf_counter() - t0) * 1000, 2)})
            elif op == "subscribe":  # at run time: an agent type it serves, to one more topic
                await runtime.add_subscription(TypeSubscription(topic_type=cmd["topic"], agent_type=cmd["type"]))
                emit({"ok": True})
            elif op == "publish":
                topic = TopicId(cmd["topic"], cmd.get("source", "default"))
                await runtime.publish_message(News(cmd.get("text", ""), cmd.get("n", 0)), topic)
                emit({"ok": True})
            elif op == "bench":
                target = AgentId(cmd["target"], "default")
                emit({"ok": True, **await bench(runtime, target, cmd["count"], cmd["in_flight"], cmd["size"])})
            else:
                emit({"ok": False, "error": f"unknown command {op}"})
        except Exception as exc:
            emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]})
    emit({"stopped": True})
    os._exit(0)  # runtime.stop() can hang on a host that went away; the process ends here either way


if __name__ == "__main__":
    asyncio.run(main())
