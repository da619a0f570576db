"""The sequence diagram, without Textual: lane layout, one row per arrow, and Mermaid export."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.cells import cell_len

from agentnet.tui.model import Arrow, DashboardModel

ARROW_LABELS = {
    "post": "post",
    "deliver": "deliver",
    "redeliver": "redeliver",
    "ack": "ack",
    "nack": "nack",
    "dead": "dead",
    "takeover": "takeover",
    "fault": "fault",
    "connect": "connected",
    "disconnect": "disconnected",
}

# (line char, head towards the right, head towards the left)
ARROW_STYLES = {
    "post": ("─", "▶", "◀"),
    "deliver": ("─", "▶", "◀"),
    "redeliver": ("╌", "▷", "◁"),
    "ack": ("┈", "▷", "◁"),
    "nack": ("─", "✗", "✗"),
    "dead": ("━", "†", "†"),
    "takeover": ("═", "═", "═"),
    "fault": ("┄", "┄", "┄"),
    "connect": ("┄", "●", "●"),  # agent → hub: its connection (or a reconnection) came up
    "disconnect": ("┄", "○", "○"),  # agent → hub: its connection went (close code in the label)
}


def lanes_for(model: DashboardModel, arrows: Iterable[Arrow]) -> list[str]:
    """The hub first, then every agent that appears in ``arrows``, in the model's lane order."""
    used = {"hub"}
    for arrow in arrows:
        used.add(arrow.src)
        used.add(arrow.dst)
    return [lane for lane in model.lanes if lane in used] + sorted(used - set(model.lanes))


def lane_centres(lanes: list[str], left: int, width: int) -> dict[str, int]:
    """Column of each lane's vertical line within ``width`` columns starting at ``left``."""
    if not lanes:
        return {}
    step = max(4, width // len(lanes))
    return {lane: left + step // 2 + index * step for index, lane in enumerate(lanes)}


def arrow_label(arrow: Arrow, text: str | None = None) -> str:
    if arrow.kind == "takeover":
        return f" hub takeover: {arrow.detail} "
    if arrow.kind == "fault":
        return f" ⚡ {arrow.detail} "
    if arrow.kind == "connect":
        return f"{arrow.src} {arrow.detail or 'connected'}"
    if arrow.kind == "disconnect":
        return f"{arrow.src} disconnected" + (f" {arrow.detail}" if arrow.detail else "")
    label = f"#{arrow.seq} {ARROW_LABELS[arrow.kind]}"
    if arrow.kind == "redeliver":
        label += f" try {arrow.attempt}"
    if arrow.kind == "post" and text:
        label += f" {text}"
    elif arrow.kind in ("nack", "dead") and arrow.detail:
        label += f" {arrow.detail}"
    return label


def draw_arrow(arrow: Arrow, centres: dict[str, int], width: int, label: str) -> tuple[str, tuple[int, int]]:
    """One diagram row as plain text: lane lines plus this arrow. Returns (text, (start, end) span of
    the arrow) so a renderer can colour it."""
    cells = [" "] * width
    if arrow.kind in ("takeover", "fault"):  # across every lane: the other hub serves; a fault struck
        fill = ARROW_STYLES[arrow.kind][0]
        text = label[: max(0, width - 4)]
        cells = cell_len(text)  # "⚡" takes two cells
        start = max(0, (width - cells) // 2)
        row = fill * start + text + fill * max(0, width - start - cells)
        return row[: width - (cells - len(text))], (0, width)
    for x in centres.values():
        if 0 <= x < width:
            cells[x] = "│"
    a = centres.get(arrow.src)
    b = centres.get(arrow.dst)
    if a is None or b is None or a == b:
        return "".join(cells), (0, 0)
    line, right_head, left_head = ARROW_STYLES[arrow.kind]
    lo, hi = min(a, b), max(a, b)
    for x in range(lo + 1, hi):
        if x < width:
            cells[x] = line
    if b > a:
        cells[min(hi - 1, width - 1)] = right_head
    else:
        cells[lo + 1] = left_head
    room = hi - lo - 4
    if room > 3:
        text = label[:room]
        start = lo + 2 + (room - len(text)) // 2
        for offset, char in enumerate(text):
            if start + offset < width:
                cells[start + offset] = char
    return "".join(cells), (lo + 1, min(hi, width))


_MERMAID_ID = re.compile(r"[^A-Za-z0-9_]")
_MERMAID_UNSAFE = re.compile(r"[;\n\r]")


def _mermaid_id(name: str) -> str:
    ident = _MERMAID_ID.sub("_", name)
    return ident if ident and not ident[0].isdigit() else f"p_{ident}"


def _mermaid_text(text: str, limit: int = 60) -> str:
    text = _MERMAID_UNSAFE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_mermaid(model: DashboardModel, channel_id: str | None) -> str:
    """A Mermaid ``sequenceDiagram`` of the arrows still in the model for one channel (or all).

    Posts and deliveries are solid arrows, redeliveries dotted open arrows (``--)``), acks dotted,
    nacks and dead letters crosses.
    """
    selection = model.select_arrows(channel_id)  # with the markers (faults, connections) that concern it
    arrows = [selection[index] for index in range(len(selection))]
    lanes = lanes_for(model, arrows)
    lines = ["sequenceDiagram"]
    channel = model.channels.get(channel_id) if channel_id else None
    title = f"channel {channel_id}" if channel_id else "all channels"
    if channel is not None and channel.topic:
        title += f": {channel.topic}"
    lines.append(f"    title {_mermaid_text(title, 80)}")
    for lane in lanes:
        lines.append(f"    participant {_mermaid_id(lane)} as {lane}")
    mermaid_arrow = {"post": "->>", "deliver": "->>", "redeliver": "--)", "ack": "-->>", "nack": "-x", "dead": "--x"}
    for arrow in arrows:
        if arrow.kind == "takeover":
            lines.append(f"    Note over {_mermaid_id(lanes[0])}: {_mermaid_text('hub takeover: ' + arrow.detail)}")
            continue
        if arrow.kind in ("fault", "connect", "disconnect"):
            over = arrow.src if arrow.src in lanes else lanes[0]
            lines.append(f"    Note over {_mermaid_id(over)}: {_mermaid_text(arrow_label(arrow).strip())}")
            continue
        text = None
        if arrow.kind == "post":
            row = model.envelope(arrow.envelope_id, channel_id=arrow.channel_id, seq=arrow.seq)
            text = row.text if row is not None else None
        label = arrow_label(arrow, text)
        src, dst = _mermaid_id(arrow.src), _mermaid_id(arrow.dst)
        prefix = f"[{arrow.channel_id}] " if channel_id is None else ""
        lines.append(f"    {src}{mermaid_arrow[arrow.kind]}{dst}: {prefix}{_mermaid_text(label)}")
    return "\n".join(lines) + "\n"
