"""Real processes for the end-to-end tests: a hub, stream peers and observers, each in its own session.

Every process is started with `start_new_session=True` (its own process group), so the tests can
SIGKILL a whole group and prove afterwards that nothing is left (`Procs.close`). Waiting is always
for a condition with a deadline (`wait_until`), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.waiting import POLL, WaitTimeout, await_until, wait_until

__all__ = ["POLL", "WaitTimeout", "await_until", "wait_until"]  # re-exported: tests import them from here

REPO = Path(__file__).resolve().parents[2]
STREAM_PEER = Path(__file__).with_name("stream_peer.py")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON Lines file; a torn last line (the writer was SIGKILLed mid-write) is skipped."""
    if not path.exists():
        return []
    out = []
    lines = path.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1 :]):
                raise  # only the very last line may be torn
    return out


def ack_every_delivery(client: Any, seen: Any) -> None:
    """Make a HubClient ack each envelope delivered to it, as it comes, after `seen(envelope)`."""

    def on_frame(frame: dict[str, Any]) -> None:
        if frame["kind"] == "notify":
            seen(frame["envelope"])
            client.receipt_nowait(frame["envelope"])

    client.on_frame = on_frame


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


@dataclass(eq=False)
class Proc:
    """One child process (and its process group)."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def kill(self) -> int:
        """SIGKILL the whole process group and reap the child."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait for a clean exit (SIGKILL if it does not come)."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout:g} s") from None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def gone(self) -> bool:
        """The child is reaped and its process group is empty."""
        if self.popen.returncode is None:
            return False
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # pragma: no cover - a foreign process reused the pgid
            return True
        return False


@dataclass
class Procs:
    """Every process a test started; `close()` kills what is left and asserts all are gone."""

    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.workdir / f"{name}.{len(self.started)}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        if env:
            full_env.update(env)
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=full_env,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def peer(self, name: str, *args: str) -> Proc:
        return self.spawn(name, [sys.executable, str(STREAM_PEER), *args])

    def close(self) -> None:
        for proc in self.started:
            if not proc.gone():
                proc.kill()
        deadline = time.monotonic() + 10
        while not all(p.gone() for p in self.started) and time.monotonic() < deadline:
            time.sleep(POLL)
        left = [(p.name, p.pid) for p in self.started if not p.gone()]
        assert not left, f"processes survived the test: {left}"
        alive = [(p.name, p.pid) for p in self.started if psutil.pid_exists(p.pid)]
        assert not alive, f"pids still exist after the test: {alive}"


# --------------------------------------------------------------------------- the hub


def health(port: int, ca_file: Path | None = None) -> dict[str, Any] | None:
    """/healthz over http, or over https trusting `ca_file` (a hub started with --tls-cert)."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    scheme = "https" if ca_file else "http"
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/healthz", timeout=2, context=context) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def standby_health(port: int) -> dict[str, Any] | None:
    """/healthz of a hub that answers 503 (a standby): its JSON body, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return None if resp.status == 200 else json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read()) if exc.code == 503 else None
    except OSError:
        return None


