"""A test-only program built on the agentnet SDK: a stream sender, a stream receiver or an observer.

    stream_peer.py send    --url U[,U2...] --name alice --to bob --count N --log ops.jsonl --channel-file F --done F
    stream_peer.py recv    --url U --name bob --log processed.jsonl --ready F
    stream_peer.py observe --url U --name watcher --log events.jsonl --ready F

The sender posts N `note` envelopes with payload `{"n": i}` and the idempotency key `<run>-<i>`,
`--concurrency` posts in flight at a time, through `Channel.send` (which retries across reconnects
with the same key). Every post the hub answered ok is logged: `{"t", "n", "channel", "seq",
"envelope_id", "duplicate"}`.

The receiver logs every delivery, flushed and fsynced **before** the handler returns (the SDK acks
after that): `{"t", "wall", "pid", "channel", "seq", "envelope_id", "attempt", "session", "sender", "n"}`,
`session` counting this process's connections. SIGUSR1
drops its connection abruptly (TCP abort, no closing handshake); the SDK reconnects.

The observer logs the snapshot and every event it is shown, one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from agentnet.client import AgentClient, Delivery, ObserverClient


def write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


class Log:
    """Append-only JSON Lines; `durable=True` fsyncs every record before returning."""

    def __init__(self, path: str, durable: bool) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.durable = durable

    def write(self, record: dict) -> None:
        os.write(self.fd, orjson.dumps(record) + b"\n")
        if self.durable:
            os.fsync(self.fd)


def keepalive(args: argparse.Namespace) -> dict:
    """--ping S: ping the hub every S seconds and give up on it after 2 S without a pong (a frozen
    hub is noticed that fast; the SDK's defaults are 5 s and 10 s)."""
    if not args.ping:
        return {}
    return {"ping_interval": args.ping, "ping_timeout": 2 * args.ping, "request_timeout": 4 * args.ping + 5}


def cancel_on_signals(main: asyncio.Task) -> None:
    """SIGTERM/SIGINT end the program cleanly (the SDK closes its connection, exit status 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)


async def send(args: argparse.Namespace) -> int:
    log = Log(args.log, durable=False)
    agent = AgentClient(args.url, args.name, token=args.token, **keepalive(args))
    await agent.start()
    try:
        if args.channel:
            channel = await agent.channel(args.channel)
        else:
            channel = await agent.open("conversation", args.to, topic=f"stream {args.run}")
        write_atomically(args.channel_file, channel.id)
        todo = iter(range(args.count))
        pad = "p" * args.pad

        async def worker() -> None:
            for n in todo:
                r = await channel.send(
                    data={"n": n, "run": args.run, "pad": pad} if pad else {"n": n, "run": args.run},
                    type="note",
                    idempotency_key=f"{args.run}-{n}",
                    timeout=args.post_timeout,
                )
                log.write(
                    {
                        "t": time.monotonic(),
                        "n": n,
                        "channel": channel.id,
                        "seq": r.seq,
                        "envelope_id": r.envelope_id,
                        "duplicate": r.duplicate,
                    }
                )

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        write_atomically(args.done, str(args.count))
    finally:
        await agent.close()
    return 0


async def recv(args: argparse.Namespace) -> int:
    log = Log(args.log, durable=True)
    pid = os.getpid()

    async def handler(d: Delivery) -> None:
        env = d.envelope
        log.write(
            {
                "t": time.monotonic(),
                "wall": time.time(),  # to compare with the hub's receipt times (same host clock)
                "pid": pid,
                "channel": env.channel_id,
                "seq": env.seq,
                "envelope_id": env.envelope_id,
                "attempt": d.attempt,
                "session": agent.hub.connections,  # 1 for the first connection, +1 per reconnect
                "sender": env.sender,
                "n": env.data.get("n"),
            }
        )

    agent = AgentClient(args.url, args.name, token=args.token, handler=handler, **keepalive(args))
    await agent.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(agent.hub.disconnect_abruptly()))
    write_atomically(args.ready, str(pid))
    try:
        await asyncio.Event().wait()  # until SIGTERM
    finally:
        await agent.close()
    return 0


async def observe(args: argparse.Namespace) -> int:
    log = Log(args.log, durable=False)
    async with ObserverClient(args.url, args.name, token=args.token) as feed:
        first = True
        async for kind, item in feed:
            log.write({"kind": kind, **item} if kind == "snapshot" else item)
            if first:
                write_atomically(args.ready, str(os.getpid()))
                first = False
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stream_peer")
    p.add_argument("mode", choices=["send", "recv", "observe"])
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--token")
    p.add_argument("--log", required=True)
    p.add_argument("--ready", help="recv/observe: written once connected")
    p.add_argument("--to", help="send: the receiver")
    p.add_argument("--channel", help="send: post into this existing channel instead of opening one")
    p.add_argument("--channel-file", help="send: the channel id is written here")
    p.add_argument("--done", help="send: written when every post was answered ok")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--run", default="run")
    p.add_argument("--post-timeout", type=float, default=60.0)
    p.add_argument("--pad", type=int, default=0, help="send: add this many bytes to each envelope's data")
    p.add_argument("--ping", type=float, help="keepalive ping interval (pong timeout: twice that)")
    p.add_argument("--log-level", help="log to stderr at this level (with the SDK's redaction filter)")
    args = p.parse_args(argv)
    if args.log_level:
        import logging

        from agentnet.protocol import redact

        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
        redact.install()  # what an SDK user does: the SDK registers its token, the filter masks it

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        cancel_on_signals(task)
        try:
            return await {"send": send, "recv": recv, "observe": observe}[args.mode](args)
        except asyncio.CancelledError:
            return 0

    return asyncio.run(runner())


if __name__ == "__main__":
    sys.exit(main())
