"""What the dashboard can ask the launcher to do, and the one registry of those controls.

The launcher implements :class:`Controls`; the dashboard only calls ``act``. The new state is never
assumed: the dashboard shows it when the launcher's next process event (or the hub's connection
event) arrives through the feed. ``controls=None`` means read-only (attached to a hub without its
launcher, or playback).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentnet.run.control import VERBS, ControlError, Controls, Poster

__all__ = [
    "CONTROL_SPECS",
    "IRREVERSIBLE",
    "SPECS_BY_VERB",
    "VERBS",
    "ControlError",
    "ControlSpec",
    "Controls",
    "Poster",
]


@dataclass(frozen=True)
class ControlSpec:
    """One control: its key, its binding id (for the footer, help, palette and keymaps) and texts."""

    verb: str
    key: str
    binding_id: str
    label: str
    help: str
    needs_target: bool = True
    irreversible: bool = False


CONTROL_SPECS: tuple[ControlSpec, ...] = (
    ControlSpec(
        "kill",
        "k",
        "control.kill",
        "kill",
        "SIGKILL the selected process, like a crash; nothing restarts it until you press r",
        irreversible=True,
    ),
    ControlSpec("stop", "s", "control.stop", "stop", "Stop the selected process gracefully (SIGTERM), no restart"),
    ControlSpec("pause", "p", "control.pause", "pause", "Pause (SIGSTOP) or resume (SIGCONT) the selected process"),
    ControlSpec(
        "disconnect",
        "d",
        "control.disconnect",
        "disconnect",
        "Ask the hub to drop the selected agent's connection (the process lives on and reconnects)",
    ),
    ControlSpec("restart", "r", "control.restart", "restart", "Restart the selected process"),
    ControlSpec(
        "restart-hub",
        "H",
        "control.restart-hub",
        "restart hub",
        "Restart the hub (agents reconnect and get replays)",
        needs_target=False,
        irreversible=True,
    ),
    ControlSpec(
        "restart-all",
        "R",
        "control.restart-all",
        "restart all",
        "Restart the hub and every agent",
        needs_target=False,
        irreversible=True,
    ),
)

SPECS_BY_VERB: dict[str, ControlSpec] = {spec.verb: spec for spec in CONTROL_SPECS}
SPECS_BY_VERB["resume"] = SPECS_BY_VERB["pause"]
IRREVERSIBLE = frozenset(spec.verb for spec in CONTROL_SPECS if spec.irreversible)


def confirm_text(verb: str, target: str | None) -> str:
    if verb == "kill":
        return (
            f"Kill {target} with SIGKILL? Nothing restarts it until you press r (restart). Meanwhile what is "
            "sent to it waits in the WAL; its unacked envelopes are redelivered when it is back."
        )
    if verb == "restart-hub":
        return "Restart the hub? Every agent disconnects, reconnects and gets its replay."
    if verb == "restart-all":
        return "Restart the hub and every agent?"
    return f"{verb} {target or ''}?"
