"""TLS end to end with a self-signed certificate the test makes (openssl): hub, agent, ask and the
dashboard over wss:// trusting it with --ca-file (or $AGENTNET_CA_FILE); and one clear line, no
traceback, for each mistake: ws:// against the TLS port, wss:// against a plain one, an untrusted
certificate. Also: a non-loopback bind without auth is refused unless --insecure-no-auth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .procs import REPO, HubProc, Procs, wait_until
from .term import Term

pytestmark = pytest.mark.timeout(150)

AGENTNET = [sys.executable, "-m", "agentnet.cli"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def ask(url: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *AGENTNET,
            "ask",
            "What is 6 times 7?",
            "--hub",
            url,
            "--as",
            "asker",
            "--to",
            "bob",
            "--timeout",
            "30",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 1, done
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_wss_with_a_self_signed_certificate(procs: Procs, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    hub = HubProc(procs, tmp_path / "hub.db", ["--tls-cert", str(cert), "--tls-key", str(key)], ca_file=cert).start()
    assert hub.url.startswith("wss://")
    bob = procs.spawn(
        "bob",
        [*AGENTNET, "agent", "--name", "bob", "--brain", "calc", "--hub", hub.url, "--ca-file", str(cert),
         "--state-dir", str(tmp_path / "bob")],
    )  # fmt: skip
    wait_until("bob connected over wss", lambda: (hub.health() or {}).get("agents") == 1, 30)
    answered = ask(hub.url, "--ca-file", str(cert))
    assert answered.returncode == 0 and answered.stdout.strip() == "42", answered
    by_env = ask(hub.url, env={"AGENTNET_CA_FILE": str(cert)})
    assert by_env.returncode == 0 and by_env.stdout.strip() == "42", by_env

    # the mistakes, each one line
    print(one_line_error(ask(hub.url), "not trusted", "--ca-file"))
    plain_url = hub.url.replace("wss://", "ws://")
    print(one_line_error(ask(plain_url), "use wss://"))

    if shutil.which("tmux"):  # the dashboard over wss too
        term = Term([*AGENTNET, "tui", hub.url, "--ca-file", str(cert)], width=160, height=45)
        try:
            term.start()
            term.wait_for("READ-ONLY")
            term.wait_for(lambda s: "bob" in s and "connected" in s)
            again = ask(hub.url, "--ca-file", str(cert))
            assert again.returncode == 0, again
            term.wait_for(lambda s: "What is 6 times 7?" in s and "42" in s)
            term.press("q")
            assert term.wait_exit() == 0
        finally:
            term.close()
    assert bob.terminate() == 0, bob.log()
    assert hub.terminate() == 0
    log = hub.proc.log() if hub.proc else ""
    assert "Traceback" not in log, log


def test_wss_against_a_plain_hub_says_so(procs: Procs, tmp_path: Path) -> None:
    hub = HubProc(procs, tmp_path / "hub.db").start()
    print(one_line_error(ask(hub.url.replace("ws://", "wss://")), "TLS handshake failed", "use ws://"))
    assert hub.terminate() == 0


def test_a_non_loopback_bind_needs_auth_or_the_insecure_flag(tmp_path: Path) -> None:
    refused = subprocess.run(
        [*AGENTNET, "hub", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert refused.returncode == 2
    assert "--insecure-no-auth" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr


async def test_a_hub_that_closes_during_the_handshake_is_not_taken_for_a_tls_port() -> None:
    """A hub killed or stopping mid-handshake (a failover) sends no HTTP answer, as a TLS port does:
    the client must keep trying it (unavailable), not give up on it as a TLS port (it did, once, in
    a loaded failover run: the sender died with "use wss://")."""
    import asyncio

    from agentnet.client import HubClient
    from agentnet.client.connection import HubError

    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the whole upgrade request, then nothing: gone
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(HubError) as raised:
            await HubClient(f"ws://127.0.0.1:{port}/v1", name="probe", reconnect=False).start()
        assert raised.value.code == "unavailable", raised.value
        assert "closed during the handshake" in raised.value.message
    finally:
        server.close()
        await server.wait_closed()
