"""The run directory's files: run.json, scenario.yaml, keys.yaml and launcher.log."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil

from agentnet.protocol import redact
from agentnet.protocol.ids import utc_iso

from . import checker
from .processes import DASHBOARD_NAME, LAUNCHER_NAME

log = logging.getLogger("agentnet.launcher")


class RunFiles:
    """Part of `Run` (runner.py): its files."""

    def _store_label(self) -> str:
        kind = self.scenario.hub.store_kind
        if kind == "postgresql":
            from agentnet.hub.store.postgres import redact

            if self.scenario.hub.store == "postgresql":  # the launcher's own server, in the run directory
                return f"postgresql-local:{(self.run_dir / 'pg').resolve()}"
            return redact(self.store_url or self.scenario.hub.store)
        return "memory" if self.store_path is None else f"sqlite:{self.store_path.resolve()}"

    def _write_run_file(self) -> None:
        s = self.scenario
        if s.source is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(s.source, self.run_dir / "scenario.yaml")
        info = {
            "scenario": s.name,
            "scenario_file": str(s.source.resolve()) if s.source else None,
            "store": self._store_label(),
            "store_url": self.store_url if self.pg is not None else None,  # the local PostgreSQL while it runs
            "agents": s.agent_names(),
            "launcher_pid": os.getpid(),
            "run_id": self.run_id,
            "started_at": utc_iso(),
        }
        (self.run_dir / checker.RUN_FILE).write_text(json.dumps(info, indent=2) + "\n")

    def _write_keys(self) -> None:
        from agentnet.hub.auth import TokenEntry, new_token, write_auth_file

        entries = [TokenEntry(name=name, role="agent", token=new_token()) for name in self.scenario.agent_names()]
        entries.append(TokenEntry(name=LAUNCHER_NAME, role="supervisor", token=new_token()))
        entries.append(TokenEntry(name=DASHBOARD_NAME, role="observer", token=new_token()))
        self.tokens = {e.name: e.token for e in entries}
        for token in self.tokens.values():
            redact.add_secret(token)
        write_auth_file(self.run_dir / "keys.yaml", entries)

    def _log_to_file(self) -> logging.Handler:
        handler = logging.FileHandler(self.run_dir / "launcher.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        redact.protect_handler(handler)
        logger = logging.getLogger("agentnet")
        self._saved_logging = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.propagate = False  # during the run, the launcher's log goes to the file, not over the view
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        return handler