@dataclass(eq=False)
class HubProc:
    """`agentnet hub --port 0 --port-file F --store sqlite:DB` (or `--store postgresql://...` when `db`
    is such a URL), restartable on the same port and file."""

    procs: Procs
    db: Path | str
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # e.g. fault points: AGENTNET_FAULT_DISK_FULL
    ca_file: Path | None = None  # the hub serves TLS (pass --tls-cert/--tls-key in extra); trust this
    port: int | None = None
    proc: Proc | None = None
    generation: int = 0
    label: str = "hub"

    @property
    def store(self) -> str:
        return self.db if isinstance(self.db, str) else f"sqlite:{self.db}"

    @property
    def url(self) -> str:
        return f"{'wss' if self.ca_file else 'ws'}://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 20.0, standby: bool = False) -> HubProc:
        """Start (first time on port 0, later on the port it had) and wait until /healthz answers
        (`standby`: until it answers 503 standby)."""
        self.generation += 1
        port_file = self.procs.workdir / f"{self.label}-port.{self.generation}"
        args = [
            sys.executable,
            "-m",
            "agentnet.cli",
            "hub",
            "--port",
            str(self.port or 0),
            "--port-file",
            str(port_file),
            "--store",
            self.store,
            "--keep-receipts",  # the audits read every acked receipt
            *self.extra,
        ]
        self.proc = proc = self.procs.spawn(f"{self.label}{self.generation}", args, env=self.env)

        def bound() -> int | None:
            if not proc.alive():
                raise AssertionError(f"hub exited with {proc.popen.returncode}:\n{proc.log()}")
            try:
                return int(port_file.read_text())
            except (FileNotFoundError, ValueError):
                return None

        port = wait_until("the hub's port file", bound, timeout)
        assert self.port in (None, port), (self.port, port)
        self.port = port
        if standby:
            wait_until("the hub's /healthz to say standby", lambda: standby_health(port), timeout)
        else:
            wait_until("the hub's /healthz", lambda: health(port, self.ca_file), timeout)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        rc = self.proc.kill()
        assert rc == -signal.SIGKILL, rc

    def terminate(self) -> int:
        assert self.proc is not None
        return self.proc.terminate()

    def health(self) -> dict[str, Any] | None:
        assert self.port is not None
        return health(self.port, self.ca_file)


# --------------------------------------------------------------------------- the store, read from outside


def db_rows(db: Path | str, sql: str, args: tuple = ()) -> list[tuple]:
    """Read the hub's SQLite file (also while the hub runs: WAL mode lets readers in), or its
    PostgreSQL database when `db` is a postgresql:// URL (same SQL, `?` placeholders)."""
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            rows = pg.execute(sql.replace("?", "%s"), args).fetchall()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def ack_floor(db: Path | str, recipient: str, channel_id: str) -> int:
    rows = db_rows(db, "SELECT ack_floor FROM cursors WHERE recipient=? AND channel_id=?", (recipient, channel_id))
    return rows[0][0] if rows else 0


# --------------------------------------------------------------------------- a stream: sender -> hub -> receiver


