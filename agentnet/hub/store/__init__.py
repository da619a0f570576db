"""Stores behind one interface: `memory` (volatile), `sqlite` (durable, the default) and `postgresql`
(durable and shared). `base` holds the interface and what every store shares; each store imports it,
and only this package entry imports the stores (so there is no import circle)."""

from __future__ import annotations

from .base import Store, StoreError

__all__ = ["Store", "StoreError", "open_store"]


def open_store(spec: str, *, synchronous: str = "FULL", lease: float = 2.0) -> Store:
    """`memory`, `sqlite:PATH` (a bare path ending in .db also works) or `postgresql://...` (a libpq
    URL; `lease`: seconds of silence after which the database ends a hub's session and leadership)."""
    if spec.startswith(("postgresql://", "postgres://")):
        from .postgres import PgStore

        return PgStore(spec, lease=lease)
    if spec == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    path = spec.removeprefix("sqlite:")
    if spec.startswith("sqlite:") or path.endswith((".db", ".sqlite", ".sqlite3")):
        from .sqlite import SqliteStore

        return SqliteStore(path, synchronous=synchronous)
    raise StoreError(f"unknown store {spec!r}: use 'memory', 'sqlite:PATH' or 'postgresql://USER@HOST:PORT/DB'")
