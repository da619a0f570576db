"""`agentnet tui URL` (attach the dashboard to a running hub) and `agentnet replay RECORDING`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from agentnet.run.control import RemoteControls, arequest, find_running, read_control_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tui",
        help="attach the dashboard to a running hub as an observer",
        description="Watch any hub live. Controls (kill, pause, restart, ...) are enabled when the "
        "`agentnet up` that started it is reachable: pass --run DIR, or it is found in .agentnet/runs.",
    )
    p.add_argument(
        "url",
        nargs="?",
        default="ws://127.0.0.1:8765/v1",
        help="hub URL, or several comma-separated: the dashboard follows whichever is active "
        "(default: ws://127.0.0.1:8765/v1)",
    )
    p.add_argument("--token", default=os.environ.get("AGENTNET_TOKEN"), help="observer API key (or $AGENTNET_TOKEN)")
    p.add_argument("--name", default="dashboard", help="observer name (must match the token's name)")
    p.add_argument(
        "--ca-file",
        default=os.environ.get("AGENTNET_CA_FILE"),
        help="PEM file of the CA (or self-signed certificate) to trust for wss:// (or $AGENTNET_CA_FILE)",
    )
    p.add_argument("--run", dest="run_dir", type=Path, help="run directory of the `agentnet up` to control")
    p.set_defaults(run=_run_tui)

    r = sub.add_parser(
        "replay",
        help="open a recorded run in the dashboard (playback, no side effects)",
        description="Step through RUN_DIR/recording.jsonl: back and forth, play/pause, speed, jump to a seq or time.",
    )
    r.add_argument("recording", type=Path, help="a recording.jsonl, or the run directory holding one")
    r.add_argument("--start", choices=["begin", "end"], default="begin", help="where playback starts")
    r.set_defaults(run=_run_replay)


def _find_controls(run: Path | None) -> tuple[RemoteControls | None, str | None]:

    run_dir = run or find_running()
    if run_dir is None or read_control_file(run_dir) is None:
        return None, "read-only: no running `agentnet up` found (pass --run DIR to control one)"
    return RemoteControls(run_dir), None


async def _scenario_t0(controls: RemoteControls | None) -> float | None:
    """The running `up`'s t = 0 as wall time (its status says how far t has got), so a dashboard
    attached with --run shows the same scenario t as the launcher's own; None if it cannot say."""
    if controls is None:
        return None
    try:
        answer = await arequest(controls.run_dir, {"op": "status"}, timeout=5.0)
    except Exception:
        return None
    t = (answer.get("status") or {}).get("t")
    return time.time() - float(t) if isinstance(t, int | float) else None


def _run_tui(args: argparse.Namespace) -> int:
    from agentnet.client import HubError, HubURLError, ObserverClient, hub_urls
    from agentnet.protocol.ids import utc_iso
    from agentnet.run.feed import QueueFeed, merge_feeds
    from agentnet.tui.app import run_dashboard

    try:
        hub_urls(args.url)
    except HubURLError as exc:
        print(f"agentnet tui: {exc}", file=sys.stderr)
        return 2
    controls, why = _find_controls(args.run_dir)

    async def main() -> None:
        t0 = await _scenario_t0(controls)
        async with ObserverClient(args.url, args.name, token=args.token, ca_file=args.ca_file) as feed:
            # the hub going away is said in the event log (and the next snapshot says it is back)
            status = QueueFeed(maxsize=100)
            feed.hub.on_disconnect = lambda reason: status.put_nowait(
                "status", {"kind": "status", "state": "reconnecting", "detail": f"hub {reason}", "at": utc_iso()}
            )
            await run_dashboard(
                merge_feeds(feed, status),
                controls,
                title=f"agentnet {args.url}",
                read_only_reason=why,
                scenario_t0=t0,
            )

    try:
        asyncio.run(main())
    except HubError as exc:
        print(f"agentnet tui: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from agentnet.tui.app import run_playback

    path = args.recording / "recording.jsonl" if args.recording.is_dir() else args.recording
    if not path.exists():
        print(f"agentnet replay: no recording at {path}", file=sys.stderr)
        return 2
    asyncio.run(run_playback(path, start=args.start))
    return 0
