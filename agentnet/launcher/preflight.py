"""Before anything starts: the scenario is loaded and checked once, the hub's port tried, and the
run directory made. Any problem is one line (ConfigError) and exit code 2."""

from __future__ import annotations

import importlib.util
import socket
from datetime import datetime
from pathlib import Path

from .scenario import Scenario, ScenarioError
from .scenario_load import load_scenario
from .yamlsource import YamlSourceError, load_yaml


class ConfigError(Exception):
    """A problem found before anything started: one line, exit code 2."""


def load_and_check(path: Path) -> Scenario:
    """Load the scenario and check what must hold before starting; ConfigError (one line) if not."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        more = f" (and {len(exc.more)} more: agentnet validate {path})" if exc.more else ""
        raise ConfigError(f"{exc}{more}") from None
    port = scenario.hub.port
    if port:
        problem = port_problem(port)
        if problem:
            raise ConfigError(f"{path}:{_line_of(path, ('hub', 'port'))}: hub.port: {problem}")
    if importlib.util.find_spec("agentnet.agents.cli") is None:
        raise ConfigError("the 'agentnet agent' command is not installed (agentnet.agents.cli is missing)")
    return scenario


def port_problem(
    port: int, host: str = "127.0.0.1", fix: str = "stop what uses it, or set port: 0 for a free one"
) -> str | None:
    """Why a server could not listen on host:port (None if it can), checked the way the hub and
    grpc bind (SO_REUSEADDR: a port in TIME_WAIT is free); `fix` says what to do if it is in use."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1)
    except OSError as exc:
        if exc.errno in (98, 48):  # EADDRINUSE on Linux / macOS
            return f"port {port} on {host} is already in use ({fix})"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    finally:
        sock.close()
    return None


def _line_of(path: Path, key: tuple[str, ...]) -> int:
    try:
        return load_yaml(path).line_of(key)
    except YamlSourceError:
        return 1


def new_run_dir(root: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a run directory under {root}")
