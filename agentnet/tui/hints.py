"""The dashboard's words for newcomers: the key tables of the help screen, and what happens after
an operator's control (the caption the dashboard shows, with the key that undoes it)."""

from __future__ import annotations

POST_KEY = ("w", "post", "Post a message as an agent: it opens a consulting channel and asks (work to watch)")
LOG_KEY = ("l", "process log", "The control target's log file (stdout and stderr), followed while open")
OTHER_KEYS: tuple[tuple[str, str, str], ...] = (
    ("enter", "inspect", "Open the selected envelope (WAL row, diagram arrow, log line)"),
    ("f", "follow", "Follow the newest rows of the focused stream (or pause)"),
    ("/", "filter", "Filter the WAL stream: from:alice type:text to:bob words"),
    ("t / T", "target", "Pick the process the control keys act on (next / previous), from anywhere"),
    ("tab", "next pane", "Move focus to the next pane (shift+tab: previous)"),
    ("1 / 2", "tabs", "Overview / sequence diagram"),
    ("m", "export Mermaid", "Write the selected channel's sequence diagram as a Mermaid file"),
    ("z", "maximize", "Maximize the focused pane (esc to restore)"),
    ("?", "help", "This screen"),
    (
        "q",
        "quit",
        "Quit. Under `agentnet up` this stops the run (asks first while processes run); attached, the run goes on",
    ),
    ("ctrl+c", "stop", "Stop at once, gracefully, like Ctrl-C headless (under `agentnet up`, a second Ctrl-C forces)"),
)
PLAYBACK_KEYS: tuple[tuple[str, str, str], ...] = (
    ("space", "play / pause", "Play the recording at the chosen speed"),
    ("[ / ]", "step", "One item back / forward ({ / } ten items)"),
    ("+ / -", "speed", "Faster / slower (0.25x to 64x)"),
    ("j", "jump", "Jump to a seq (42), an item (#120), a time since start (12.5s) or a UTC time (10:00:03)"),
)


def after_control(verb: str, target: str | None, error: bool = False) -> str | None:
    """What happens next after an operator's control, and which key undoes it (a caption)."""
    if error or not target:
        return None
    who = target
    if verb in ("kill", "stop"):
        how = "killed (SIGKILL)" if verb == "kill" else "stopped"
        return (
            f"{who} was {how} by you: nothing restarts it. What is sent to it waits in the WAL "
            f"(its cursor's lag grows). Press r to restart {who} and watch the replay (↻)."
        )
    if verb == "pause":
        return f"{who} is paused (SIGSTOP): deliveries pile up unacked. Press p again to resume it."
    if verb == "disconnect":
        return f"the hub dropped {who}'s connection: it reconnects by itself and gets a replay (↻)."
    if verb == "restart":
        return f"{who} is back: the hub replays what it had not acked (↻ in the WAL, replay lines in the log)."
    return None
