"""The one way tests wait: poll a condition until it holds, with a generous timeout and a message
that says what was awaited. Never a fixed sleep: the machine is shared and its speed varies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

POLL = 0.02  # seconds between two looks at a condition

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_until(what: str, predicate: Callable[[], T], timeout: float = 30.0, poll: float = POLL) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


async def await_until(what: str, predicate: Callable[[], T], timeout: float = 30.0, poll: float = POLL) -> T:
    """`wait_until` for async tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(poll)
