"""The durable store: one SQLite file in WAL mode, appended to, never rewritten.

Durability: `synchronous=FULL` by default, so a commit whose effects went out survives power
loss, not only a crash. Throughput comes from group commit in the shell (one transaction takes
every post that arrived while the previous commit synced), not from relaxing fsync. Appends are
one INSERT per envelope: a channel's log is never rewritten (the AG2 hub rewrote it on every post).

Threads: `commit` runs on the event loop (in WAL mode with SQLite's synchronous=NORMAL it is CPU
work, ~40-70 us; a hop to a thread and back cost more); with FULL the shell then calls `sync` (an
fsync of the WAL file) before releasing what the commit decided: on the loop while fsyncs are
fast, in a worker thread after a slow one (Hub._sync). EXTRA keeps SQLite's own syncing, and the
whole commit in a thread. Reads (`load_envelopes`, `find_*`) go over a second connection, which WAL
mode lets proceed while a commit is in progress. WAL checkpoints (copying the WAL into the
database and syncing both, 3-7 ms) run in a thread of their own (`_Checkpointer`); the commit after
each one finishes it on the loop (the pages committed meanwhile and the two syncs, ~0.5-1 ms).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from pathlib import Path

from agentnet.child import crashpoint
from agentnet.protocol import ids

from ..records import ChannelRecord, CommitBatch, Cursor, EnvRecord, LoadedState
from .base import ENVELOPE_COLUMNS, StoreError, channel_record, cursor_record, envelope_record, load_sql_state

SCHEMA_VERSION = 1

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
    channel_id TEXT NOT NULL, seq INTEGER NOT NULL, envelope_id TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL, audience TEXT, type TEXT NOT NULL, causation_id TEXT,
    idempotency_key TEXT, created_at TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY(channel_id, seq));
CREATE INDEX IF NOT EXISTS envelopes_causation ON envelopes(channel_id, causation_id)
    WHERE causation_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_idempotency ON envelopes(sender, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS cursors(
    recipient TEXT NOT NULL, channel_id TEXT NOT NULL, ack_floor INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL, redelivered INTEGER NOT NULL, dead INTEGER NOT NULL,
    PRIMARY KEY(recipient, channel_id));
CREATE INDEX IF NOT EXISTS channels_closed ON channels(closed_at) WHERE state = 'closed';
CREATE TABLE IF NOT EXISTS receipts(
    recipient TEXT NOT NULL, channel_id TEXT NOT NULL, seq INTEGER NOT NULL,
    envelope_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    at TEXT NOT NULL, reason TEXT,
    PRIMARY KEY(recipient, channel_id, seq));
"""

CHANNEL_COLUMNS = (
    "channel_id, type, topic, creator, participants, created_at, knobs, state, closed_at, close_reason, rule_state"
)
HEAD = "(SELECT MAX(seq) FROM envelopes e WHERE e.channel_id = channels.channel_id)"


# The thread's checkpoint starts once the WAL has ~700 pages (SQLite's own runs at 1,000). Estimated,
# since Python's sqlite3 does not say: a commit writes each page it changes once, ~7.5 pages plus
# ~0.75 per row (measured: AutoGen RPCs one at a time, 6 rows and ~12 pages a commit; 64 in flight,
# ~50 rows and ~45 pages).
CHECKPOINT_PAGES = 700
PAGES_PER_COMMIT = 7.5
PAGES_PER_ROW = 0.75


