"""What every agentnet process the launcher starts shares, at the bottom of the layers (it imports
nothing from agentnet): dying with its parent, named crash points for fault tests, and the one-line
error exit of the command-line entry points.

* `exit_with_parent()`: get SIGTERM when the parent dies (PR_SET_PDEATHSIG on Linux, plus a
  parent-pid watchdog); `--exit-with-parent` on `agentnet hub | agent | gateway` turns it on.
* `crashpoint(name)`: `AGENTNET_CRASHPOINT=name` makes the process die right there (exit 137);
  `name:N` the N-th time it gets there (mid-stream rather than at the first commit).
  Random kills rarely hit narrow windows (after a reply is posted, before its ack); a crash point
  hits them every time. Inactive unless the variable names the point.
* `cancel_on_signals(task)`: SIGINT and SIGTERM cancel a command's main task (so its cleanup runs),
  also in a process started with SIGINT ignored (a background job); a second signal exits at once.
* `fail(message)`: print `agentnet: error: MESSAGE` to stderr and return the usage exit code.
* `run_on_loop(main, loop)`: `asyncio.run`, on uvloop's event loop when `loop` is `uvloop`, or
  `auto` and uvloop is installed (as uvicorn chooses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EXIT_USAGE = 2
CRASHPOINT_ENV = "AGENTNET_CRASHPOINT"
_ACTIVE, _, _AT = os.environ.get(CRASHPOINT_ENV, "").partition(":")
_hits = 0


def cancel_on_signals(task: asyncio.Task) -> None:
    """Ctrl-C (SIGINT) or SIGTERM cancels `task`, whose `finally` blocks stop what it started. Set
    on the loop explicitly: asyncio.run's own SIGINT handling is skipped when the process inherited
    SIGINT ignored, as a background job of a script does. A second signal exits at once (130); the
    children the command started die with it (`exit_with_parent`)."""
    loop = task.get_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def force() -> None:
        print("interrupted again: exiting at once", file=sys.stderr, flush=True)
        os._exit(130)

    def first() -> None:
        task.cancel()
        for sig in signals:
            loop.add_signal_handler(sig, force)

    for sig in signals:
        loop.add_signal_handler(sig, first)


LOOPS = ("auto", "asyncio", "uvloop")


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `--loop` names (None: asyncio's own)."""
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def run_on_loop(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"agentnet: error: {message}", file=sys.stderr)
    return code


def crashpoint(name: str) -> None:
    global _hits
    if _ACTIVE and name == _ACTIVE:
        _hits += 1
        if _hits >= int(_AT or 1):
            os._exit(137)


def crashpoint_armed(name: str) -> bool:
    """True if `crashpoint(name)` may fire: lets a hot path skip the work of finding the point."""
    return bool(_ACTIVE) and name == _ACTIVE


def exit_with_parent(poll: float = 0.5) -> None:
    """Get SIGTERM when the parent process dies (however it dies, SIGKILL included)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:  # portable fallback: reparenting means the parent is gone
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def exit_with_parent_if_asked(args: argparse.Namespace) -> None:
    """`exit_with_parent()` when the command line said `--exit-with-parent`."""
    if getattr(args, "exit_with_parent", False):
        exit_with_parent()