@dataclass(eq=False)
class Stream:
    """`count` envelopes from `sender` to `receiver` through `hub`, with the files that prove what happened.

    `ops` (sender): every post answered ok. `processed` (receiver): every delivery, fsynced before
    its ack. Logs go to `evidence` (tmpfs when available: fsync there is cheap, and a SIGKILL never
    loses what os.write handed to the kernel), the store stays on disk.
    """

    procs: Procs
    hub: HubProc
    evidence: Path
    count: int = 10_000
    sender: str = "alice"
    receiver: str = "bob"
    run: str = "run"
    tokens: dict[str, str] = field(default_factory=dict)
    pad: int = 0  # bytes of padding in each envelope's data
    receivers: list[Proc] = field(default_factory=list)
    send_proc: Proc | None = None
    urls: str | None = None  # what the peers are given (default: the hub's URL); may be a comma-separated list
    peer_args: list[str] = field(default_factory=list)  # extra stream_peer options for both peers

    @property
    def url(self) -> str:
        return self.urls or self.hub.url

    @property
    def ops_path(self) -> Path:
        return self.evidence / f"{self.run}-ops.jsonl"

    @property
    def processed_path(self) -> Path:
        return self.evidence / f"{self.run}-processed.jsonl"

    @property
    def done_path(self) -> Path:
        return self.evidence / f"{self.run}-done"

    @property
    def channel_path(self) -> Path:
        return self.evidence / f"{self.run}-channel"

    def _auth(self, name: str) -> list[str]:
        return ["--token", self.tokens[name]] if name in self.tokens else []

    def start_receiver(self, timeout: float = 20.0) -> Proc:
        ready = self.evidence / f"{self.run}-ready.{len(self.receivers)}"
        proc = self.procs.peer(
            f"{self.run}-recv",
            "recv",
            "--url",
            self.url,
            *self.peer_args,
            "--name",
            self.receiver,
            "--log",
            str(self.processed_path),
            "--ready",
            str(ready),
            *self._auth(self.receiver),
        )
        self.receivers.append(proc)

        def up() -> bool:
            assert proc.alive(), f"receiver exited with {proc.popen.returncode}:\n{proc.log()}"
            return ready.exists()

        wait_until("the receiver's welcome", up, timeout)
        return proc

    @property
    def receiver_proc(self) -> Proc:
        return self.receivers[-1]

    def start_sender(self, concurrency: int = 32) -> Proc:
        self.send_proc = self.procs.peer(
            f"{self.run}-send",
            "send",
            "--url",
            self.url,
            *self.peer_args,
            "--name",
            self.sender,
            "--to",
            self.receiver,
            "--count",
            str(self.count),
            "--concurrency",
            str(concurrency),
            "--run",
            self.run,
            "--log",
            str(self.ops_path),
            "--channel-file",
            str(self.channel_path),
            "--done",
            str(self.done_path),
            "--pad",
            str(self.pad),
            *self._auth(self.sender),
        )
        return self.send_proc

    @property
    def channel_id(self) -> str:
        return wait_until("the stream's channel", lambda: self._read(self.channel_path), 20)

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text() or None
        except FileNotFoundError:
            return None

    def posted(self) -> int:
        return count_lines(self.ops_path)

    def processed(self) -> int:
        return count_lines(self.processed_path)

    def _sender_alive(self) -> bool:
        assert self.send_proc is not None
        if self.send_proc.popen.poll() not in (None, 0):
            raise AssertionError(f"sender failed with {self.send_proc.popen.returncode}:\n{self.send_proc.log()}")
        return True

    def wait_posted(self, n: int, timeout: float = 60.0) -> None:
        wait_until(f"{n} posts answered ok", lambda: self._sender_alive() and self.posted() >= n, timeout)

    def wait_processed(self, n: int, timeout: float = 60.0) -> None:
        wait_until(f"{n} deliveries processed", lambda: self._sender_alive() and self.processed() >= n, timeout)

    def wait_sent(self, timeout: float = 90.0) -> None:
        """The sender got ok for every post and exited 0."""
        wait_until("the sender to finish", lambda: self._sender_alive() and self.done_path.exists(), timeout)
        assert self.send_proc is not None
        assert self.send_proc.popen.wait(timeout=15) == 0, self.send_proc.log()

    def backlog(self) -> int:
        """Envelopes of the stream the hub has committed and the receiver has not acked (per the store)."""
        return self.head() - ack_floor(self.hub.db, self.receiver, self.channel_id)

    def pause_receiver(self, backlog: int = 1_000, timeout: float = 60.0) -> int:
        """SIGSTOP the receiver and wait until it owes `backlog` acks: a fault that follows is then
        sure to find a full window of deliveries in flight, and a backlog behind it."""
        self.receiver_proc.signal(signal.SIGSTOP)
        return wait_until(
            f"a backlog of {backlog}",
            lambda: self._sender_alive() and self.backlog() >= backlog and self.backlog(),
            timeout,
        )

    def resume_receiver(self) -> None:
        self.receiver_proc.signal(signal.SIGCONT)

    def head(self) -> int:
        rows = db_rows(self.hub.db, "SELECT MAX(seq) FROM envelopes WHERE channel_id=?", (self.channel_id,))
        return rows[0][0] or 0

    def wait_drained(self, timeout: float = 60.0) -> None:
        """The receiver processed every seq of the channel and the hub's ack floor reached the head."""
        head = self.head()
        channel = self.channel_id

        def drained() -> bool:
            assert self.receiver_proc.alive(), self.receiver_proc.log()
            return ack_floor(self.hub.db, self.receiver, channel) >= head

        wait_until(f"{self.receiver}'s ack floor to reach {head}", drained, timeout)

    def stop_receiver(self) -> None:
        for proc in self.receivers:
            if proc.alive():
                assert proc.terminate() == 0, proc.log()

    def stop(self) -> None:
        """Graceful end: receiver, then hub (SIGTERM); both must exit 0."""
        self.stop_receiver()
        assert self.hub.terminate() == 0, self.hub.proc.log() if self.hub.proc else ""


