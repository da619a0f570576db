"""A PostgreSQL store (`--store postgresql://...`): SQLite's tables and promises on a shared database.

Same guarantees as `sqlite`: a batch is one transaction (a post is answered only after its COMMIT,
which PostgreSQL makes durable: fsync and synchronous_commit stay on); the shell's writer commits
whatever arrived meanwhile (group commit, no timer); envelopes are appended with one INSERT per
batch (`unnest` over arrays), never rewritten; `(channel_id, seq)` is the primary key, so a seq is
never stored twice; `meta.clean_shutdown` tells a restart after a crash from a clean one.

**Leadership.** Any number of hubs may point at one database; only one may write. The writer
session takes a session-level advisory lock (`try_lead`) before it loads or commits anything, and
every commit goes through that same session: if the session ends (the hub died, froze past its lease
or lost the network), the lock is gone with it and nothing more can be committed through it. That is
the fence. The session runs with `idle_session_timeout` and `idle_in_transaction_session_timeout`
set to the lease, and the active hub sends a heartbeat when it has nothing to commit, so a hub that
stops talking loses the lock after about one lease, and a standby (polling `try_lead`) takes over.
The store never reconnects its writer: once its session is gone every commit raises StoreError and
the hub steps down.

Each leadership is a term (`meta.term`, incremented by the hub that takes the lead); every envelope
row records the term whose hub wrote it, so who committed what can be checked afterwards.

Reads (`load_envelopes`, `find_*`) use a second connection; they only ever see committed rows.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from typing import Any

import orjson

from agentnet.protocol import ids

from ..records import ChannelRecord, CommitBatch, Cursor, EnvRecord, LoadedState
from .base import ENVELOPE_COLUMNS, StoreError, channel_record, cursor_record, envelope_record, load_sql_state

SCHEMA_VERSION = 1
LOCK_CLASS = 0x616E  # "an": the advisory lock's first key; the second is derived from the schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents(
    name TEXT PRIMARY KEY, agent_id TEXT NOT NULL, role TEXT NOT NULL,
    passport TEXT NOT NULL, registered_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels(
    channel_id TEXT PRIMARY KEY, type TEXT NOT NULL, topic TEXT, creator TEXT NOT NULL,
    participants TEXT NOT NULL, created_at TEXT NOT NULL, knobs TEXT NOT NULL, state TEXT NOT NULL,
    closed_at TEXT, close_reason TEXT, rule_state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS envelopes(
    channel_id TEXT NOT NULL, seq BIGINT NOT NULL, envelope_id TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL, audience TEXT, type TEXT NOT NULL, causation_id TEXT,
    idempotency_key TEXT, created_at TEXT NOT NULL, body BYTEA NOT NULL,
    term BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY(channel_id, seq));
CREATE INDEX IF NOT EXISTS envelopes_causation ON envelopes(channel_id, causation_id)
    WHERE causation_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_idempotency ON envelopes(sender, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS cursors(
    recipient TEXT NOT NULL, channel_id TEXT NOT NULL, ack_floor BIGINT NOT NULL,
    delivered_seq BIGINT NOT NULL, redelivered BIGINT NOT NULL, dead BIGINT NOT NULL,
    PRIMARY KEY(recipient, channel_id));
CREATE TABLE IF NOT EXISTS receipts(
    recipient TEXT NOT NULL, channel_id TEXT NOT NULL, seq BIGINT NOT NULL,
    envelope_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    at TEXT NOT NULL, reason TEXT,
    PRIMARY KEY(recipient, channel_id, seq));
"""

# Migrations: MIGRATIONS[v] takes a database from schema v to v + 1 (run under the schema lock).
MIGRATIONS: dict[int, list[str]] = {}

