"""Drive a HubCore directly: frames in, frames out, commits on demand. No sockets, no clock."""

from __future__ import annotations

from typing import Any

import orjson

from agentnet.hub.core import CoreConfig, HubCore
from agentnet.hub.effects import Close, Emit, Send, Subscribe
from agentnet.hub.store.memory import MemoryStore
from agentnet.protocol import decode_client_frame
from agentnet.protocol.events import encode


class CoreHarness:
    def __init__(self, store: MemoryStore | None = None, **config: Any) -> None:
        self.store = store or MemoryStore()
        self.config = CoreConfig(**config)
        self.core = HubCore(self.store.load(), self.store, self.config)
        self.core.observed = True
        self.now = 0.0
        self.outbox: dict[int, list[dict]] = {}
        self.closed: dict[int, tuple[int, str]] = {}
        self.events: list[dict] = []
        self.names: dict[int, str] = {}
        self._conn = 0
        self._rid = 0
        self.auto_commit = True

    # ---------------------------------------------------------------- plumbing
    def _apply(self, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, Send):
                self.outbox.setdefault(eff.conn, []).append(orjson.loads(eff.data))
            elif isinstance(eff, Close):
                self.closed[eff.conn] = (eff.code, eff.reason)
                self._apply(self.core.connection_closed(eff.conn, eff.code, eff.reason, self.now))
            elif isinstance(eff, Emit):
                frame = orjson.loads(encode(eff.event, 0, ""))
                del frame["kind"], frame["event_seq"], frame["at"]
                self.events.append(frame)
            elif isinstance(eff, Subscribe):
                pass
        if self.auto_commit:
            self.commit()

    def commit(self) -> None:
        while (batch := self.core.take_batch()) is not None:
            self.store.commit(batch)
            effects = self.core.batch_committed(batch.batch_id, self.now)
            auto, self.auto_commit = self.auto_commit, False
            self._apply(effects)
            self.auto_commit = auto

    def send(self, conn: int, frame: dict) -> None:
        decoded = decode_client_frame(orjson.dumps(frame))
        if decoded.kind == "hello":
            self._apply(self.core.hello(conn, decoded, self.now))
        elif decoded.kind == "request":
            self._apply(self.core.request(conn, decoded, self.now))
        else:
            self._apply(self.core.receipt(conn, decoded, self.now))

    # ---------------------------------------------------------------- helpers
    def connect(self, name: str, role: str = "agent", **hello: Any) -> int:
        self._conn += 1
        conn = self._conn
        self.names[conn] = name
        self.send(conn, {"kind": "hello", "name": name, "role": role, **hello})
        return conn

    def drop(self, conn: int, code: int = 1006) -> None:
        self._apply(self.core.connection_closed(conn, code, "dropped", self.now))

    def request(self, conn: int, op: str, **params: Any) -> dict:
        self._rid += 1
        rid = f"r{self._rid}"
        self.send(conn, {"kind": "request", "request_id": rid, "op": op, "params": params})
        for frame in self.outbox.get(conn, []):
            if frame.get("kind") == "response" and frame["request_id"] == rid:
                return frame
        raise AssertionError(f"no response to {op} (pending commit?)")

    def ok(self, conn: int, op: str, **params: Any) -> dict:
        resp = self.request(conn, op, **params)
        assert resp["ok"], resp
        return resp["result"]

    def notifies(self, conn: int, clear: bool = True) -> list[dict]:
        frames = self.outbox.get(conn, [])
        out = [f for f in frames if f["kind"] == "notify"]
        if clear:
            self.outbox[conn] = [f for f in frames if f["kind"] != "notify"]
        return out

    def receipt(self, conn: int, notify: dict, status: str = "ack", reason: str | None = None) -> None:
        env = notify["envelope"]
        frame = {
            "kind": "receipt",
            "channel_id": env["channel_id"],
            "seq": env["seq"],
            "envelope_id": env["envelope_id"],
            "status": status,
        }
        if reason:
            frame["reason"] = reason
        self.send(conn, frame)

    def ack_all(self, conn: int) -> list[dict]:
        got = self.notifies(conn)
        for n in got:
            self.receipt(conn, n)
        return got

    def tick(self, dt: float) -> None:
        self.now += dt
        self._apply(self.core.tick(self.now))

    def cursor(self, recipient: str, channel_id: str) -> dict:
        return self.core.cursor_info(self.core.cursors[recipient][channel_id], self.now)

    def pair(
        self, sender: str = "alice", receiver: str = "bob", type_: str = "conversation", **knobs: Any
    ) -> tuple[int, int, str]:
        a, b = self.connect(sender), self.connect(receiver)
        ch = self.ok(a, "open_channel", type=type_, participants=[receiver], knobs=knobs)["channel_id"]
        self.ack_all(a)
        self.ack_all(b)  # channel.opened
        return a, b, ch
