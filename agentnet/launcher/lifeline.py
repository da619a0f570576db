"""Children of the launcher die with it: PR_SET_PDEATHSIG on Linux, plus a parent-pid watchdog."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time


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
