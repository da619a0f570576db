"""A throwaway PostgreSQL server on 127.0.0.1, for tests, benchmarks and the launcher.

    with LocalPostgres() as pg:          # initdb into a temp dir, start on an ephemeral port
        url = pg.url                     # postgresql://postgres@127.0.0.1:PORT/postgres
        store = open_store(pg.url)

PostgreSQL refuses to run as root; as root the server runs as the `postgres` user (through
`setpriv`, which execs, so the PID we hold is the postmaster's). It listens on 127.0.0.1 only, trusts
local connections (it is a scratch server: never expose it) and is stopped by PID: `stop()` asks for
a fast shutdown, `kill()` SIGKILLs its whole process group (a lost database, for fault tests).
The binaries come from Debian's `postgresql-15` (`make test` installs it if missing).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_GLOB = "/usr/lib/postgresql/*/bin"


class PgLocalError(Exception):
    """The local PostgreSQL cannot be set up or started (no binaries, initdb failed, ...)."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL bin directory; PgLocalError saying how to install one if none."""
    env = os.environ.get("AGENTNET_PG_BIN")
    candidates = [env] if env else sorted(glob.glob(PG_GLOB), key=lambda p: int(Path(p).parent.name), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "postgres").is_file() and (Path(cand) / "initdb").is_file():
            return Path(cand)
    raise PgLocalError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
        "(install them: apt-get install postgresql-15, or set AGENTNET_PG_BIN)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _traversable(path: Path, uid: int, gid: int) -> bool:
    """Can uid/gid reach `path` (every ancestor searchable)?"""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        mode = st.st_mode
        if st.st_uid == uid:
            ok = mode & 0o100
        elif st.st_gid == gid:
            ok = mode & 0o010
        else:
            ok = mode & 0o001
        if not ok:
            return False
    return True


class LocalPostgres:
    """One scratch PostgreSQL cluster: `start()` (initdb on first use), `url`, `stop()` / `kill()`.

    `datadir`: where the cluster lives (created; kept after stop so it can be started again).
    Without one, a temp dir under `base` (default: the system temp dir) is made and removed on stop.
    `synchronous_commit`/`fsync` stay PostgreSQL's defaults (on): commits are durable.
    """

    def __init__(
        self,
        datadir: str | os.PathLike[str] | None = None,
        *,
        base: str | os.PathLike[str] | None = None,
        port: int = 0,
        settings: dict[str, str] | None = None,
        existing: bool = False,
    ) -> None:
        """`datadir`: where the cluster lives and stays (None: a temp dir, removed at stop).
        `existing`: only open a cluster made before (a reader, such as `agentnet check`): never initdb."""
        self.bindir = find_bindir()
        self._own_dir = datadir is None
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()
        if datadir is None:
            self.root = Path(tempfile.mkdtemp(prefix="agentnet-pg-", dir=base))
        else:
            self.root = Path(datadir).resolve()
            if existing and not self.root.is_dir():
                raise PgLocalError(f"no PostgreSQL data directory at {self.root}")
            self.root.mkdir(parents=True, exist_ok=True)
            note = self.root / "WHERE"
            if note.exists():  # the cluster asked for here lives where the note says (see below)
                self.root = Path(note.read_text().strip())
                if not self.root.is_dir():
                    raise PgLocalError(
                        f"the PostgreSQL cluster of {note.parent} was kept in {self.root}, which is gone"
                    )
            elif not _traversable(self.root, self.uid, self.gid):
                # The postgres user cannot reach this place (a root-only parent such as /root): keep the
                # cluster in a temp dir instead, for good like the place asked for, and leave a note there.
                where = Path(tempfile.mkdtemp(prefix="agentnet-pg-"))
                note.write_text(f"{where}\n")
                self.root = where
        self.data = self.root / "data"
        if existing and not (self.data / "PG_VERSION").exists():
            raise PgLocalError(f"no PostgreSQL cluster in {self.data}")
        self.port = port or _free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "60",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _cmd(self, args: list[str]) -> list[str]:
        if not self.as_root:
            return args
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *args]

    def _chown(self, path: Path) -> None:
        if self.as_root:
            os.chown(path, self.uid, self.gid)

    def initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._chown(self.root)
        out = subprocess.run(
            self._cmd(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            ),
            capture_output=True,
            text=True,
            cwd=self.root,
        )
        if out.returncode != 0:
            raise PgLocalError(f"initdb failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-400:]}")

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        self.initdb()
        opts: list[str] = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for key, value in self.settings.items():
            opts += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self._chown(self.log_path)
            self.proc = subprocess.Popen(
                self._cmd(opts),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # its own process group: kill() takes the backends too
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PgLocalError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    self.kill()
                    raise PgLocalError(f"postgres did not accept connections within {timeout:g} s: {exc}") from None
            time.sleep(0.02)

    def log_tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT to the postmaster: sessions are ended, everything committed stays)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def discard(self) -> None:
        """Stop and delete the cluster, wherever it was kept (a throwaway whose caller asked for a place)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (its process group): the database is lost at once."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._reap_group()

    def _reap_group(self) -> None:
        if self.proc is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            time.sleep(0.02)

    def create_schema(self, name: str) -> str:
        """A fresh schema and a URL whose sessions use it (one database, isolated stores)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url}?options=-csearch_path%3D{name}"

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m agentnet.pglocal [DATADIR]`: run a scratch server until Ctrl-C, printing its URL."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    pg = LocalPostgres(args[0] if args else None).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # after the server started
    print(pg.url, flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
