"""A real terminal for the dashboard's end-to-end tests: one private tmux server per test.

Each :class:`Term` runs its own tmux server (``tmux -L <unique socket>``, no user config), so the
tests never touch anyone's sessions, and ``close()`` kills that server alone. The screen is read
with ``capture-pane`` and waited on with a deadline (never a bare sleep): under load a Textual app
takes seconds to paint. ``remain-on-exit`` keeps a finished program's last screen and exit status.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.waiting import POLL, WaitTimeout, wait_until

from .procs import REPO


@dataclass(eq=False)
class Term:
    """One program in a tmux pane of a fixed size."""

    command: Sequence[str]
    width: int = 100
    height: int = 30
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    socket: str = field(default_factory=lambda: f"first-{uuid.uuid4().hex[:10]}")
    pane_pid: int | None = None
    rc_file: Path = Path("/nonexistent")
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    def tmux(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self) -> Term:
        env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), "TERM": "xterm-256color", **self.env}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # the shell stays to write the exit status to a file (tmux can be slow to mark a pane dead)
        self.rc_file = Path(tempfile.mkdtemp(prefix="first-term-")) / "rc"
        shell = (
            f"cd {shlex.quote(str(self.cwd))}; env -u COLUMNS -u LINES {exports} {shlex.join(self.command)}; "
            f"echo $? > {shlex.quote(str(self.rc_file))}"
        )
        # COLUMNS/LINES (set under pytest) would override the pane's real size in the program.
        # One tmux invocation: the options are set before the program can exit or be resized
        self.tmux(
            *("new-session", "-d", "-s", "main", "-x", str(self.width), "-y", str(self.height), shell),
            *(";", "set-option", "-g", "remain-on-exit", "on"),
            *(";", "set-option", "-g", "window-size", "manual"),
        )
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", "main", "#{pane_pid}").strip())
        self._remember()
        return self

    # ------------------------------------------------------------------ reading

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "main")

    def history(self) -> str:
        """The screen and everything scrolled off above it (e.g. a summary printed after the dashboard)."""
        return self.tmux("capture-pane", "-p", "-S", "-", "-t", "main")

    def dead(self) -> int | None:
        """The program's exit status once it has exited, else None."""
        try:
            return int(self.rc_file.read_text())
        except (OSError, ValueError):
            return None

    def wait_for(self, what: str | Callable[[str], object], timeout: float = 60.0) -> str:
        """Wait until the screen shows `what` (a substring, or a predicate over the screen's text)."""
        check = (lambda s: what in s) if isinstance(what, str) else what

        def shown() -> str | None:
            self._remember()
            text = self.screen()
            return text if check(text) else None

        try:
            return wait_until(f"{what!r} on the screen", shown, timeout, poll=POLL * 5)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; the screen:\n{self.screen()}") from None

    def wait_exit(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.dead()) is None:
            if time.monotonic() > deadline:
                raise WaitTimeout(f"the program did not exit in {timeout:g} s; the screen:\n{self.screen()}")
            time.sleep(POLL * 5)
        return code

    # ------------------------------------------------------------------ typing

    def press(self, *keys: str) -> None:
        """tmux key names: 'q', 'Tab', 'C-c', 'Enter', 'Escape' ..."""
        for key in keys:
            self.tmux("send-keys", "-t", "main", key)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "main", "-l", text)

    # ------------------------------------------------------------------ processes

    def _remember(self) -> None:
        """Note the pane's program and every descendant seen so far (to prove them gone at the end)."""
        if self.pane_pid is None:
            return
        try:
            root = psutil.Process(self.pane_pid)
            for proc in [root, *root.children(recursive=True)]:
                self._seen.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pane_pid).children(recursive=True) if self.pane_pid else []
        except psutil.Error:
            return []

    def close(self, timeout: float = 20.0) -> None:
        """Kill this tmux server; every process the pane ever ran must be gone within `timeout`."""
        self._remember()
        self.tmux("kill-server", check=False)
        deadline = time.monotonic() + timeout
        alive = self._alive()
        while alive and time.monotonic() < deadline:
            time.sleep(POLL)
            alive = self._alive()
        for pid in alive:  # a straggler fails the test below, but is not left behind
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        shutil.rmtree(self.rc_file.parent, ignore_errors=True)
        assert not alive, f"processes survived the terminal: {alive}"

    def _alive(self) -> list[int]:
        out = []
        for pid, proc in self._seen.items():
            try:  # is_running() compares start times: a reused pid is not ours
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.Error:
                pass
        return out