@dataclass
class KillRun:
    """The receiver-SIGKILL run: a 10,000-envelope stream whose receiver was killed -9 twice and
    restarted, with an observer recording everything the hub showed it."""

    stream: Stream
    events: list[dict]
    kills: int
    receiver_pids: list[int]


@dataclass
class StreamReport:
    head: int
    processed: int
    duplicates: int  # deliveries processed more than once
    redelivered: int  # records with attempt > 1
    posts_ok: int
    duplicate_oks: int  # posts answered from the idempotency table (retries of committed posts)


def check_stream(stream: Stream) -> StreamReport:
    """The invariants of the reliability test plan for one stream, from the logs and the SQLite file.

    C1 lost (every ok'd post is in the WAL, same seq and id), C2 unexpected, C10 log integrity
    (seqs 1..head gapless, ids unique), C11 agreement, "seqs never reused", C5 undelivered (every
    seq processed at least once), C6 (everything the hub counts as acked was processed), C9 order
    (first occurrences in processing order are exactly 1, 2, ..., head, and deliveries with attempt 1
    strictly increase).
    """
    db, channel = stream.hub.db, stream.channel_id
    if not isinstance(db, str):
        assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    wal = db_rows(
        db,
        "SELECT seq, envelope_id, sender, idempotency_key, body FROM envelopes WHERE channel_id=? ORDER BY seq",
        (channel,),
    )
    head = len(wal)
    # C10: seqs gapless from 1, envelope ids unique
    assert [row[0] for row in wal] == list(range(1, head + 1)), "seqs are not 1..head without gaps"
    assert len({row[1] for row in wal}) == head, "an envelope id appears twice"
    by_seq = {row[0]: row for row in wal}
    # C2 + no double append: the sender's envelopes carry each n exactly once
    sent = [row for row in wal if row[2] == stream.sender]
    ns = sorted(json.loads(row[4])["data"]["n"] for row in sent)
    assert ns == list(range(stream.count)), (
        f"WAL holds {len(ns)} envelopes from {stream.sender} for {stream.count} posts "
        f"(missing {sorted(set(range(stream.count)) - set(ns))[:10]}, twice {len(ns) - len(set(ns))})"
    )
    assert all(row[3] == f"{stream.run}-{json.loads(row[4])['data']['n']}" for row in sent)
    # C1 + C11 + no seq reuse: every post answered ok is in the WAL with the seq and id it was told
    ops = read_jsonl(stream.ops_path)
    assert {op["n"] for op in ops} == set(range(stream.count)), "the sender did not get ok for every post"
    for op in ops:
        row = by_seq.get(op["seq"])
        assert row is not None, f"post n={op['n']} was answered ok with seq {op['seq']}, which is not in the WAL"
        assert row[1] == op["envelope_id"], f"seq {op['seq']} was answered ok as {op['envelope_id']}, WAL has {row[1]}"
    ok_ids: dict[str, int] = {}
    for op in ops:
        assert ok_ids.setdefault(op["envelope_id"], op["seq"]) == op["seq"]
    # C5 + C11: every seq processed at least once, with the WAL's envelope id
    records = [r for r in read_jsonl(stream.processed_path) if r["channel"] == channel]
    for r in records:
        assert by_seq[r["seq"]][1] == r["envelope_id"], f"processed {r} disagrees with the WAL"
    seen = {r["seq"] for r in records}
    missing = sorted(set(range(1, head + 1)) - seen)
    assert not missing, f"{len(missing)} envelopes never processed, e.g. {missing[:10]}"
    # C9: the receiver met new envelopes in seq order, no skip, no inversion
    firsts: list[int] = []
    met: set[int] = set()
    for r in records:
        if r["seq"] not in met:
            met.add(r["seq"])
            firsts.append(r["seq"])
    assert firsts == list(range(1, head + 1)), f"first deliveries out of order near {_first_break(firsts)}"
    first_attempts = [r["seq"] for r in records if r["attempt"] == 1]
    assert first_attempts == sorted(set(first_attempts)), (
        f"deliveries with attempt 1 are not in strictly increasing seq order near {_first_break(first_attempts)}"
    )
    # C6: nothing the hub counts as acked went unprocessed, or was acked before it was processed
    # (the hub stamps receipts with milliseconds; both clocks are this host's)
    first_processed: dict[int, float] = {}
    for r in records:
        first_processed.setdefault(r["seq"], r["wall"])
    acked = db_rows(
        db,
        "SELECT seq, at FROM receipts WHERE recipient=? AND channel_id=? AND status='acked'",
        (stream.receiver, channel),
    )
    assert {s for s, _ in acked} <= seen
    early = [(s, at) for s, at in acked if _epoch(at) + 0.001 < first_processed[s]]
    assert not early, f"acked at the hub before the receiver had processed them: {early[:5]}"
    assert ack_floor(db, stream.receiver, channel) == head
    assert not db_rows(
        db, "SELECT seq FROM receipts WHERE recipient=? AND channel_id=? AND status='dead'", (stream.receiver, channel)
    ), "envelopes were dead-lettered"
    return StreamReport(
        head=head,
        processed=len(records),
        duplicates=len(records) - len(seen),
        redelivered=sum(1 for r in records if r["attempt"] > 1),
        posts_ok=len(ops),
        duplicate_oks=sum(1 for op in ops if op["duplicate"]),
    )


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _first_break(seqs: list[int]) -> list[int]:
    for i in range(1, len(seqs)):
        if seqs[i] != seqs[i - 1] + 1:
            return seqs[max(0, i - 3) : i + 3]
    return []


