"""How the dashboard writes times, durations, sizes and sparklines (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_clock(at: float | None) -> str:
    """``HH:MM:SS.mmm`` in UTC (the protocol's time zone)."""
    if at is None:
        return "--:--:--.---"
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def format_t(t: float | None) -> str:
    """The dashboard's one clock: seconds of scenario time, ``t+12.34s`` (``t-0.52s`` before t = 0).

    Every pane, the status line and playback write times with this; the wall time (:func:`format_clock`)
    is shown beside it only where one moment is looked at closely (the inspector, a log line opened).
    """
    if t is None:
        return "t?"
    t = round(t, 2) + 0.0  # no "t-0.00s"
    return f"t{t:+.2f}s"


def format_age(seconds: float | None) -> str:
    """A short human duration: ``4.1 s``, ``3 min 12 s``, ``2 h 05 min``."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def format_duration(seconds: float | None) -> str:
    """Like :func:`format_age` in whole seconds (for table cells that should not flicker)."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    return format_age(seconds)


def format_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def middle_cut(name: str, width: int) -> str:
    """`name` in `width` cells, cut in the middle if longer, so that its end still tells it apart:
    `autogen-registry` in 12 is `autogen-…try`, not `autogen-regi`."""
    if len(name) <= width:
        return name
    tail = (width - 1) // 3
    return name[: width - 1 - tail] + "…" + name[len(name) - tail :]


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def waits(count: int) -> str:
    """'1 envelope waits for it' / '3 envelopes wait for it'."""
    return f"{plural(count, 'envelope')} {'waits' if count == 1 else 'wait'} for it"


SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline_text(values: list[float] | list[int]) -> str:
    """A one-line text sparkline (for table cells), scaled to the largest value."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK_CHARS[0] * len(values)
    last = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(last, round(v / top * last))] for v in values)
