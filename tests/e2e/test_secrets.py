"""No API key in any log or recording, at any level: a run with auth at DEBUG, then a grep.

The grep looks for every 8-character slice of every token, so a key cut in two, quoted or
wrapped in a header line is found as well as a whole one. The auth file itself (keys.yaml) is
the one place the keys are meant to be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .procs import REPO, HubProc, Procs, wait_until, write_auth_file

pytestmark = pytest.mark.timeout(120)

TOKENS = {
    "bob": ("agent", "tok-bob-Secret-4f9a2c7e1b"),
    "carol": ("agent", "tok-carol-Secret-83d1e0aa5f"),
    "asker": ("agent", "tok-asker-Secret-77c0b2d9e4"),
    "watcher": ("observer", "tok-watcher-Secret-19ab3c4d"),
}
AGENTNET = [sys.executable, "-m", "agentnet.cli"]


def slices(token: str, width: int = 8) -> set[str]:
    return {token[i : i + width] for i in range(len(token) - width + 1)}


def leaks(root: Path, tokens: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """`file: slice` for every slice of a token found in a file under root."""
    found = []
    pieces = {piece for token in tokens for piece in slices(token)}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip):
        text = path.read_bytes().decode(errors="replace")
        found += [f"{path.relative_to(root)}: {piece}" for piece in sorted(pieces) if piece in text]
    return found


def test_no_token_in_any_log_at_debug(procs: Procs, tmp_path: Path) -> None:
    auth = write_auth_file(tmp_path / "keys.yaml", TOKENS)
    hub = HubProc(procs, tmp_path / "hub.db", ["--auth-file", str(auth), "--log-level", "debug"]).start()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # bob gets his key on the command line, carol hers in the environment
    bob = procs.spawn(
        "bob",
        [
            *AGENTNET,
            "agent",
            "--name",
            "bob",
            "--brain",
            "calc",
            "--hub",
            hub.url,
            "--log-level",
            "debug",
            "--token",
            TOKENS["bob"][1],
            "--state-dir",
            str(tmp_path / "bob"),
        ],
    )
    carol = procs.spawn(
        "carol",
        [
            *AGENTNET,
            "agent",
            "--name",
            "carol",
            "--brain",
            "echo",
            "--hub",
            hub.url,
            "--log-level",
            "debug",
            "--state-dir",
            str(tmp_path / "carol"),
        ],
        env={"AGENTNET_TOKEN": TOKENS["carol"][1]},
    )
    ready = tmp_path / "watcher.ready"
    watcher = procs.peer(
        "watcher",
        *("observe", "--url", hub.url, "--name", "watcher", "--token", TOKENS["watcher"][1]),
        *("--log", str(tmp_path / "watcher-events.jsonl"), "--ready", str(ready), "--log-level", "debug"),
    )
    wait_until("the observer's snapshot", ready.exists, 30)
    wait_until("bob and carol connected", lambda: (hub.health() or {}).get("agents") == 2, 30)
    ask = subprocess.run(
        [
            *AGENTNET,
            "ask",
            "What is 6 times 7?",
            "--hub",
            hub.url,
            "--as",
            "asker",
            "--to",
            "bob,carol",
            "--token",
            TOKENS["asker"][1],
            "--log-level",
            "debug",
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert ask.returncode == 0, ask.stderr
    assert "bob: 42" in ask.stdout
    (logs / "ask.stdout").write_text(ask.stdout)
    (logs / "ask.stderr").write_text(ask.stderr)
    for proc in (bob, carol):
        assert proc.terminate() == 0, proc.log()
    assert watcher.terminate() == 0, watcher.log()
    assert "DEBUG" in watcher.log()
    assert hub.terminate() == 0
    hub_log = hub.proc.log() if hub.proc else ""
    assert "Authorization" in hub_log, "the hub did not log the upgrade's headers: the test proves nothing"
    assert "DEBUG" in bob.log() and "DEBUG" in carol.log()
    found = leaks(tmp_path, [token for _, token in TOKENS.values()], skip=("keys.yaml",))
    assert not found, f"API keys in logs: {found[:10]}"


def test_no_token_in_a_launcher_run_with_auth_at_debug(tmp_path: Path) -> None:
    scenario = tmp_path / "consult.yaml"
    text = (REPO / "scenarios" / "consult.yaml").read_text().replace("store: sqlite", "store: sqlite\n  auth: true")
    scenario.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO), "AGENTNET_LOG_LEVEL": "debug"}
    done = subprocess.run(
        [*AGENTNET, "up", "--headless", "--timeout", "90", str(scenario)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / ".agentnet" / "runs").iterdir()
    keys = [
        line.split("token:")[1].strip() for line in (run_dir / "keys.yaml").read_text().splitlines() if "token:" in line
    ]
    assert len(keys) >= 3
    assert "DEBUG" in (run_dir / "logs" / "hub.log").read_text()
    assert (run_dir / "recording.jsonl").exists()
    (run_dir / "up.out").write_text(done.stdout + done.stderr)
    found = leaks(run_dir, keys, skip=("keys.yaml",))
    assert not found, f"API keys in the run's logs or recording: {found[:10]}"
