"""Stores behind one interface: `memory` (volatile) and `sqlite` (durable, the default)."""

from __future__ import annotations

from .base import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
