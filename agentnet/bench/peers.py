"""The two load processes of `agentnet bench throughput`: a sender and a receiver, each an unmodified SDK agent.

    python -m agentnet.bench.peers receiver --url URL --name bench-rx --count N [--warmup W]
    python -m agentnet.bench.peers sender   --url URL --name bench-tx --to bench-rx --count N ...

They talk to the orchestrator (`agentnet.bench.throughput`) in JSON lines: events on stdout
(`ready`, `warm`, `progress`, `done`, `error`), commands on stdin (`go`; end of input = exit).

Every envelope carries `data = {"t": monotonic_ns at post, "i": index, "pad": random hex}`.
CLOCK_MONOTONIC is one clock for the whole machine on Linux, so the receiver subtracts the
sender's stamp from its own clock to get post->delivery latency.

Phases: the first W envelopes warm up (connections, caches, the allocator); once they are all
acked both peers say `warm` and the sender waits for `go`, so that the orchestrator can read the
hub's CPU counters exactly between the phases. Then N envelopes are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from typing import Any

import orjson

BENCH_TYPE = "bench"  # a non-turn envelope type: any participant may post it any number of times


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


def summarize(latencies_ns: list[int]) -> dict[str, float | None]:
    """p50/p90/p99/max/mean in milliseconds (nearest rank)."""
    if not latencies_ns:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    xs = sorted(latencies_ns)
    n = len(xs)

    def rank(p: float) -> float:
        return round(xs[min(n - 1, max(0, int(n * p + 0.5) - 1))] / 1e6, 3)

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(xs[-1] / 1e6, 3),
        "mean": round(sum(xs) / n / 1e6, 3),
    }


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _until_eof(stdin: asyncio.StreamReader) -> None:
    while await stdin.readline():
        pass


async def _unless_eof(stdin: asyncio.StreamReader, work: Any) -> bool:
    """Run `work` to its end (True), or stop it when stdin ends first (False): the orchestrator is
    stopping the run (Ctrl-C), so a peer leaves at once instead of finishing millions of envelopes."""
    work_task = asyncio.ensure_future(work)
    eof = asyncio.ensure_future(_until_eof(stdin))
    try:
        await asyncio.wait({work_task, eof}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work_task, eof):
            task.cancel()
        # Wait for the cancellations to land: a stdin read still pending would make the caller's next
        # read fail ("readuntil() called while another coroutine is already waiting").
        await asyncio.gather(work_task, eof, return_exceptions=True)
    if work_task.done() and not work_task.cancelled():
        work_task.result()  # its exception, if it failed
        return True
    return False


async def _progress(counter: Any, key: str, interval: float = 0.5) -> None:
    last = -1
    while True:
        await asyncio.sleep(interval)
        value = counter()
        if value != last:
            last = value
            emit("progress", **{key: value})


# --------------------------------------------------------------------------- receiver


async def run_receiver(a: argparse.Namespace) -> int:
    from agentnet.client import AgentClient, Delivery

    warmup, count = a.warmup, a.count
    latencies: list[int] = []
    seen: set[int] = set()
    acked: set[int] = set()
    warm_acked: set[int] = set()
    state: dict[str, Any] = {"first_post": None, "last_ack": None, "redelivered": 0}
    finished = asyncio.Event()

    async def handle(d: Delivery) -> None:
        now = time.monotonic_ns()
        env = d.envelope
        if env.type != BENCH_TYPE:
            return
        if d.attempt > 1:
            state["redelivered"] += 1
        i, t = env.data["i"], env.data["t"]
        if i >= warmup and i not in seen:
            seen.add(i)
            latencies.append(now - t)
            if state["first_post"] is None or t < state["first_post"]:
                state["first_post"] = t

    client = AgentClient(a.url, a.name, handler=handle, request_timeout=60.0)
    send_receipt = client.hub.send_receipt

    async def counted_receipt(envelope: dict[str, Any], status: str = "ack", reason: str | None = None) -> bool:
        sent = await send_receipt(envelope, status, reason)
        if sent and status == "ack" and envelope.get("type") == BENCH_TYPE:
            i = envelope["data"]["i"]
            if i < warmup:
                if i not in warm_acked:
                    warm_acked.add(i)
                    if len(warm_acked) == warmup:
                        emit("warm")
            elif i not in acked:
                acked.add(i)
                if len(acked) == count:
                    state["last_ack"] = time.monotonic_ns()
                    finished.set()
        return sent

    # Count what was acked, and when: the SDK queues a receipt for the write at the end of this turn
    # of the event loop, so "acked" is stamped a few microseconds before the bytes leave.
    client.hub.send_receipt = counted_receipt  # type: ignore[method-assign]
    stdin = await _stdin_reader()
    await client.start()
    emit("ready", pid=os.getpid())
    if warmup == 0:
        emit("warm")
    ticker = asyncio.create_task(_progress(lambda: len(acked), "acked"))
    try:
        if not await _unless_eof(stdin, finished.wait()):
            return 0
        ticker.cancel()
        elapsed_ns = state["last_ack"] - state["first_post"]
        emit(
            "done",
            acked=len(acked),
            first_post_ns=state["first_post"],
            last_ack_ns=state["last_ack"],
            elapsed_s=round(elapsed_ns / 1e9, 6),
            acked_per_s=round(len(acked) / (elapsed_ns / 1e9), 1) if elapsed_ns > 0 else None,
            delivery_ms=summarize(latencies),
            redelivered=state["redelivered"],
        )
        await _until_eof(stdin)
    finally:
        ticker.cancel()
        await client.close()
    return 0


# --------------------------------------------------------------------------- sender


async def run_sender(a: argparse.Namespace) -> int:
    from agentnet.client import AgentClient, HubError

    client = AgentClient(a.url, a.name, request_timeout=60.0)
    stdin = await _stdin_reader()
    await client.start()
    channel = await client.open("conversation", [a.to], topic="agentnet bench")
    emit("ready", pid=os.getpid(), channel_id=channel.id)

    total = a.warmup + a.count
    overhead = len(orjson.dumps({"t": time.monotonic_ns(), "i": total, "pad": ""}))
    pad_hex = max(0, a.size - overhead)
    pad_bytes = (pad_hex + 1) // 2
    posted = [0]

    async def phase(start: int, stop: int, latencies: list[int] | None) -> None:
        cursor = [start]

        async def worker() -> None:
            while cursor[0] < stop:
                i = cursor[0]
                cursor[0] = i + 1
                pad = random.randbytes(pad_bytes).hex()[:pad_hex]  # incompressible, without a syscall
                t0 = time.monotonic_ns()
                await channel.send(data={"t": t0, "i": i, "pad": pad}, type=BENCH_TYPE, timeout=120.0)
                if latencies is not None:
                    latencies.append(time.monotonic_ns() - t0)
                posted[0] += 1

        workers = min(a.in_flight, stop - start)
        await asyncio.gather(*(worker() for _ in range(workers)))

    ticker = asyncio.create_task(_progress(lambda: posted[0], "posted"))
    try:
        await phase(0, a.warmup, None)
        emit("warm")
        if (await stdin.readline()).strip() != b"go":
            return 0  # the orchestrator gave up
        latencies: list[int] = []
        t_go = time.monotonic_ns()
        if not await _unless_eof(stdin, phase(a.warmup, total, latencies)):
            return 0
        t_end = time.monotonic_ns()
        ticker.cancel()
        emit(
            "done",
            posted=len(latencies),
            elapsed_s=round((t_end - t_go) / 1e9, 6),
            ok_ms=summarize(latencies),
            data_bytes=overhead + pad_hex,
        )
        await _until_eof(stdin)
    except HubError as exc:
        emit("error", message=str(exc))
        return 1
    finally:
        ticker.cancel()
        await client.close()
    return 0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agentnet.bench.peers")
    p.add_argument("role", choices=["sender", "receiver"])
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--to", help="sender: the receiver's name")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--in-flight", type=int, default=64)
    p.add_argument("--size", type=int, default=200)
    a = p.parse_args(argv)

    from agentnet.child import exit_with_parent

    exit_with_parent()
    run = run_sender if a.role == "sender" else run_receiver
    try:
        return asyncio.run(run(a))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # tell the orchestrator why, in one line
        with contextlib.suppress(Exception):
            emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
