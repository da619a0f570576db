"""`agentnet bench scale`: cost that should stay flat as the work grows.

Two parts, each against a real hub process (SQLite store in a temp dir, never in the project):

* consults: --agents agents connected; --channels consults, each a new channel (open, a question,
  an answer, close, every delivery acked), --concurrency of them at a time. Prints the hub's CPU
  per consult for the first and the last 1,000, its RSS at 1,000 and after every channel closed,
  the observer snapshot (all pages) time and size, and the largest response of every listing.
* depth: a channel of --depth envelopes written straight into a fresh store file, then a hub on
  it: find_by_causation misses and hits, and a full read_wal pass with the hub's RSS before/after.
* dashboard: the dashboard (headless) attached to a synthetic hub of --channels channels and
  --dashboard-agents agents while events stream at --dashboard-rate/s: attach time, key latency.
* attached: the real dashboard (headless, Textual's run_test) attached as an observer to a real hub
  whose store holds --channels closed consults (written before it starts), with --dashboard-agents
  agents connected from a separate process, two of which post so that about --dashboard-rate hub
  events/s stream: attach time (paged snapshot in), the totals shown, key latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agentnet.client.connection import HubClient

from .throughput import Child, _spawn

MIB = 1024 * 1024


@dataclass
class ScaleConfig:
    channels: int = 50_000
    agents: int = 100
    concurrency: int = 8
    depth: int = 1_000_000
    lookups: int = 200
    dashboard_agents: int = 1000
    dashboard_events: int = 20_000
    dashboard_rate: int = 1000
    dir: Path | None = None
    parts: tuple[str, ...] = ("consults", "depth", "dashboard")


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


async def _start_hub(workdir: Path, store: str) -> tuple[Child, str]:
    port_file = workdir / "hub.port"
    port_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "agentnet.cli",
        "hub",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--store",
        store,
        "--exit-with-parent",
    ]
    hub = await _spawn("hub", argv, workdir / "hub.log", pipes=False)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if hub.proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the hub did not start:\n{hub.tail()}")
        await asyncio.sleep(0.05)
    return hub, f"ws://127.0.0.1:{int(port_file.read_text())}/v1"


async def _stop_hub(hub: Child) -> None:
    with contextlib.suppress(ProcessLookupError):
        hub.proc.terminate()
    try:
        await asyncio.wait_for(hub.proc.wait(), 30)
    except TimeoutError:
        hub.proc.kill()
        await hub.proc.wait()


def _cpu_ms_per(cpu_s: float, count: int) -> float:
    return round(cpu_s * 1000 / count, 3)


class Agent:
    """One SDK connection that acks everything and answers questions addressed to it."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.hub = HubClient(url, name=name, max_size=MIB)  # a response over 1 MiB would break it
        self.hub.on_frame = self._on_frame
        self.answers: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("kind") != "notify":
            return
        env = frame["envelope"]
        task = asyncio.create_task(self._handle(env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, env: dict[str, Any]) -> None:
        if env["type"] == "text" and env["sender"] != self.name:
            data = env.get("data") or {}
            if data.get("q"):
                await self.hub.request(
                    "post",
                    channel_id=env["channel_id"],
                    type="text",
                    data={"text": "42", "a": 1},
                    causation_id=env["envelope_id"],
                )
            else:
                fut = self.answers.pop(env["channel_id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(env)
        await self.hub.send_receipt(env)

    async def consult(self, other: str, i: int) -> None:
        ch = (await self.hub.request("open_channel", type="conversation", participants=[other], topic=f"c{i}"))[
            "channel_id"
        ]
        answered = self.answers[ch] = asyncio.get_running_loop().create_future()
        await self.hub.request("post", channel_id=ch, type="text", data={"text": "6 x 7?", "q": 1})
        await asyncio.wait_for(answered, 30)
        await self.hub.request("close_channel", channel_id=ch, reason="answered")


async def _largest_pages(client: HubClient, op: str, **params: Any) -> tuple[int, int, float]:
    """Follow every page of a listing: (largest response bytes, pages, seconds)."""
    largest, pages, after = 0, 0, None
    started = time.perf_counter()
    while True:
        result = await client.request(op, **params, **({"after": after} if after else {}))
        largest = max(largest, len(orjson.dumps(result)))
        pages += 1
        after = result.get("next")
        if after is None:
            return largest, pages, time.perf_counter() - started


async def run_consults(cfg: ScaleConfig, workdir: Path, quiet: bool) -> dict[str, Any]:
    hub, url = await _start_hub(workdir, f"sqlite:{workdir / 'consults.db'}")
    agents = [Agent(url, f"agent{i:03d}") for i in range(cfg.agents)]
    out: dict[str, Any] = {"channels": cfg.channels, "agents": cfg.agents, "concurrency": cfg.concurrency}
    try:
        for a in agents:
            await a.hub.start()
        counter = itertools.count()
        marks: list[tuple[int, float, float | None]] = []  # (consults done, hub cpu s, hub rss MB)
        done = 0
        block = 1000
        started = time.perf_counter()

        async def loop(worker: int) -> None:
            nonlocal done
            while (i := next(counter)) < cfg.channels:
                asker = agents[i % cfg.agents]
                other = agents[(i * 7 + 1 + worker) % cfg.agents]
                if other is asker:
                    other = agents[(i + 1) % cfg.agents]
                await asker.consult(other.name, i)
                done += 1
                if done % block == 0:
                    marks.append((done, hub.cpu(), hub.rss_mb()))
                    if done % (10 * block) == 0:
                        _say(f"  consults: {done:,} (hub RSS {hub.rss_mb()} MB)", quiet)

        marks.append((0, hub.cpu(), hub.rss_mb()))
        await asyncio.gather(*(loop(w) for w in range(cfg.concurrency)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(2.0)  # the last acks committed: every channel closed and finished
        blocks = [(b[0], b[1] - a[1]) for a, b in itertools.pairwise(marks)]
        first, last = blocks[0][1], blocks[-1][1]
        rss_1k = marks[1][2] if len(marks) > 1 else None
        out.update(
            seconds=round(elapsed, 1),
            consults_per_s=round(cfg.channels / elapsed, 1),
            cpu_ms_per_consult_first_1k=_cpu_ms_per(first, block),
            cpu_ms_per_consult_last_1k=_cpu_ms_per(last, block),
            cpu_ratio_last_first=round(last / first, 2) if first else None,
            # CPU per consult of the 1k block ending at each 10k (the trend between first and last)
            cpu_ms_per_consult_by_10k={str(n): _cpu_ms_per(c, block) for n, c in blocks if n % 10_000 == 0},
            rss_mb_at_1k=rss_1k,
            rss_mb_after_all_closed=hub.rss_mb(),
            rss_mb_peak=hub.peak_rss_mb(),
        )
        # Listings at this size: every page of each, the largest response, and an observer snapshot.
        observer = HubClient(url, name="scale-observer", role="observer", max_size=MIB)
        await observer.start()
        try:
            started = time.perf_counter()
            snap = await observer.request("observe")
            first_page = len(orjson.dumps(snap))
            largest_ch, pages_ch, secs_ch = await _largest_pages(observer, "list_channels", cursors=True)
            largest_ag, _, _ = await _largest_pages(observer, "list_agents")
            out.update(
                snapshot_seconds=round(time.perf_counter() - started, 3),
                snapshot_first_page_bytes=first_page,
                snapshot_total=snap.get("total"),
                list_channels_pages=pages_ch,
                list_channels_seconds=round(secs_ch, 3),
                largest_response_bytes=max(first_page, largest_ch, largest_ag),
            )
        finally:
            await observer.close()
        largest_agent, _, _ = await _largest_pages(agents[0].hub, "list_channels")
        out["largest_response_bytes"] = max(out["largest_response_bytes"], largest_agent)
        out["healthz_channels"] = (snap.get("total") or {}).get("channels")
    finally:
        for a in agents:
            await a.hub.close()
        await _stop_hub(hub)
    return out


def _build_deep_store(path: Path, depth: int) -> str:
    """One open channel of `depth` envelopes between two agents, both cursors at its head."""
    import sqlite3

    from agentnet.hub.store.sqlite import SqliteStore

    SqliteStore(path).close()  # the schema and meta, as the hub writes them
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    cid = "ch-deep"
    now = "2026-01-01T00:00:00.000Z"
    db.execute("BEGIN")
    for name in ("reader", "writer"):
        db.execute("INSERT INTO agents VALUES(?,?,?,?,?)", (name, f"a-{name}", "agent", "{}", now))
        db.execute("INSERT INTO cursors VALUES(?,?,?,?,?,?)", (name, cid, depth, depth, 0, 0))
    db.execute(
        "INSERT INTO channels VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        (cid, "conversation", "deep", "writer", '["writer","reader"]', now, "{}", "open", None, None, "{}"),
    )

    def rows():
        for seq in range(1, depth + 1):
            causation = f"c{seq}" if seq % 2 == 0 else None
            env = {
                "envelope_id": f"e-deep{seq:09d}",
                "channel_id": cid,
                "seq": seq,
                "sender": "writer",
                "audience": None,
                "type": "note",
                "data": {"i": seq, "pad": "x" * 200},
                "causation_id": causation,
                "idempotency_key": None,
                "created_at": now,
            }
            yield (cid, seq, env["envelope_id"], "writer", None, "note", causation, None, now, orjson.dumps(env))

    db.executemany("INSERT INTO envelopes VALUES(?,?,?,?,?,?,?,?,?,?)", rows())
    db.execute("COMMIT")
    db.close()
    return cid


def _timings(values: list[float]) -> dict[str, float]:
    xs = sorted(values)
    return {
        "p50_ms": round(statistics.median(xs) * 1000, 3),
        "p99_ms": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000, 3),
    }


def _store_lookups(path: Path, cid: str, count: int) -> dict[str, float]:
    from agentnet.hub.store.sqlite import SqliteStore

    store = SqliteStore(path)
    try:
        times = []
        for i in range(count):
            t = time.perf_counter()
            store.find_by_causation(cid, f"absent{i}", None)
            times.append(time.perf_counter() - t)
        return _timings(times)
    finally:
        store.close()


async def run_depth(cfg: ScaleConfig, workdir: Path, quiet: bool) -> dict[str, Any]:
    path = workdir / "deep.db"
    started = time.perf_counter()
    cid = _build_deep_store(path, cfg.depth)
    _say(f"  depth: wrote {cfg.depth:,} envelopes in {time.perf_counter() - started:.0f} s", quiet)
    hub, url = await _start_hub(workdir, f"sqlite:{path}")
    out: dict[str, Any] = {"depth": cfg.depth}
    reader = HubClient(url, name="reader", max_size=MIB)
    try:
        await reader.start()
        miss, hit = [], []
        for i in range(cfg.lookups):
            t = time.perf_counter()
            r = await reader.request("find_by_causation", channel_id=cid, causation_id=f"nope{i}")
            miss.append(time.perf_counter() - t)
            assert r["envelope"] is None
            t = time.perf_counter()
            wanted = f"c{2 * (i * 4999 % (cfg.depth // 2)) + 2}"  # spread over the whole channel
            r = await reader.request("find_by_causation", channel_id=cid, causation_id=wanted)
            hit.append(time.perf_counter() - t)
            assert r["envelope"] is not None
        out["find_by_causation_miss"] = _timings(miss)  # round trips through the hub
        out["find_by_causation_hit"] = _timings(hit)
        out["store_lookup_miss"] = _store_lookups(path, cid, cfg.lookups)  # the hub's own query, alone
        await asyncio.sleep(0.5)
        out["rss_mb_before_read_wal"] = rss_before = hub.rss_mb()
        started = time.perf_counter()
        after, read = 0, 0
        while True:
            page = await reader.request("read_wal", channel_id=cid, after_seq=after, limit=1000)
            read += len(page["envelopes"])
            if page["envelopes"]:
                after = page["envelopes"][-1]["seq"]
            if not page["has_more"]:
                break
        out["read_wal_seconds"] = round(time.perf_counter() - started, 1)
        out["read_wal_envelopes"] = read
        await asyncio.sleep(0.5)
        out["rss_mb_after_read_wal"] = rss_after = hub.rss_mb()
        out["rss_mb_growth"] = round(rss_after - rss_before, 1) if rss_after and rss_before else None
    finally:
        await reader.close()
        await _stop_hub(hub)
    return out


def _build_consult_store(path: Path, channels: int) -> None:
    """`channels` closed consults (a question and an answer, both cursors at the head) between
    pairs of agents, written straight into a fresh store file before a hub opens it."""
    import sqlite3

    from agentnet.hub.store.sqlite import SqliteStore

    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    now = "2026-01-01T00:00:00.000Z"

    def pair(i: int) -> tuple[str, str]:
        return f"agent{i % 100:03d}", f"agent{(i + 1) % 100:03d}"

    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO channels VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        (
            (
                f"ch-c{i:06d}",
                "conversation",
                f"c{i}",
                a,
                orjson.dumps([a, b]).decode(),
                now,
                "{}",
                "closed",
                now,
                "answered",
                "{}",
            )
            for i in range(channels)
            for a, b in [pair(i)]
        ),
    )

    def envelopes():
        for i in range(channels):
            a, b = pair(i)
            cid = f"ch-c{i:06d}"
            for seq, sender, data in ((1, a, {"text": "6 x 7?", "q": 1}), (2, b, {"text": "42", "a": 1})):
                env = {
                    "envelope_id": f"e-{cid}-{seq}",
                    "channel_id": cid,
                    "seq": seq,
                    "sender": sender,
                    "audience": None,
                    "type": "text",
                    "data": data,
                    "causation_id": None,
                    "idempotency_key": None,
                    "created_at": now,
                }
                yield (cid, seq, env["envelope_id"], sender, None, "text", None, None, now, orjson.dumps(env))

    db.executemany("INSERT INTO envelopes VALUES(?,?,?,?,?,?,?,?,?,?)", envelopes())
    db.executemany(
        "INSERT INTO cursors VALUES(?,?,?,?,?,?)",
        ((who, f"ch-c{i:06d}", 2, 2, 0, 0) for i in range(channels) for who in pair(i)),
    )
    db.execute("COMMIT")
    db.close()


async def _streamer_main(url: str, agents: int, rate: float) -> None:
    """In its own process: `agents` connections that ack everything; agent000 posts to agent001
    `rate` times a second (each post is 5-7 hub events: append, deliver, ack, cursors)."""
    crowd = [Agent(url, f"agent{i:03d}") for i in range(agents)]
    for start in range(0, agents, 50):
        await asyncio.gather(*(a.hub.start() for a in crowd[start : start + 50]))
    talker = crowd[0]
    ch = (await talker.hub.request("open_channel", type="conversation", participants=["agent001"], topic="stream"))[
        "channel_id"
    ]
    print("ready", flush=True)
    started, sent = time.perf_counter(), 0
    while True:
        ahead = started + sent / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
        await talker.hub.request("post", channel_id=ch, type="text", data={"text": f"tick {sent}"})
        sent += 1


async def run_attached(cfg: ScaleConfig, workdir: Path, quiet: bool) -> dict[str, Any]:
    path = workdir / "attached.db"
    started = time.perf_counter()
    _build_consult_store(path, cfg.channels)
    out: dict[str, Any] = {"store_channels": cfg.channels, "store_seconds": round(time.perf_counter() - started, 1)}
    hub, url = await _start_hub(workdir, f"sqlite:{path}")
    posts = max(1.0, cfg.dashboard_rate / 5)  # a post makes 5-7 hub events
    run = f"_streamer_main({url!r}, {cfg.dashboard_agents}, {posts})"
    code = f"import asyncio; from agentnet.bench.scale import _streamer_main; asyncio.run({run})"
    streamer = await _spawn("streamer", [sys.executable, "-c", code], workdir / "streamer.log", pipes=True)
    try:
        line = await asyncio.wait_for(streamer.proc.stdout.readline(), 300)
        if b"ready" not in line:
            raise RuntimeError(f"the streamer did not start:\n{streamer.tail()}")
        _say(f"  attached: store written in {out['store_seconds']} s; {cfg.dashboard_agents} agents connected", quiet)
        from agentnet.tui.app import relaxed_gc
        from agentnet.tui.bench import _attached

        with relaxed_gc():
            out |= await _attached(url, cfg.dashboard_events / cfg.dashboard_rate, (120, 36), 0.1)
        out["hub_rss_mb"] = hub.rss_mb()
    finally:
        with contextlib.suppress(ProcessLookupError):
            streamer.proc.kill()
        await streamer.proc.wait()
        await _stop_hub(hub)
    return out


def run_scale(cfg: ScaleConfig, *, as_json: bool = False, quiet: bool = False) -> int:
    own = cfg.dir is None
    workdir = Path(tempfile.mkdtemp(prefix="agentnet-bench-scale-")) if own else cfg.dir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)

    async def main() -> dict[str, Any]:
        result: dict[str, Any] = {"pid": os.getpid(), "dir": str(workdir)}
        if "consults" in cfg.parts:
            _say(f"consults: {cfg.channels:,} channels, {cfg.agents} agents (sqlite in {workdir})", quiet)
            result["consults"] = await run_consults(cfg, workdir, quiet)
            _say(orjson.dumps(result["consults"]).decode(), quiet)
        if "depth" in cfg.parts:
            _say(f"depth: one channel of {cfg.depth:,} envelopes", quiet)
            result["depth"] = await run_depth(cfg, workdir, quiet)
            _say(orjson.dumps(result["depth"]).decode(), quiet)
        if "attached" in cfg.parts:
            _say(
                f"attached: dashboard on a real hub, {cfg.channels:,} channels, {cfg.dashboard_agents:,} agents", quiet
            )
            result["attached"] = await run_attached(cfg, workdir, quiet)
        return result

    try:
        result = asyncio.run(main())
        if "dashboard" in cfg.parts:
            from agentnet.tui.bench import run_tui_bench

            _say(
                f"dashboard: {cfg.channels:,} channels, {cfg.dashboard_agents:,} agents, "
                f"{cfg.dashboard_events:,} events at {cfg.dashboard_rate:,}/s",
                quiet,
            )
            figures = run_tui_bench(
                cfg.dashboard_events,
                agents=cfg.dashboard_agents,
                channels=cfg.channels,
                pace=cfg.dashboard_rate,
                model_only_events=min(cfg.dashboard_events, 20_000),
            )
            keep = ("attach_seconds", "channels", "agents", "events_per_s", "key_latency_ms", "render_ms", "rss_mb")
            result["dashboard"] = {key: figures[key] for key in keep} | {
                "model_events_per_s": figures["model_events_per_s"]
            }
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for part in ("consults", "depth", "dashboard", "attached"):
            for key, value in (result.get(part) or {}).items():
                print(f"{part}.{key}: {value}")
    return 0