class _Checkpointer:
    """Copies the WAL into the database in a thread, so that commits on the event loop do not.

    SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: it syncs the WAL,
    copies every page and syncs the database, 3-7 ms during which the hub serves nobody. Here a
    thread does that copy (a PASSIVE checkpoint never blocks the writer); what was committed while
    it ran is left, and the WAL can start over only once all of it is in the database. So the next
    commit finishes the checkpoint first (`SqliteStore.commit`): a few commits' pages and the two
    syncs, ~0.5-1 ms. (Repeating passes in the thread until one finds nothing new avoids that too,
    but each pass syncs both files again: +20-40% hub CPU for one-at-a-time posts.) SQLite's own
    checkpoint stays as the safety net: if this one falls behind, the commit at 1,000 pages runs it."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        # A checkpoint syncs the WAL before copying it and the database before counting it copied
        # (so the WAL is never reused too early) whatever the build's default: at NORMAL and above.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._wanted = threading.Event()
        self._stopping = False
        self.copied = False  # a pass is done: the next commit finishes the checkpoint
        self._thread = threading.Thread(target=self._run, name="agentnet-sqlite-checkpoint", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self._db.close()
            raise

    def kick(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                busy, _frames, _copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:  # a full disk, say: commits report it; SQLite's own checkpoint remains
                continue
            self.copied = not busy  # busy: another checkpoint was running (SQLite's own, or a commit's finish)

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join()
        self._db.close()


class SqliteStore:
    threaded = True

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.description = f"sqlite:{self.path} (synchronous={synchronous})"
        # A commit's SQLite work is CPU only in WAL mode with synchronous=NORMAL (which syncs the WAL
        # at checkpoints alone), so it runs on the loop. FULL is NORMAL plus an fsync of the WAL
        # file after each commit (`sync`, before anything the commit releases goes out): what
        # SQLite's own FULL does in WAL mode, without a hop to a thread for SQLite's work.
        self.commit_on_loop = synchronous in ("NORMAL", "FULL")
        self.sync_after_commit = synchronous == "FULL"
        self._wal_fd: int | None = None
        if not self.path.parent.is_dir():  # a typo in the path must not quietly create directories
            raise StoreError(
                f"sqlite:{self.path}: the directory {self.path.parent} does not exist (create it, or pick another path)"
            )
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'FULL' else synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._check_meta()
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        self.commits = 0
        self._checkpointer: _Checkpointer | None = None  # started by the first commit that needs it
        self._rows_at_checkpoint = 0
        self._commits_at_checkpoint = 0
        self._full_flag = os.environ.get("AGENTNET_FAULT_DISK_FULL") or None  # a test fault point
        self._sync_fault = os.environ.get("AGENTNET_FAULT_SYNC") or None  # a test fault point
        self._full = False
        self._max_pages = self._db.execute("PRAGMA max_page_count").fetchone()[0]

    def _check_meta(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("hub_id", ids.new_id("hub")),
                    ("clean_shutdown", "1"),
                ],
            )
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        version = int(meta.get("schema_version", "0"))
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema v{version}; this agentnet reads v{SCHEMA_VERSION}")
        self.after_crash = meta.get("clean_shutdown") == "0"
        if self.after_crash:
            # The last hub died without closing the store: make sure what it left is sound.
            result = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise StoreError(f"{self.path} failed its integrity check after an unclean shutdown: {result}")
        self._db.execute("UPDATE meta SET value='0' WHERE key='clean_shutdown'")
        self.hub_id = meta["hub_id"]

    def load(self) -> LoadedState:
        db = self._db
        unreadable = os.environ.get("AGENTNET_FAULT_UNREADABLE")  # a test fault point: a store gone bad
        if unreadable and os.path.exists(unreadable):
            raise StoreError(f"cannot read store {self.path}: disk I/O error (fault point {unreadable})")
        heads = dict(db.execute("SELECT channel_id, MAX(seq) FROM envelopes GROUP BY channel_id"))
        return load_sql_state(db, self.hub_id, heads, after_crash=self.after_crash)

    def commit(self, batch: CommitBatch) -> None:
        import orjson

        db = self._db
        try:
            if self._full_flag is not None:
                self._disk_full_fault()
            if self._checkpointer is not None and self._checkpointer.copied:
                self._finish_checkpoint()
            db.execute("BEGIN IMMEDIATE")
            if batch.envelopes:
                db.executemany(
                    f"INSERT INTO envelopes({ENVELOPE_COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            r.channel_id,
                            r.seq,
                            r.envelope_id,
                            r.sender,
                            None if r.audience is None else orjson.dumps(list(r.audience)).decode(),
                            r.type,
                            r.causation_id,
                            r.idempotency_key,
                            r.created_at,
                            r.json,
                        )
                        for r in batch.envelopes
                    ],
                )
            if batch.channels:
                db.executemany("INSERT OR REPLACE INTO channels VALUES(?,?,?,?,?,?,?,?,?,?,?)", batch.channels)
            if batch.agents:
                db.executemany("INSERT OR REPLACE INTO agents VALUES(?,?,?,?,?)", batch.agents)
            if batch.cursors:
                db.executemany("INSERT OR REPLACE INTO cursors VALUES(?,?,?,?,?,?)", batch.cursors)
            if batch.prune:
                db.executemany(
                    "DELETE FROM receipts WHERE recipient=? AND channel_id=? AND seq<=? AND status='acked'",
                    batch.prune,
                )
            if batch.acks:
                db.executemany(
                    "INSERT OR REPLACE INTO receipts VALUES(?,?,?,?,?,?,?,?)",
                    [
                        (
                            a.recipient,
                            a.channel_id,
                            a.seq,
                            a.envelope_id,
                            a.status,
                            a.attempts,
                            a.at,
                            a.reason,
                        )
                        for a in batch.acks
                    ],
                )
            if batch.envelopes:
                crashpoint("hub.after_insert_before_commit")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"commit failed: {exc}") from None
        self.commits += 1
        self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """Start the checkpoint thread's pass once the WAL has about CHECKPOINT_PAGES pages."""
        rows = self._db.total_changes
        written = (self.commits - self._commits_at_checkpoint) * PAGES_PER_COMMIT
        if written + (rows - self._rows_at_checkpoint) * PAGES_PER_ROW < CHECKPOINT_PAGES:
            return
        self._rows_at_checkpoint, self._commits_at_checkpoint = rows, self.commits
        if self._checkpointer is None:
            try:
                self._checkpointer = _Checkpointer(self.path)
            except Exception:  # no connection or no thread: SQLite's own checkpoints remain
                return
        self._checkpointer.kick()

    def _finish_checkpoint(self) -> None:
        """Copy what was committed while the checkpoint thread ran; the WAL then starts over."""
        assert self._checkpointer is not None
        self._checkpointer.copied = False
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # not this commit's failure; SQLite's own checkpoint remains
            pass

    def sync(self) -> None:
        """Make every commit so far durable against power loss: fsync the WAL file. (The WAL is
        reset in place after a checkpoint, never replaced, while the store is open.)"""
        try:
            if self._sync_fault is not None and os.path.exists(self._sync_fault):
                self._sync_fault_point(self._sync_fault)
            if self._wal_fd is None:
                # The file SQLite writes: it resolves a symlinked database path (3.33+).
                main = self._db.execute("PRAGMA database_list").fetchone()[2]
                self._wal_fd = os.open(f"{main}-wal", os.O_RDONLY)
            os.fsync(self._wal_fd)
        except OSError as exc:
            raise StoreError(f"commit failed: cannot sync {self.path}-wal: {exc}") from None

    @staticmethod
    def _sync_fault_point(flag: str) -> None:
        """Fault point for tests: while the file named by $AGENTNET_FAULT_SYNC exists, each sync does
        what it says: `fail` (an I/O error, as an fsync after a disk error) or a number of seconds
        (a slow disk, over early if FILE goes; `FILE.syncing` exists while it lasts)."""
        try:
            with open(flag) as f:
                what = f.read().strip()
        except FileNotFoundError:  # the fault ended just now
            return
        try:
            seconds = float(what)
        except ValueError:  # `fail`, or anything else: an I/O error
            raise OSError(errno.EIO, f"Input/output error (fault point {flag}: {what!r})") from None
        marker = f"{flag}.syncing"
        with open(marker, "w"):
            pass
        try:
            until = time.monotonic() + seconds
            while time.monotonic() < until and os.path.exists(flag):
                time.sleep(0.01)
        finally:
            os.unlink(marker)

    def _disk_full_fault(self) -> None:
        """Fault point for tests: while the file named by $AGENTNET_FAULT_DISK_FULL exists the database
        may not grow (SQLite's max_page_count), so a commit that needs a new page fails with a real
        SQLITE_FULL, as on a full disk; once the file is gone the store may grow again."""
        assert self._full_flag is not None
        full = os.path.exists(self._full_flag)
        if full != self._full:
            self._full = full
            pages = self._db.execute("PRAGMA page_count").fetchone()[0] if full else self._max_pages
            self._db.execute(f"PRAGMA max_page_count={int(pages)}")

    def load_envelopes(self, channel_id: str, after_seq: int, limit: int) -> list[EnvRecord]:
        rows = self._reader.execute(
            f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE channel_id=? AND seq>? ORDER BY seq LIMIT ?",
            (channel_id, after_seq, limit),
        ).fetchall()
        return [envelope_record(r) for r in rows]

    def find_by_causation(self, channel_id: str, causation_id: str, sender: str | None) -> EnvRecord | None:
        sql = f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE channel_id=? AND causation_id=?"
        args: tuple = (channel_id, causation_id)
        if sender is not None:
            sql, args = sql + " AND sender=?", (*args, sender)
        # `+seq`: ordering by the bare column makes SQLite walk the primary key (channel_id, seq) and
        # test every row of the channel; the causation index finds the few candidates directly.
        row = self._reader.execute(sql + " ORDER BY +seq LIMIT 1", args).fetchone()
        return envelope_record(row) if row else None

    def find_idempotent(self, sender: str, key: str) -> tuple[str, str, int] | None:
        row = self._reader.execute(
            "SELECT channel_id, envelope_id, seq FROM envelopes WHERE sender=? AND idempotency_key=?",
            (sender, key),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def load_channel(self, channel_id: str) -> tuple[ChannelRecord, list[Cursor]] | None:
        db = self._reader
        row = db.execute(f"SELECT {CHANNEL_COLUMNS}, {HEAD} FROM channels WHERE channel_id=?", (channel_id,)).fetchone()
        if row is None:
            return None
        ch = channel_record(row[:-1], row[-1] or 0)
        cursors = []
        for participant in ch.participants:
            found = db.execute(
                "SELECT recipient, channel_id, ack_floor, delivered_seq, redelivered, dead FROM cursors"
                " WHERE recipient=? AND channel_id=?",
                (participant, channel_id),
            ).fetchone()
            if found is not None:
                cursors.append(cursor_record(found))
        return ch, cursors

    def list_channels(self, after: str, limit: int, member: str | None) -> list[ChannelRecord]:
        if member is None:
            sql = f"SELECT {CHANNEL_COLUMNS}, {HEAD} FROM channels WHERE channel_id>? ORDER BY channel_id LIMIT ?"
            args: tuple = (after, limit)
        else:  # a member has a cursor row in each of its channels once anything reached it
            sql = (
                f"SELECT {CHANNEL_COLUMNS}, {HEAD} FROM cursors c JOIN channels USING(channel_id)"
                " WHERE c.recipient=? AND c.channel_id>? ORDER BY c.channel_id LIMIT ?"
            )
            args = (member, after, limit)
        return [channel_record(row[:-1], row[-1] or 0) for row in self._reader.execute(sql, args)]

    def drop_closed(self, before: str, keep: set[str], limit: int) -> list[str]:
        db = self._db
        try:
            found = db.execute(
                "SELECT channel_id, participants FROM channels WHERE state = 'closed' AND closed_at < ?"
                " ORDER BY closed_at LIMIT ?",
                (before, limit + len(keep)),
            ).fetchall()
            import orjson

            dropped = [(cid, orjson.loads(parts)) for cid, parts in found if cid not in keep][:limit]
            if not dropped:
                return []
            db.execute("BEGIN IMMEDIATE")
            for cid, participants in dropped:
                db.execute("DELETE FROM envelopes WHERE channel_id=?", (cid,))
                for name in participants:  # by primary key (recipient, channel_id): no scan
                    db.execute("DELETE FROM cursors WHERE recipient=? AND channel_id=?", (name, cid))
                    db.execute("DELETE FROM receipts WHERE recipient=? AND channel_id=?", (name, cid))
                db.execute("DELETE FROM channels WHERE channel_id=?", (cid,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"dropping closed channels failed: {exc}") from None
        return [cid for cid, _ in dropped]

    def close(self) -> None:
        if self._checkpointer is not None:  # first: the last connection to close checkpoints and removes the WAL
            self._checkpointer.stop()
            self._checkpointer = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        try:
            self._db.execute("UPDATE meta SET value='1' WHERE key='clean_shutdown'")
            self._db.close()
            self._reader.close()
        except sqlite3.Error:
            pass