# --------------------------------------------------------------------------- raw WebSocket peers


def write_auth_file(path: Path, tokens: dict[str, tuple[str, str]]) -> Path:
    lines = ["tokens:"]
    for name, (role, token) in tokens.items():
        lines += [f"  - name: {name}", f"    role: {role}", f"    token: {token}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def frame(kind: str, **fields: Any) -> str:
    return orjson.dumps({"kind": kind, **fields}).decode()


def request(request_id: str, op: str, **params: Any) -> str:
    return frame("request", request_id=request_id, op=op, params=params)


class Peer:
    """A raw WebSocket client: exactly the bytes a test sends, and everything the hub answers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls, url: str, name: str | None = None, token: str | None = None, role: str = "agent", **kw: Any
    ) -> Peer:
        """Connect; with a name, say hello (and expect a welcome)."""
        peer = cls(await connect(url, compression=None, open_timeout=10, **kw))
        if name is not None:
            hello: dict[str, Any] = {"name": name, "role": role}
            if token is not None:
                hello["auth"] = {"scheme": "api_key", "token": token}
            await peer.ws.send(frame("hello", **hello))
            welcome = await peer.recv()
            assert welcome["kind"] == "welcome", welcome
        return peer

    async def recv(self, timeout: float = 10) -> dict:
        async with asyncio.timeout(timeout):
            return orjson.loads(await self.ws.recv())

    async def ask(self, data: str) -> dict:
        """Send a request; its response (events in between are skipped)."""
        request_id = orjson.loads(data)["request_id"]
        await self.ws.send(data)
        while True:
            got = await self.recv()
            if got["kind"] == "response" and got["request_id"] == request_id:
                return got

    async def refused(self, data: str | bytes, *, text: bool | None = None) -> tuple[str | None, int]:
        """Send something the hub must refuse; (error code of its error frame or None, close code)."""
        code = None
        try:
            await self.ws.send(data, text=text)
            async with asyncio.timeout(15):
                while True:
                    got = orjson.loads(await self.ws.recv())
                    if got["kind"] == "error":
                        code = got["code"]
        except ConnectionClosed:
            pass
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await self.ws.wait_closed()
        assert self.ws.close_code is not None
        return code, self.ws.close_code

    async def close(self) -> None:
        """Close, reading what is still queued meanwhile: else the hub's close frame may wait behind
        frames this side never reads (the library stops reading when its queue is full)."""

        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.ws.recv()

        reader = asyncio.create_task(drain())
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close()
        await reader
