"""A volatile store: plain dicts, commit is immediate. For tests, demos and benchmarks."""

from __future__ import annotations

import bisect

import orjson

from agentnet.protocol import ids

from ..records import AgentRow, ChannelRecord, ChannelRow, CommitBatch, Cursor, CursorRow, EnvRecord, LoadedState
from .base import StoreError, build_state, channel_record, cursor_record


class MemoryStore:
    description = "memory (volatile)"
    threaded = False
    commit_on_loop = True

    def __init__(self) -> None:
        self.hub_id = ids.new_id("hub")
        self.envelopes: dict[str, list[EnvRecord]] = {}  # channel_id -> records in seq order
        self.channels: dict[str, ChannelRow] = {}
        self.agents: dict[str, AgentRow] = {}
        self.cursors: dict[tuple[str, str], CursorRow] = {}
        self.receipts: dict[tuple[str, str, int], str] = {}
        self._acked: dict[tuple[str, str], set[int]] = {}  # acked receipts per cursor, for pruning
        self.idempotency: dict[tuple[str, str], tuple[str, str, int]] = {}
        self.by_causation: dict[tuple[str, str], list[EnvRecord]] = {}  # (channel_id, causation_id)
        self.commits = 0

    def load(self) -> LoadedState:
        floors = {(r, c): row.ack_floor for (r, c), row in self.cursors.items()}
        finished = [(r, c, s) for (r, c, s) in self.receipts if s > floors.get((r, c), 0)]
        heads = {cid: recs[-1].seq for cid, recs in self.envelopes.items() if recs}
        return build_state(
            self.hub_id,
            list(self.agents.values()),
            list(self.channels.values()),
            heads,
            list(self.cursors.values()),
            finished,
        )

    def commit(self, batch: CommitBatch) -> None:
        # The durable stores' constraints, checked before anything is applied (a failed commit
        # leaves nothing): a channel's seqs are appended in order and never twice, a key once per sender.
        heads: dict[str, int] = {}
        keys: set[tuple[str, str]] = set()
        for rec in batch.envelopes:
            head = heads.get(rec.channel_id)
            if head is None:
                recs = self.envelopes.get(rec.channel_id)
                head = recs[-1].seq if recs else 0
            if rec.seq <= head:
                raise StoreError(f"commit failed: seq {rec.seq} of {rec.channel_id} is already stored")
            heads[rec.channel_id] = rec.seq
            if rec.idempotency_key is not None:
                key = (rec.sender, rec.idempotency_key)
                if key in self.idempotency or key in keys:
                    raise StoreError(f"commit failed: idempotency key {rec.idempotency_key!r} is already stored")
                keys.add(key)
        for rec in batch.envelopes:
            self.envelopes.setdefault(rec.channel_id, []).append(rec)
            if rec.causation_id is not None:
                self.by_causation.setdefault((rec.channel_id, rec.causation_id), []).append(rec)
            if rec.idempotency_key is not None:
                self.idempotency[(rec.sender, rec.idempotency_key)] = (
                    rec.channel_id,
                    rec.envelope_id,
                    rec.seq,
                )
        for row in batch.channels:
            self.channels[row.channel_id] = row
        for row in batch.agents:
            self.agents[row.name] = row
        for row in batch.cursors:
            self.cursors[(row.recipient, row.channel_id)] = row
        for recipient, channel_id, floor in batch.prune:
            acked = self._acked.get((recipient, channel_id))
            if acked:
                for seq in [s for s in acked if s <= floor]:
                    acked.discard(seq)
                    if self.receipts.get((recipient, channel_id, seq)) == "acked":
                        del self.receipts[(recipient, channel_id, seq)]
        for ack in batch.acks:
            self.receipts[(ack.recipient, ack.channel_id, ack.seq)] = ack.status
            if ack.status == "acked":
                self._acked.setdefault((ack.recipient, ack.channel_id), set()).add(ack.seq)
        self.commits += 1

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]:
        recs = self.envelopes.get(channel_id, [])
        start = bisect.bisect_right(recs, after_seq, key=lambda r: r.seq)
        return recs[start : start + limit]

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None:
        for rec in self.by_causation.get((channel_id, causation_id), ()):
            if sender is None or rec.sender == sender:
                return rec
        return None

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None:
        return self.idempotency.get((sender, key))

    def _head(self, channel_id: str) -> int:
        recs = self.envelopes.get(channel_id)
        return recs[-1].seq if recs else 0

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None:
        row = self.channels.get(channel_id)
        if row is None:
            return None
        ch = channel_record(row, self._head(channel_id))
        rows = (self.cursors.get((p, channel_id)) for p in ch.participants)
        return ch, [cursor_record(r) for r in rows if r is not None]

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]:
        ids = sorted(cid for cid in self.channels if cid > after)  # a volatile test store: no index to keep
        out = []
        for cid in ids:
            ch = channel_record(self.channels[cid], self._head(cid))
            if member is None or member in ch.participants:
                out.append(ch)
                if len(out) >= limit:
                    break
        return out

    def drop_closed(self, before: str, keep: set[str], limit: int) -> list[str]:
        dropped = [
            cid
            for cid, row in self.channels.items()
            if row[7] == "closed" and row[8] is not None and row[8] < before and cid not in keep
        ][:limit]
        for cid in dropped:
            del self.channels[cid]
            for rec in self.envelopes.pop(cid, []):
                if rec.causation_id is not None:
                    self.by_causation.pop((cid, rec.causation_id), None)
                if rec.idempotency_key is not None:
                    self.idempotency.pop((rec.sender, rec.idempotency_key), None)
        gone = set(dropped)
        for key in [k for k in self.cursors if k[1] in gone]:
            del self.cursors[key]
            self._acked.pop(key, None)
        for key in [k for k in self.receipts if k[1] in gone]:
            del self.receipts[key]
        return dropped

    def dump_envelopes(self, channel_id: str) -> list[dict]:
        return [orjson.loads(r.json) for r in self.envelopes.get(channel_id, [])]

    def close(self) -> None:
        pass
