"""The store interface the hub's shell drives, and `open_store("memory" | "sqlite:PATH" | "postgresql://...")`."""

from __future__ import annotations

from typing import Any, Protocol

from ..records import ChannelRecord, CommitBatch, Cursor, EnvRecord, LoadedState


class StoreError(Exception):
    """The store cannot be opened or written (bad path, corrupt file, disk full)."""


class Store(Protocol):
    description: str  # e.g. "sqlite:/path/hub.db (synchronous=FULL)"
    threaded: bool  # True: reads and commit() may block on I/O, so they run in a worker thread
    # True where a commit's own work is CPU only: it runs on the event loop (~40 us for an RPC's
    # rows, where a hop to a thread and back costs ~200 us of CPU: GIL hand-offs, wake-ups). Such a
    # store may also have `sync_after_commit = True` and `sync()`, which the shell runs before
    # releasing what the commit decided (SQLite FULL: an fsync of the WAL file): on the loop while
    # syncs are fast, in a thread after a slow one (Hub._sync).
    commit_on_loop: bool
    # A store other hubs may share (postgresql) also has `shared = True`, `try_lead(address)`,
    # `leader()` and `heartbeat()`: the shell takes the leadership before `load()` (see server.py).

    def load(self) -> LoadedState: ...

    def commit(self, batch: CommitBatch) -> None: ...

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]: ...

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None: ...

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None: ...

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None:
        """One channel as committed, with its cursors: a channel the hub forgot, paged back in."""
        ...

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]:
        """Committed channels with ids above `after`, in id order (only `member`'s, if given)."""
        ...

    def drop_closed(self, before: str, keep: set[str], limit: int) -> list[str]:
        """Delete up to `limit` channels closed before `before` (an ISO time), except those in `keep`,
        with their envelopes, cursors and receipts. Returns the ids dropped. Runs between commits."""
        ...

    def close(self) -> None: ...


def load_sql_state(db: Any, hub_id: str, head_seqs: dict[str, int], *, after_crash: bool) -> LoadedState:
    """`load()` for the SQL stores: one schema, so one set of queries. `db` is a DB-API connection
    whose `execute()` returns a cursor (sqlite3's and psycopg's both do); the heads are the store's own
    query (each engine plans that one best its own way)."""
    finished = db.execute(
        "SELECT r.recipient, r.channel_id, r.seq FROM receipts r JOIN cursors c"
        " ON c.recipient = r.recipient AND c.channel_id = r.channel_id WHERE r.seq > c.ack_floor"
    ).fetchall()
    return build_state(
        hub_id,
        db.execute("SELECT name, agent_id, role, passport, registered_at FROM agents").fetchall(),
        db.execute(
            "SELECT channel_id, type, topic, creator, participants, created_at, knobs, state,"
            " closed_at, close_reason, rule_state FROM channels ORDER BY created_at"
        ).fetchall(),
        head_seqs,
        db.execute("SELECT recipient, channel_id, ack_floor, delivered_seq, redelivered, dead FROM cursors").fetchall(),
        finished,
        after_crash=after_crash,
    )


def build_state(
    hub_id: str,
    agent_rows: list[tuple[str, str, str, str, str]],
    channel_rows: list[tuple],
    head_seqs: dict[str, int],
    cursor_rows: list[tuple[str, str, int, int, int, int]],
    finished_above_floor: list[tuple[str, str, int]],
    *,
    after_crash: bool = False,
) -> LoadedState:
    """Rows as both stores keep them -> the records a core starts from.

    `after_crash`: the last hub died without closing the store. A cursor's delivered_seq is
    committed after the notify it records, so that hub may have delivered more than it wrote down:
    everything it had committed counts as possibly delivered, and goes out again with attempt >= 2.
    Attempt numbers stay an upper bound (a first delivery may say 2), never an understatement.
    """
    import orjson

    from ..records import AgentRecord

    agents = [AgentRecord(n, aid, role, orjson.loads(pp), at) for n, aid, role, pp, at in agent_rows]
    channels = [channel_record(row, head_seqs.get(row[0], 0)) for row in channel_rows]
    cursors: dict[tuple[str, str], Cursor] = {}
    for row in cursor_rows:
        cursors[(row[0], row[1])] = cursor_record(row)
    for recipient, cid, seq in finished_above_floor:
        cur = cursors.get((recipient, cid))
        if cur is not None and seq > cur.ack_floor:
            cur.done.add(seq)
    state = LoadedState(hub_id=hub_id, agents=agents, channels=channels, cursors=list(cursors.values()))
    return assume_delivered(state) if after_crash else state


def assume_delivered(state: LoadedState) -> LoadedState:
    """Count every committed envelope as possibly delivered to each of its channel's participants.

    For a core built after its store lost writes it had sent notifies for: after an unclean
    shutdown, and after a failed commit (its cursor rows, which record what went out, are gone
    while the notifies are not). Everything not acked then goes out again with attempt >= 2, so
    `attempt: 1` only ever marks a first delivery and first deliveries stay in seq order.
    """
    cursors = {(c.recipient, c.channel_id): c for c in state.cursors}
    for ch in state.channels:
        for participant in ch.participants:
            cur = cursors.get((participant, ch.channel_id))
            if cur is None:
                cur = cursors[(participant, ch.channel_id)] = Cursor(participant, ch.channel_id)
            if cur.delivered_seq < ch.committed_seq:
                cur.delivered_seq = ch.committed_seq
                state.assumed.append(cur)
    state.cursors = list(cursors.values())
    return state


ENVELOPE_COLUMNS = (
    "channel_id, seq, envelope_id, sender, audience, type, causation_id, idempotency_key, created_at, body"
)


def envelope_record(row: tuple) -> EnvRecord:
    """A stored envelope row (ENVELOPE_COLUMNS, in that order) -> a record."""
    import orjson

    channel_id, seq, envelope_id, sender, audience, typ, causation_id, key, created_at, body = row
    body = bytes(body)
    text = orjson.loads(body).get("data", {}).get("text") if typ in ("text", "revise") else None
    return EnvRecord(
        channel_id,
        seq,
        envelope_id,
        sender,
        tuple(orjson.loads(audience)) if audience is not None else None,
        typ,
        causation_id,
        key,
        created_at,
        body,
        text if isinstance(text, str) else None,
    )


def channel_record(row: tuple, head: int) -> ChannelRecord:
    """A stored channel row (see the sqlite schema's column order) and its head seq -> a record."""
    import orjson

    cid, typ, topic, creator, parts, created, knobs, state, closed_at, reason, rule_state = row
    return ChannelRecord(
        channel_id=cid,
        type=typ,
        topic=topic,
        creator=creator,
        participants=tuple(orjson.loads(parts)),
        created_at=created,
        knobs=orjson.loads(knobs),
        state=state,
        head_seq=head,
        committed_seq=head,
        closed_at=closed_at,
        close_reason=reason,
        rule_state=orjson.loads(rule_state),
        closed_seq=head if state == "closed" else 0,
    )


def cursor_record(row: tuple[str, str, int, int, int, int]) -> Cursor:
    recipient, cid, floor, delivered, redelivered, dead = row
    return Cursor(
        recipient,
        cid,
        ack_floor=floor,
        next_seq=floor + 1,
        delivered_seq=delivered,
        redelivered=redelivered,
        dead=dead,
    )
