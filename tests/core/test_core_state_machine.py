"""The delivery core against a reference model, by hypothesis: agents post, ack and nack in any
order, drop and reconnect, time passes; after every step the delivery invariants must hold, and at
the end (everyone connected, every delivery acked, time past every deadline) every committed
envelope is acked or dead-lettered for each of its recipients.

Invariants checked after every step:

* seqs are gapless: a channel's committed envelopes are exactly 1..head;
* the ack floor never passes an envelope its recipient has not finished (acked, or dead-lettered);
* the floor never passes what was delivered (a recipient's addressed seqs up to the floor were all
  delivered at least once);
* in flight per recipient <= window (and the core's count of it is the real one);
* first deliveries (attempt 1) to one recipient in one channel come in seq order, and every
  delivery of the same envelope after the first has a higher attempt number.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agentnet.protocol.events import addressed_to
from tests.core.harness import CoreHarness

AGENTS = ("alice", "bob", "carol")
WINDOW = 2
MAX_DELIVER = 3
ACK_WAIT = 1.0


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = CoreHarness(window=WINDOW, max_deliver=MAX_DELIVER, ack_wait=ACK_WAIT, nack_backoff=0.1)
        self.conns: dict[str, int] = {name: self.h.connect(name) for name in AGENTS}
        ab = self.h.ok(self.conns["alice"], "open_channel", type="conversation", participants=["bob"])
        abc = self.h.ok(self.conns["bob"], "open_channel", type="conversation", participants=["alice", "carol"])
        self.channels = [ab["channel_id"], abc["channel_id"]]
        self.participants = {ab["channel_id"]: ("alice", "bob"), abc["channel_id"]: ("bob", "alice", "carol")}
        # reference model
        self.pending: dict[str, list[dict[str, Any]]] = {name: [] for name in AGENTS}  # notifies to answer
        self.delivered: set[tuple[str, str, int]] = set()
        self.acked: set[tuple[str, str, int]] = set()
        self.last_first: dict[tuple[str, str], int] = {}
        self.attempts: dict[tuple[str, str, int], int] = {}
        self.out_of_order: list[str] = []
        self.collect()

    # ------------------------------------------------------------------ plumbing

    def collect(self) -> None:
        """Take the notifies the core sent since the last step into the model."""
        for name, conn in self.conns.items():
            for notify in self.h.notifies(conn):
                env, attempt = notify["envelope"], notify["attempt"]
                key = (name, env["channel_id"], env["seq"])
                if attempt == 1:
                    last = self.last_first.get(key[:2], 0)
                    if env["seq"] <= last:
                        self.out_of_order.append(f"{key}: first delivery after #{last}")
                    self.last_first[key[:2]] = env["seq"]
                if attempt <= self.attempts.get(key, 0):
                    self.out_of_order.append(f"{key}: attempt {attempt} after attempt {self.attempts[key]}")
                self.attempts[key] = attempt
                self.delivered.add(key)
                self.pending[name].append(notify)
        dead = [e for e in self.h.events if e["type"] == "dead_letter"]
        self.dead = {(e["recipient"], e["channel_id"], e["seq"]) for e in dead}

    def connected(self, name: str) -> bool:
        return name in self.conns

    # ------------------------------------------------------------------ rules

    @rule(sender=st.sampled_from(AGENTS), which=st.integers(0, 1), to_one=st.booleans())
    def post(self, sender: str, which: int, to_one: bool) -> None:
        ch = self.channels[which]
        if sender not in self.participants[ch] or not self.connected(sender):
            return
        others = [p for p in self.participants[ch] if p != sender]
        audience = {"audience": others[:1]} if to_one else {}
        self.h.ok(self.conns[sender], "post", channel_id=ch, type="note", data={"n": 1}, **audience)
        self.collect()

    @rule(name=st.sampled_from(AGENTS), pick=st.integers(0, 50), nack=st.booleans())
    def receipt(self, name: str, pick: int, nack: bool) -> None:
        if not self.connected(name) or not self.pending[name]:
            return
        notify = self.pending[name].pop(pick % len(self.pending[name]))
        env = notify["envelope"]
        self.h.receipt(self.conns[name], notify, "nack" if nack else "ack", "busy" if nack else None)
        if not nack:
            self.acked.add((name, env["channel_id"], env["seq"]))
        self.collect()

    @rule(name=st.sampled_from(AGENTS))
    def drop(self, name: str) -> None:
        if self.connected(name):
            self.h.drop(self.conns.pop(name))
            self.pending[name].clear()  # receipts on a dead session are lost; the hub redelivers
            self.collect()

    @rule(name=st.sampled_from(AGENTS))
    def reconnect(self, name: str) -> None:
        if not self.connected(name):
            self.conns[name] = self.h.connect(name)
            self.collect()

    @rule(dt=st.sampled_from([0.05, 0.2, 0.6, 1.2]))
    def tick(self, dt: float) -> None:
        self.h.tick(dt)
        self.collect()

    @rule(name=st.sampled_from(AGENTS))
    def stale_ack(self, name: str) -> None:
        """An ack for something already acked (a duplicate) is ignored, never double-counted."""
        done = sorted(k for k in self.acked if k[0] == name)
        if not done or not self.connected(name):
            return
        _, channel_id, seq = done[-1]
        frame = {"kind": "receipt", "channel_id": channel_id, "seq": seq, "envelope_id": "e-0", "status": "ack"}
        self.h.send(self.conns[name], frame)
        self.collect()

    # ------------------------------------------------------------------ invariants

    def addressed(self, name: str, channel_id: str, seq: int) -> bool:
        rec = self.h.core._envelope(self.h.core.channels[channel_id], seq)
        assert rec is not None, (channel_id, seq)
        return addressed_to(name, rec.sender, rec.audience, self.participants[channel_id])

    @invariant()
    def seqs_are_gapless(self) -> None:
        for ch in self.channels:
            record = self.h.core.channels[ch]
            seqs = [rec.seq for rec in self.h.store.envelopes.get(ch, [])]
            assert seqs == list(range(1, record.committed_seq + 1)), (ch, seqs)

    @invariant()
    def floors_only_pass_finished_deliveries(self) -> None:
        for name in AGENTS:
            for ch, cur in self.h.core.cursors.get(name, {}).items():
                for seq in range(1, cur.ack_floor + 1):
                    if self.addressed(name, ch, seq):
                        key = (name, ch, seq)
                        assert key in self.delivered, f"{key}: under the floor {cur.ack_floor}, never delivered"
                        assert key in self.acked or key in self.dead, f"{key}: under the floor, not acked nor dead"

    @invariant()
    def in_flight_within_the_window(self) -> None:
        for name in AGENTS:
            inflight = sum(len(cur.inflight) for cur in self.h.core.cursors.get(name, {}).values())
            assert inflight <= WINDOW, (name, inflight)
            assert self.h.core.agents[name].unacked == inflight, name

    @invariant()
    def first_deliveries_in_seq_order(self) -> None:
        assert not self.out_of_order, self.out_of_order

    # ------------------------------------------------------------------ the end

    def teardown(self) -> None:
        """Everyone back, every delivery acked, time past every deadline: nothing is left owed."""
        for name in AGENTS:
            self.reconnect(name)
        for _ in range(200):
            answered = False
            for name in AGENTS:
                while self.pending[name]:
                    self.receipt(name, 0, nack=False)
                    answered = True
            self.tick(ACK_WAIT + 0.1)
            if not answered and not any(self.pending.values()):
                break
        self.floors_only_pass_finished_deliveries()
        for ch in self.channels:
            head = self.h.core.channels[ch].committed_seq
            for name in self.participants[ch]:
                for seq in range(1, head + 1):
                    key = (name, ch, seq)
                    if self.addressed(name, ch, seq):
                        assert key in self.acked or key in self.dead, f"{key}: neither acked nor dead-lettered"
                assert self.h.core.cursors[name][ch].ack_floor == head, (name, ch)


DeliveryMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,  # the same 200 runs every time: a failure here is a bug, not bad luck
    suppress_health_check=[HealthCheck.too_slow],
)
TestDelivery = DeliveryMachine.TestCase