INSERT_ENVELOPES = (
    f"INSERT INTO envelopes({ENVELOPE_COLUMNS}, term) SELECT u.*, %s::bigint FROM unnest("
    "%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::bytea[]) AS u"
)
UPSERT_CHANNELS = (
    "INSERT INTO channels SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (channel_id) DO UPDATE SET type=EXCLUDED.type, topic=EXCLUDED.topic,"
    " creator=EXCLUDED.creator, participants=EXCLUDED.participants, created_at=EXCLUDED.created_at,"
    " knobs=EXCLUDED.knobs, state=EXCLUDED.state, closed_at=EXCLUDED.closed_at,"
    " close_reason=EXCLUDED.close_reason, rule_state=EXCLUDED.rule_state"
)
UPSERT_AGENTS = (
    "INSERT INTO agents SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (name) DO UPDATE SET agent_id=EXCLUDED.agent_id, role=EXCLUDED.role,"
    " passport=EXCLUDED.passport, registered_at=EXCLUDED.registered_at"
)
UPSERT_CURSORS = (
    "INSERT INTO cursors SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[],"
    " %s::bigint[], %s::bigint[])"
    " ON CONFLICT (recipient, channel_id) DO UPDATE SET ack_floor=EXCLUDED.ack_floor,"
    " delivered_seq=EXCLUDED.delivered_seq, redelivered=EXCLUDED.redelivered, dead=EXCLUDED.dead"
)
PRUNE_RECEIPTS = (
    "DELETE FROM receipts r USING unnest(%s::text[], %s::text[], %s::bigint[]) AS p(recipient, channel_id, floor)"
    " WHERE r.recipient = p.recipient AND r.channel_id = p.channel_id AND r.seq <= p.floor AND r.status = 'acked'"
)
UPSERT_RECEIPTS = (
    "INSERT INTO receipts SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],"
    " %s::int[], %s::text[], %s::text[])"
    " ON CONFLICT (recipient, channel_id, seq) DO UPDATE SET envelope_id=EXCLUDED.envelope_id,"
    " status=EXCLUDED.status, attempts=EXCLUDED.attempts, at=EXCLUDED.at, reason=EXCLUDED.reason"
)


def _columns(rows: list[tuple] | Any, width: int) -> list[list]:
    """Rows -> one list per column (the arrays `unnest` turns back into rows)."""
    cols: list[list] = [[] for _ in range(width)]
    for row in rows:
        for i in range(width):
            cols[i].append(row[i])
    return cols


