"""Fixtures shared by every test directory: a scratch PostgreSQL server for the whole session.

The server is never skipped: `make test` installs PostgreSQL when it is missing (see Makefile), and
without it these fixtures fail with the reason. Each test gets its own schema (`pg_url`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agentnet.pglocal import LocalPostgres

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """One PostgreSQL for the session, in tmpfs when the machine has one (fsync there is cheap)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shm.stat().st_mode & 0o002 else None
    pg = LocalPostgres(base=base).start()
    pid = pg.pid
    try:
        yield pg
    finally:
        pg.stop()
        # the postmaster and every backend (its process group) are gone, and so is its directory
        assert pid is not None and not psutil.pid_exists(pid), f"postgres (pid {pid}) survived the session"
        assert not pg.root.exists()


@pytest.fixture
def pg_url(pg_server: LocalPostgres) -> str:
    """A URL whose sessions use a schema of this test's own (an empty database, in effect)."""
    return pg_server.create_schema(f"t{next(_schemas)}")
