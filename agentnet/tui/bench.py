"""``agentnet bench tui``: the dashboard against a synthetic event stream.

The stream looks like a busy hub: agents post into channels, the hub delivers to every recipient,
recipients ack, cursors move; now and then an agent drops and is replayed, nacks and dead letters
happen. The dashboard runs headless (``App.run_test``) at a fixed size with its normal 10 Hz refresh,
and the feed is pushed as fast as the app will take it. Measured:

* ``events_per_s`` — items applied to the model *and* rendered by the steady refresh, end to end;
* ``key_latency_ms`` — how long key presses take to be handled while the stream is running;
* ``rss_mb`` — the process's resident memory after all events (bounded by the ring buffers);
* ``model_events_per_s`` — the pure model alone, for comparison.

It runs with the same garbage-collector setting as ``run_dashboard`` (:func:`relaxed_gc`).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import psutil

from agentnet.run.items import FeedItem
from agentnet.tui.model import DashboardModel

BASE = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(BASE + t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic_stream(
    events: int, *, agents: int = 8, channels: int = 4, rate: float = 5_000.0, seed: int = 7
) -> Iterator[FeedItem]:
    """A deterministic stream of ``events`` hub events (after one snapshot), ``rate`` per second of
    event time."""
    rng = random.Random(seed)
    names = [f"agent-{index}" for index in range(agents)]
    chans = [f"ch-{index}" for index in range(channels)]
    members = {ch: rng.sample(names, k=min(len(names), 3)) for ch in chans}
    heads = dict.fromkeys(chans, 0)
    floors: dict[tuple[str, str], int] = {}
    yield (
        "snapshot",
        {
            "hub": {"hub_id": "bench", "started_at": _iso(0), "store": "memory", "event_seq": 0},
            "agents": [
                {"name": n, "agent_id": f"id-{n}", "role": "agent", "connected": True, "session_id": f"s-{n}"}
                for n in names
            ],
            "channels": [
                {
                    "channel_id": ch,
                    "type": "discussion",
                    "topic": f"topic {ch}",
                    "creator": members[ch][0],
                    "participants": members[ch],
                    "state": "open",
                    "head_seq": 0,
                    "created_at": _iso(0),
                }
                for ch in chans
            ],
            "cursors": [],
        },
    )
    seq = 0
    t = 0.0
    step = 1.0 / rate

    def event(type_: str, **fields: Any) -> FeedItem:
        nonlocal seq, t
        seq += 1
        t += step
        return ("event", {"kind": "event", "event_seq": seq, "at": _iso(t), "type": type_, **fields})

    while seq < events:
        ch = rng.choice(chans)
        sender = rng.choice(members[ch])
        heads[ch] += 1
        n = heads[ch]
        envelope_id = f"{ch}-{n}"
        yield event(
            "wal.append",
            envelope={
                "envelope_id": envelope_id,
                "channel_id": ch,
                "seq": n,
                "sender": sender,
                "audience": None,
                "type": "text",
                "data": {"text": f"message {n} from {sender}: " + "lorem ipsum " * rng.randint(1, 6)},
                "causation_id": None,
                "idempotency_key": None,
                "created_at": _iso(t),
            },
        )
        for who in members[ch]:
            if who == sender or seq >= events:
                continue
            roll = rng.random()
            if roll < 0.01:
                yield event("agent.disconnected", name=who, session_id=f"s-{who}", code=1006, reason="lost")
                yield event("agent.connected", name=who, agent_id=f"id-{who}", session_id=f"s-{who}", role="agent")
                yield event("replay.start", recipient=who, count=1)
                yield event(
                    "deliver", recipient=who, channel_id=ch, seq=n, envelope_id=envelope_id, attempt=2, reason="replay"
                )
                yield event("replay.end", recipient=who, count=1)
            else:
                yield event(
                    "deliver", recipient=who, channel_id=ch, seq=n, envelope_id=envelope_id, attempt=1, reason="first"
                )
            if roll > 0.995:
                yield event(
                    "nack", recipient=who, channel_id=ch, seq=n, envelope_id=envelope_id, attempt=1, reason="busy"
                )
                yield event(
                    "dead_letter",
                    recipient=who,
                    channel_id=ch,
                    seq=n,
                    envelope_id=envelope_id,
                    attempts=5,
                    reason="busy",
                )
            else:
                yield event("ack", recipient=who, channel_id=ch, seq=n, envelope_id=envelope_id)
            floors[(who, ch)] = n
            yield event(
                "cursor", recipient=who, channel_id=ch, ack_floor=n, delivered_seq=n, inflight=0, lag=heads[ch] - n
            )


async def _feed(events: int, pace: float | None = None, **kwargs: Any) -> AsyncIterator[FeedItem]:
    """The synthetic stream; with `pace`, at most that many items per second of wall time."""
    start = time.perf_counter()
    for count, item in enumerate(synthetic_stream(events, **kwargs)):
        if count == 1:  # the clock starts after the snapshot has been taken in
            start = time.perf_counter()
        if pace and count % 10 == 0:
            ahead = start + count / pace - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
        yield item


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def model_rate(events: int, **stream: Any) -> float:
    """Events per second the pure model applies (no UI)."""
    model = DashboardModel()
    items = list(synthetic_stream(events, **stream))
    start = time.perf_counter()
    for item in items:
        model.apply(item)
    return len(items) / (time.perf_counter() - start)


def _time_the_follow_key(app: Any) -> tuple[list[float], list[float]]:
    """Key latency: from a key event entering the app's queue (the caller appends the time it sent
    the key to `sent`) to the follow action running (appended to `latencies`)."""
    sent: list[float] = []
    latencies: list[float] = []
    original_follow = app.action_follow

    def timed_follow() -> None:
        if sent:
            latencies.append(time.perf_counter() - sent.pop(0))
        original_follow()

    app.action_follow = timed_follow
    return sent, latencies


async def _run(
    events: int, size: tuple[int, int], key_interval: float, pace: float | None = None, **stream: Any
) -> dict[str, Any]:
    from textual import events as textual_events

    from agentnet.tui.app import DashboardApp  # Textual only when benchmarking the app

    gc.collect()
    rss_before = _rss_mb()
    app = DashboardApp(_feed(events, pace, **stream), None, title="bench tui")
    syncs = 0
    original_sync = app.sync_views

    def counting_sync(*, tables: bool = True) -> None:
        nonlocal syncs
        syncs += 1
        original_sync(tables=tables)

    app.sync_views = counting_sync  # type: ignore[method-assign]
    sent, latencies = _time_the_follow_key(app)
    async with app.run_test(size=size) as pilot:
        attach_start = time.perf_counter()
        if pace:  # a paced run times keys once the dashboard has attached (its first snapshot shown)
            while not app.model.snapshots and not app.feed_done.is_set():
                await asyncio.sleep(0.01)
            app.sync_views()
            await pilot.pause()
        attach_s = time.perf_counter() - attach_start
        start = time.perf_counter()
        while not app.feed_done.is_set():
            sent.append(time.perf_counter())
            app.post_message(textual_events.Key("f", "f"))
            try:
                await asyncio.wait_for(app.feed_done.wait(), key_interval)
            except TimeoutError:
                pass
        app.sync_views()
        await pilot.pause()
        elapsed = time.perf_counter() - start
        cpu_start = time.process_time()
        app.sync_views()
        await pilot.pause()
        render_ms = (time.process_time() - cpu_start) * 1000
        model = app.model
        gc.collect()
        rss_after = _rss_mb()
        result = {
            "events": model.events_total,
            "items": model.items_total,
            "seconds": round(elapsed, 3),
            "events_per_s": round(model.items_total / elapsed),
            "attach_seconds": round(attach_s, 3),
            "channels": len(model.channels),
            "agents": len(model.agents),
            "refreshes": syncs,
            "refresh_hz": round(syncs / elapsed, 1),
            "render_ms": round(render_ms, 2),
            "key_presses": len(latencies),
            "key_latency_ms": {
                "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "p95": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 1) if latencies else None,
                "max": round(max(latencies) * 1000, 1) if latencies else None,
            },
            "rss_mb": round(rss_after, 1),
            "rss_growth_mb": round(rss_after - rss_before, 1),
            "buffers": {
                "envelopes": len(model.envelopes),
                "envelopes_max": model.envelopes.maxlen,
                "log": len(model.log),
                "arrows": len(model.arrows),
                "arrows_max": model.arrows.maxlen,
            },
        }
    return result


async def _attached(url: str, seconds: float, size: tuple[int, int], key_interval: float) -> dict[str, Any]:
    """The real dashboard attached to the hub at `url` as an observer (its paged snapshot, then the
    live event stream) for `seconds` after it attached, a key pressed every `key_interval`."""
    from textual import events as textual_events

    from agentnet.client import ObserverClient
    from agentnet.tui.app import DashboardApp

    started = time.perf_counter()  # attach = connect + every snapshot page + applied + painted
    async with ObserverClient(url, "bench-dashboard", max_size=2**20) as observer:
        app = DashboardApp(observer.__aiter__(), None, title="bench scale")
        sent, latencies = _time_the_follow_key(app)
        async with app.run_test(size=size) as pilot:
            while not app.model.snapshots:
                await asyncio.sleep(0.01)
            app.sync_views()
            await pilot.pause()
            attach_s = time.perf_counter() - started
            events_before = app.model.events_total
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                sent.append(time.perf_counter())
                app.post_message(textual_events.Key("f", "f"))
                await asyncio.sleep(key_interval)
            elapsed = time.perf_counter() - start
            await pilot.pause()
            model = app.model
            title = str(app.query_one("#channels").border_title)
            result = {
                "attach_seconds": round(attach_s, 3),
                "channels_title": title,
                "total_channels": model.total_channels,
                "total_agents": model.total_agents,
                "channels_in_model": len(model.channels),
                "events_per_s": round((model.events_total - events_before) / elapsed),
                "key_presses": len(latencies),
                "key_latency_ms": {
                    "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                    "p95": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 1) if latencies else None,
                    "max": round(max(latencies) * 1000, 1) if latencies else None,
                },
                "rss_mb": round(_rss_mb(), 1),
            }
    return result


def run_attached_bench(
    url: str, seconds: float = 30.0, *, size: tuple[int, int] = (120, 36), key_interval: float = 0.1
) -> dict[str, Any]:
    """Attach the dashboard to a running hub and time keys while whatever streams there streams."""
    from agentnet.tui.app import relaxed_gc  # as run_dashboard does

    with relaxed_gc():
        return asyncio.run(_attached(url, seconds, size, key_interval))


def run_tui_bench(
    events: int = 100_000,
    *,
    size: tuple[int, int] = (120, 36),
    key_interval: float = 0.1,
    model_only_events: int = 50_000,
    agents: int = 8,
    channels: int = 4,
    pace: float | None = None,
) -> dict[str, Any]:
    """Run the dashboard benchmark; returns a dict of figures (see the module docstring).

    `agents` / `channels`: the hub's size in the first snapshot; `pace`: feed at most that many
    items per second (None: as fast as the app takes them)."""
    from agentnet.tui.app import relaxed_gc  # as run_dashboard does

    with relaxed_gc():
        model_events_per_s = round(model_rate(min(events, model_only_events), agents=agents, channels=channels))
        result = asyncio.run(_run(events, size, key_interval, pace, agents=agents, channels=channels))
    result["model_events_per_s"] = model_events_per_s
    return result


def format_result(result: dict[str, Any]) -> str:
    keys = result["key_latency_ms"]
    buffers = result["buffers"]
    return "\n".join(
        [
            f"dashboard kept up with {result['events_per_s']:,} events/s "
            f"({result['items']:,} items in {result['seconds']} s, {result['refreshes']} refreshes)",
            f"pure model: {result['model_events_per_s']:,} events/s",
            f"keys while streaming: p50 {keys['p50']} ms, p95 {keys['p95']} ms, max {keys['max']} ms "
            f"({result['key_presses']} presses)",
            f"refresh: {result['refresh_hz']} Hz while streaming; one full refresh {result['render_ms']} ms CPU",
            f"memory after {result['events']:,} events: RSS {result['rss_mb']} MB (+{result['rss_growth_mb']} MB); "
            f"buffers: {buffers['envelopes']:,}/{buffers['envelopes_max']:,} envelopes, "
            f"{buffers['arrows']:,}/{buffers['arrows_max']:,} arrows, {buffers['log']:,} log lines",
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(format_result(run_tui_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