def redact(url: str) -> str:
    """The URL without its password, for descriptions and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PgStore:
    """`open_store("postgresql://...")`. `try_lead()` must succeed before `load()` and `commit()`."""

    threaded = True
    commit_on_loop = False
    shared = True  # other hubs may use the same database: the shell waits for leadership

    def __init__(self, url: str, *, lease: float = 2.0, connect_timeout: float = 5.0) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.lease = lease
        self.description = f"postgresql:{redact(url).removeprefix('postgresql://').removeprefix('postgres://')}"
        self.leading = False
        self.term = 0  # this hub's leadership term (meta.term when it took the lead)
        self.after_crash = False
        self.commits = 0
        self._reader_lock = threading.Lock()
        lease_ms = max(100, int(lease * 1000))
        try:
            self._db = self._connect(connect_timeout, lease_ms)
            self._lock_key = self._setup_schema()
            self._reader = self._connect(connect_timeout, 0)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {redact(url)}: {_one_line(exc)}") from None

    def _connect(self, connect_timeout: float, lease_ms: int) -> Any:
        psycopg = self._psycopg
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(connect_timeout)),
            "application_name": "agentnet-hub" if lease_ms else "agentnet-hub-reader",
            "keepalives": 1,
            "keepalives_idle": max(1, lease_ms // 1000),
            "keepalives_interval": 1,
            "keepalives_count": 3,
        }
        if lease_ms:
            kwargs["tcp_user_timeout"] = lease_ms * 2  # a write the network does not take fails
        conn = psycopg.connect(self.url, **kwargs)
        if lease_ms:
            # The lease: a session that says nothing for this long is ended by the server, and its
            # advisory lock with it. (SET, not `options`: the URL may carry its own options.)
            conn.execute(f"SET idle_session_timeout = {lease_ms}")
            conn.execute(f"SET idle_in_transaction_session_timeout = {lease_ms}")
        return conn

    def _setup_schema(self) -> int:
        """Create or migrate the tables (serialised between hubs by a transaction lock); the lock key."""
        db = self._db
        with db.transaction():
            schema = db.execute("SELECT current_database() || '.' || current_schema()").fetchone()[0]
            key = zlib.crc32(schema.encode()) & 0x7FFFFFFF
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS + 1, key))
            db.execute(SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                db.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', %s), ('hub_id', %s),"
                    " ('clean_shutdown', '1'), ('leader', ''), ('term', '0')",
                    (str(SCHEMA_VERSION), ids.new_id("hub")),
                )
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            version = int(meta.get("schema_version", "0"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{redact(self.url)} has schema v{version}; this agentnet reads up to v{SCHEMA_VERSION}"
                )
            while version < SCHEMA_VERSION:
                if version not in MIGRATIONS:
                    raise StoreError(f"{redact(self.url)} has schema v{version}, which cannot be migrated")
                for sql in MIGRATIONS[version]:
                    db.execute(sql)
                version += 1
                db.execute("UPDATE meta SET value=%s WHERE key='schema_version'", (str(version),))
        self.hub_id = meta["hub_id"]
        return key

    # ------------------------------------------------------------------ leadership

    def try_lead(self, address: str = "") -> bool:
        """Take the leadership if nobody holds it (blocking I/O: call from a thread). Idempotent."""
        if self.leading:
            return True
        try:
            got = self._db.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self._lock_key)).fetchone()[0]
            if not got:
                self._end_silent_leader()
                return False
            with self._db.transaction():
                meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
                self.after_crash = meta.get("clean_shutdown") == "0"
                self._db.execute(
                    "UPDATE meta SET value = CASE key WHEN 'clean_shutdown' THEN '0' ELSE %s END"
                    " WHERE key IN ('clean_shutdown', 'leader')",
                    (address,),
                )
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES ('leader', %s) ON CONFLICT DO NOTHING", (address,)
                )
                # Each leadership is a new term; every envelope row records the term that wrote it.
                self._db.execute("INSERT INTO meta(key, value) VALUES ('term', '0') ON CONFLICT DO NOTHING")
                row = self._db.execute(
                    "UPDATE meta SET value = (value::bigint + 1)::text WHERE key='term' RETURNING value"
                ).fetchone()
                self.term = int(row[0])
        except self._psycopg.Error as exc:
            raise StoreError(f"leadership: {_one_line(exc)}") from None
        self.leading = True
        return True

    def _end_silent_leader(self) -> None:
        """Enforce the lease from the standby's side: the session holding the lock that has kept the
        server waiting for it (ClientRead) for over a lease is ended. PostgreSQL's own idle timeouts
        do not cover every case: inside a pipeline (no Sync yet) or a half-sent message the server is
        waiting on the client but has not armed them, so a hub frozen there would keep the lock."""
        self._db.execute(
            "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
            " AND l.objsubid = 2 AND a.wait_event = 'ClientRead'"
            " AND a.state_change < now() - make_interval(secs => %s)",
            (LOCK_CLASS, self._lock_key, self.lease),
        )

    def leader(self) -> str:
        """The address the current leader announced ('' if none): blocking, call from a thread."""
        try:
            with self._reader_lock:
                row = self._reader.execute("SELECT value FROM meta WHERE key='leader'").fetchone()
        except self._psycopg.Error as exc:
            raise StoreError(f"reading the leader: {_one_line(exc)}") from None
        return row[0] if row else ""

    def reconnect(self) -> None:
        """A standby's writer session broke (the database restarted): open a new one. Never for a
        leader: its lock lived in the old session, and a new session would hold nothing."""
        if self.leading:
            raise StoreError("the leader's session is never replaced")
        with contextlib.suppress(Exception):
            self._db.close()
        try:
            self._db = self._connect(5, max(100, int(self.lease * 1000)))
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot reconnect to {redact(self.url)}: {_one_line(exc)}") from None

    def heartbeat(self) -> None:
        """Keep the writer session (and so the lease) alive while there is nothing to commit."""
        try:
            self._db.execute("SELECT 1")
        except self._psycopg.Error as exc:
            self.leading = False
            raise StoreError(f"heartbeat failed: {_one_line(exc)}") from None

    def _require_lead(self) -> None:
        if not self.leading and not self.try_lead():
            raise StoreError(f"another hub leads {redact(self.url)}")

    # ------------------------------------------------------------------ the Store interface

    def load(self) -> LoadedState:
        self._require_lead()
        db = self._db
        try:
            heads = {
                cid: head
                for cid, head in db.execute(
                    "SELECT c.channel_id, (SELECT max(e.seq) FROM envelopes e WHERE e.channel_id = c.channel_id)"
                    " FROM channels c"
                )
                if head is not None
            }
            return load_sql_state(db, self.hub_id, heads, after_crash=self.after_crash)
        except self._psycopg.Error as exc:
            raise StoreError(f"load failed: {_one_line(exc)}") from None

    def commit(self, batch: CommitBatch) -> None:
        if not self.leading:
            raise StoreError("commit refused: this hub does not hold the leadership")
        db = self._db
        try:
            with db.pipeline(), db.transaction():
                if batch.envelopes:
                    db.execute(
                        INSERT_ENVELOPES,
                        [
                            self.term,
                            [r.channel_id for r in batch.envelopes],
                            [r.seq for r in batch.envelopes],
                            [r.envelope_id for r in batch.envelopes],
                            [r.sender for r in batch.envelopes],
                            [
                                None if r.audience is None else orjson.dumps(list(r.audience)).decode()
                                for r in batch.envelopes
                            ],
                            [r.type for r in batch.envelopes],
                            [r.causation_id for r in batch.envelopes],
                            [r.idempotency_key for r in batch.envelopes],
                            [r.created_at for r in batch.envelopes],
                            [r.json for r in batch.envelopes],
                        ],
                    )
                if batch.channels:
                    db.execute(UPSERT_CHANNELS, _columns(batch.channels, 11))
                if batch.agents:
                    db.execute(UPSERT_AGENTS, _columns(batch.agents, 5))
                if batch.cursors:
                    db.execute(UPSERT_CURSORS, _columns(batch.cursors, 6))
                if batch.prune:
                    db.execute(PRUNE_RECEIPTS, _columns(batch.prune, 3))
                if batch.acks:
                    latest = {(a.recipient, a.channel_id, a.seq): a for a in batch.acks}  # one row per key
                    db.execute(
                        UPSERT_RECEIPTS,
                        _columns(
                            [
                                (a.recipient, a.channel_id, a.seq, a.envelope_id, a.status, a.attempts, a.at, a.reason)
                                for a in latest.values()
                            ],
                            8,
                        ),
                    )
        except self._psycopg.Error as exc:
            if db.closed or db.broken:
                self.leading = False  # the session, and the lock with it, is gone: never reconnect
            raise StoreError(f"commit failed: {_one_line(exc)}") from None
        self.commits += 1

    def _read(self, sql: str, args: tuple) -> list[tuple]:
        psycopg = self._psycopg
        with self._reader_lock:
            for attempt in (1, 2):
                try:
                    return self._reader.execute(sql, args).fetchall()
                except psycopg.OperationalError as exc:
                    if attempt == 2 or not (self._reader.closed or self._reader.broken):
                        raise StoreError(f"read failed: {_one_line(exc)}") from None
                    self._reader = self._connect(5, 0)  # readers may reconnect: they fence nothing
                except psycopg.Error as exc:
                    raise StoreError(f"read failed: {_one_line(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]:
        rows = self._read(
            f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE channel_id=%s AND seq>%s ORDER BY seq LIMIT %s",
            (channel_id, after_seq, limit),
        )
        return [envelope_record(r) for r in rows]

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None:
        sql = f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE channel_id=%s AND causation_id=%s"
        args: tuple = (channel_id, causation_id)
        if sender is not None:
            sql, args = sql + " AND sender=%s", (*args, sender)
        rows = self._read(sql + " ORDER BY seq LIMIT 1", args)
        return envelope_record(rows[0]) if rows else None

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None:
        rows = self._read(
            "SELECT channel_id, envelope_id, seq FROM envelopes WHERE sender=%s AND idempotency_key=%s",
            (sender, key),
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    # A closed channel the hub forgot (see HubCore._forget), paged back in; listings in pages.
    _CHANNEL = (
        "c.channel_id, c.type, c.topic, c.creator, c.participants, c.created_at, c.knobs, c.state, c.closed_at,"
        " c.close_reason, c.rule_state, (SELECT max(e.seq) FROM envelopes e WHERE e.channel_id = c.channel_id)"
    )

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None:
        rows = self._read(f"SELECT {self._CHANNEL} FROM channels c WHERE c.channel_id=%s", (channel_id,))
        if not rows:
            return None
        ch = channel_record(rows[0][:-1], rows[0][-1] or 0)
        cursors = self._read(
            "SELECT recipient, channel_id, ack_floor, delivered_seq, redelivered, dead FROM cursors"
            " WHERE channel_id=%s AND recipient = ANY(%s)",
            (channel_id, list(ch.participants)),
        )
        return ch, [cursor_record(r) for r in cursors]

    def drop_closed(self, before: str, keep: set[str], limit: int) -> list[str]:
        if not self.leading:
            raise StoreError("drop refused: this hub does not hold the leadership")
        db = self._db
        try:
            with db.transaction():
                rows = db.execute(
                    "SELECT channel_id FROM channels WHERE state = 'closed' AND closed_at < %s"
                    " ORDER BY closed_at LIMIT %s",
                    (before, limit + len(keep)),
                ).fetchall()
                ids = [r[0] for r in rows if r[0] not in keep][:limit]
                if ids:
                    for table in ("envelopes", "cursors", "receipts", "channels"):
                        db.execute(f"DELETE FROM {table} WHERE channel_id = ANY(%s)", (ids,))
        except self._psycopg.Error as exc:
            raise StoreError(f"dropping closed channels failed: {_one_line(exc)}") from None
        return ids

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]:
        if member is None:
            sql = f"SELECT {self._CHANNEL} FROM channels c WHERE c.channel_id > %s ORDER BY c.channel_id LIMIT %s"
            args: tuple = (after, limit)
        else:
            sql = (
                f"SELECT {self._CHANNEL} FROM cursors k JOIN channels c ON c.channel_id = k.channel_id"
                " WHERE k.recipient=%s AND k.channel_id > %s ORDER BY k.channel_id LIMIT %s"
            )
            args = (member, after, limit)
        return [channel_record(r[:-1], r[-1] or 0) for r in self._read(sql, args)]

    def abandon(self) -> None:
        """Drop the connections without a clean shutdown (what a crash leaves): for tests."""
        for conn in (self._db, self._reader):
            try:
                conn.pgconn.finish()
            except Exception:
                pass
        self.leading = False

    def close(self) -> None:
        try:
            if self.leading and not self._db.closed and not self._db.broken:
                with self._db.transaction():
                    self._db.execute(
                        "UPDATE meta SET value = CASE key WHEN 'clean_shutdown' THEN '1' ELSE '' END"
                        " WHERE key IN ('clean_shutdown', 'leader')"
                    )
                self._db.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, self._lock_key))
        except self._psycopg.Error:
            pass
        self.leading = False
        for conn in (self._db, self._reader):
            try:
                conn.close()
            except Exception:
                pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
