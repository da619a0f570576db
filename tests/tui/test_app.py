"""Pilot tests: keys pressed → the (fake) launcher reports the new state through the feed → the pane shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual.widgets import Input

from agentnet.run.feed import QueueFeed
from agentnet.tui.app import DashboardApp, playback_app
from agentnet.tui.controls import CONTROL_SPECS
from agentnet.tui.screens import (
    ConfirmScreen,
    HelpScreen,
    InspectorScreen,
    LogLineScreen,
    PostScreen,
    ProcessLogScreen,
    PromptScreen,
)
from agentnet.tui.widgets.streams import LadderView, LogView, WalView
from tests.tui.conftest import SIZE, cell, live_app, select_row, settle, wait_for
from tests.tui.sample import iso, sample_feed_items
from tests.tui.screen_text import screen_text


def appended(seq: int, text: str, t: float = 21.0) -> dict[str, Any]:
    return {
        "kind": "event",
        "at": iso(t),
        "type": "wal.append",
        "envelope": {
            "envelope_id": f"x{seq}",
            "channel_id": "arith",
            "seq": seq,
            "sender": "alice",
            "audience": None,
            "type": "text",
            "data": {"text": text},
            "created_at": iso(t),
        },
    }


# ------------------------------------------------------------------------------------------ controls


async def test_every_control_key_reaches_the_launcher_and_the_pane_shows_the_new_state() -> None:
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "carol")
        await pilot.press("k", "n")  # declined: nothing happens
        assert launcher.calls == [] and not isinstance(app.screen, ConfirmScreen)
        steps = [
            # key, target, asks first, expected call, (row, column, shown after the launcher reports)
            ("d", "bob", False, ("disconnect", "bob"), ("bob", "conn", "disconnected")),
            ("p", "bob", False, ("pause", "bob"), ("bob", "state", "paused")),
            ("p", "bob", False, ("resume", "bob"), ("bob", "state", "ready")),
            ("s", "alice", False, ("stop", "alice"), ("alice", "state", "stopped")),
            ("r", "alice", False, ("restart", "alice"), ("alice", "restarts", "0+1 you")),
            ("k", "carol", True, ("kill", "carol"), ("carol", "state", "killed")),
            ("H", None, True, ("restart-hub", None), ("hub", "restarts", "0+1 you")),
            ("R", None, True, ("restart-all", None), ("carol", "restarts", "0+1 you")),
        ]
        for key, target, confirm, call, (row, column, shown) in steps:
            if target is not None:
                await select_row(app, pilot, "#processes", target)
            assert cell(app, "#processes", row, column) != shown
            calls = len(launcher.calls)
            await pilot.press(key)
            assert isinstance(app.screen, ConfirmScreen) == confirm  # only irreversible controls ask
            if confirm:
                await pilot.press("y")
            await wait_for(lambda calls=calls: len(launcher.calls) > calls, pilot)
            assert launcher.calls[-1] == call
            await settle(app, pilot, feed)
            assert cell(app, "#processes", row, column) == shown, key
            if key == "k":  # the kill shows up as a stuck cursor, explained in words
                assert cell(app, "#processes", "carol", "conn") == "disconnected"
                assert "⚠ [review] carol's process was killed 0.1 s ago; 1 envelope will be" in screen_text(app)
                assert app.model.explain_cursor(("carol", "review"), app.now()) == (
                    "carol's process was killed 0.1 s ago; 1 envelope will be redelivered when it reconnects"
                )
        assert [spec.verb for spec in CONTROL_SPECS] == [
            "kill",
            "stop",
            "pause",
            "disconnect",
            "restart",
            "restart-hub",
            "restart-all",
        ]
        logged = [line.text for line in app.model.log if line.level == "control"]
        assert "control kill carol: carol killed" in logged and len(logged) == len(steps)


async def test_refused_controls_are_reported_not_assumed_and_the_palette_offers_every_control() -> None:
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "bob")
        launcher.fail_next = "bob is not supervised by this launcher"
        await pilot.press("s")
        await wait_for(lambda: bool(app.control_results), pilot)
        await settle(app, pilot, feed)
        assert app.control_results[0].error
        assert cell(app, "#processes", "bob", "state") == "ready"
        assert any(line.level == "error" and "not supervised" in line.text for line in app.model.log)

        titles = [command.title for command in app.get_system_commands(app.screen)]
        for spec in CONTROL_SPECS:
            assert any(title.startswith(f"Control: {spec.label}") and f"({spec.key})" in title for title in titles)
        assert "Control: kill bob (k)" in titles
        ids = {getattr(binding, "id", None) for binding in app.BINDINGS}
        assert {spec.binding_id for spec in CONTROL_SPECS} <= ids
        await pilot.press("ctrl+p")
        await pilot.pause()
        app.screen.query_one(Input).value = "restart all"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), pilot)
        await pilot.press("y")
        await wait_for(lambda: launcher.calls[-1] == ("restart-all", None), pilot)

        # disconnect makes no sense for the hub: refused here, the launcher is not asked
        await select_row(app, pilot, "#processes", "hub")
        calls = len(launcher.calls)
        await pilot.press("d")
        await pilot.pause()
        assert len(launcher.calls) == calls


async def test_read_only_dashboard_disables_controls_and_says_why() -> None:
    feed = QueueFeed()
    for kind, data in sample_feed_items():
        feed.put_nowait(kind, data)
    app = DashboardApp(feed, None, title="attached")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "bob")
        await pilot.press("k")
        assert not isinstance(app.screen, ConfirmScreen)
        assert cell(app, "#processes", "bob", "state") == "ready"
        status = screen_text(app).splitlines()[0]
        assert status.startswith(" READ-ONLY ") and "controls off" in status
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "no launcher reachable: controls are disabled" in app.screen.mode_note
        labels = [label for _, label, _ in app.screen.keys]
        assert {spec.label for spec in CONTROL_SPECS} <= set(labels)
        assert {"inspect", "follow", "filter", "help", "quit"} <= set(labels)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


# ------------------------------------------------------------------------------------------ streams


async def test_wal_follows_pauses_on_scroll_counts_new_rows_and_filters() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        wal = app.query_one("#wal", WalView)
        assert wal.follow and wal.scroll_y == wal.max_scroll_y > 0
        await pilot.press("up", "up")
        assert not wal.follow and wal.selected_item.seq == 11
        for seq in range(13, 18):
            feed.put_nowait("event", appended(seq, f"late {seq}"))
        await settle(app, pilot, feed)
        assert wal.new_count == 5
        assert "5 new · f to follow" in str(wal.border_subtitle)
        assert wal.selected_item.seq == 11  # the selection stays put while paused
        await pilot.press("f")
        await settle(app, pilot, feed)
        assert wal.follow and wal.new_count == 0 and wal.scroll_y == wal.max_scroll_y
        assert "late 17" in screen_text(app)

        box = app.query_one("#wal-filter", Input)
        for query, expected in [
            ("from:bob", ["132", "42"]),
            ("type:channel.opened", ['{"topic":"arithmetic"}', '{"topic":"review"}']),
            ("times", ["What is 12 times 11?", "And 7 times 6?"]),
        ]:
            await pilot.press("slash")
            assert box.has_focus
            box.value = query
            await pilot.press("enter")
            await settle(app, pilot, feed)
            assert wal.has_focus and not box.display
            assert [row.text for row in wal.selection] == expected
            assert f"filter: {query}" in str(wal.border_title)
        await pilot.press("slash")
        box.value = ""
        await pilot.press("enter")
        await settle(app, pilot, feed)
        assert len(wal.selection) == 19


async def test_selecting_a_channel_focuses_the_wal_and_the_cursors() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#channels", "review")
        await settle(app, pilot, feed)
        wal = app.query_one("#wal", WalView)
        assert {row.channel_id for row in wal.selection} == {"review"}
        assert "channel review" in str(wal.border_title)
        assert app.query_one("#cursors").row_count == 2


async def test_only_visible_rows_are_rendered() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        wal = app.query_one("#wal", WalView)
        rendered: list[int] = []
        original = wal.render_item

        def counting(row: Any, width: int) -> Any:
            rendered.append(row.seq)
            return original(row, width)

        wal.render_item = counting  # type: ignore[method-assign]
        for seq in range(13, 20_013):  # 20,000 envelopes arrive between two refreshes
            app.ingest(("event", appended(seq, f"bulk {seq}")))
        app.sync_views()
        await pilot.pause()
        assert len(wal.selection) == 20_014
        assert sorted(set(rendered)) == list(range(20_013 - wal.size.height, 20_013))


# ------------------------------------------------------------------------------------------ inspector


async def test_enter_opens_the_inspector_which_follows_deliveries_and_never_acks() -> None:
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        wal = app.query_one("#wal", WalView)
        rows = list(wal.selection)
        wal.select(next(index for index, row in enumerate(rows) if (row.channel_id, row.seq) == ("arith", 5)))
        await pilot.press("up")
        assert (wal.selected_item.channel_id, wal.selected_item.seq) == ("arith", 4)
        version, items = app.model.version, app.model.items_total
        await pilot.press("enter")
        assert isinstance(app.screen, InspectorScreen)
        await pilot.pause()
        text = screen_text(app)
        assert "envelope #4 in arith" in text
        assert "And 7 times 6?" in text and '"envelope_id": "env-arith-4"' in text
        assert "t+6.52s redelivered (attempt 2," in text  # the panes' one clock ...
        assert "posted at t+3.50s (10:00:04.500 UTC)" in text  # ... and the wall time behind it
        assert "inspecting never acks" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, InspectorScreen)
        assert (app.model.version, app.model.items_total) == (version, items)  # looking changed nothing
        assert launcher.calls == []

        wal.select(next(index for index, row in enumerate(rows) if (row.channel_id, row.seq) == ("review", 2)))
        await pilot.press("enter")
        assert isinstance(app.screen, InspectorScreen)
        await pilot.pause()
        assert "→ delivered" in screen_text(app)
        feed.put_nowait(
            "event",
            {
                "kind": "event",
                "at": iso(21),
                "type": "ack",
                "recipient": "carol",
                "channel_id": "review",
                "seq": 2,
                "envelope_id": "env-review-2",
            },
        )
        await settle(app, pilot, feed)
        assert "✓ acked" in screen_text(app)  # the open inspector shows the ack as it arrives


# ------------------------------------------------------------------------------------------ diagram


async def test_sequence_tab_selecting_an_arrow_opens_its_envelope_and_exports_mermaid(tmp_path: Path) -> None:
    app, feed, _ = live_app(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#channels", "arith")
        await pilot.press("2")
        await settle(app, pilot, feed)
        ladder = app.query_one("#ladder", LadderView)
        assert ladder.has_focus and ladder.channel_id == "arith"
        assert "carol" not in screen_text(app).splitlines()[5]  # only this channel's lanes
        arrows = list(ladder.selection)
        ladder.select(next(index for index, arrow in enumerate(arrows) if arrow.kind == "redeliver") + 1)
        await pilot.press("up")
        assert ladder.selected_item.kind == "redeliver" and ladder.selected_item.seq == 4
        await pilot.press("enter")
        assert isinstance(app.screen, InspectorScreen) and app.screen.row.seq == 4
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, InspectorScreen), pilot)
        await pilot.press("m")
        await wait_for((tmp_path / "sequence-arith.mmd").exists, pilot)
        exported = (tmp_path / "sequence-arith.mmd").read_text()
        assert exported.startswith("sequenceDiagram") and "hub--)bob: #4 redeliver try 2" in exported


# ------------------------------------------------------------------------------------------ playback


async def test_playback_is_labelled_has_no_controls_and_steps_plays_and_jumps(sample_recording: Path) -> None:
    app = playback_app(sample_recording)
    async with app.run_test(size=SIZE) as pilot:
        # painted (status line and footer), also under load
        await wait_for(lambda: screen_text(app).startswith(" PLAYBACK ") and "space" in screen_text(app), pilot)
        controller = app.playback
        assert controller is not None and controller.position == 0
        text = screen_text(app)
        assert text.startswith(" PLAYBACK ") and "no side effects" in text.splitlines()[0]
        footer = text.splitlines()[-1]
        assert "space play/pause" in footer and " kill " not in footer
        await pilot.press("k")  # nothing to kill in a recording
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert controller.position == 3
        await pilot.press("left_square_bracket")
        assert controller.position == 2 and controller.rebuilds == 1
        await pilot.press("j")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "4"
        await pilot.press("enter")
        assert app.model.envelopes[-1].seq == 4
        await pilot.press("plus", "minus", "plus", "plus")
        assert controller.speed == 4.0
        await pilot.press("space")
        assert controller.playing and controller.position > 2
        controller.speed = 64.0
        await wait_for(lambda: controller.at_end, pilot)
        assert not controller.playing
        app.sync_views()
        await pilot.pause()
        assert f"item {len(controller)}/{len(controller)}" in screen_text(app)


async def test_t_picks_the_control_target_from_any_pane() -> None:
    """A new user never has to find the processes pane: `t` moves the target, `k` then acts on it."""
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        table = app.query_one("#processes")
        order = [table.get_row_at(i)[0] for i in range(table.row_count)]
        start = order.index(app.selected_process) if app.selected_process in order else 0
        await pilot.press("t")
        assert app.selected_process == order[(start + 1) % len(order)]
        await pilot.press("T", "T")
        assert app.selected_process == order[(start - 1) % len(order)]
        target = app.selected_process
        await pilot.press("d")
        await wait_for(lambda: launcher.calls, pilot)
        assert launcher.calls[-1] == ("disconnect", target) or target == "hub"


# ------------------------------------------------------------------------------------- post and quit


async def test_w_posts_a_message_as_an_agent_through_the_launcher() -> None:
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "bob")
        await pilot.press("w")
        assert isinstance(app.screen, PostScreen)
        assert app.screen.query_one("#post-to", Input).value == "bob"  # the selected agent answers
        assert app.screen.query_one("#post-from", Input).value != "bob"
        app.screen.query_one("#post-from", Input).value = "alice"
        app.screen.query_one("#post-text", Input).value = "What is 2 plus 2?"
        await pilot.press("enter")
        await wait_for(lambda: launcher.posts == [("alice", ["bob"], "What is 2 plus 2?")], pilot)
        await wait_for(lambda: any(r.verb == "post" for r in app.control_results), pilot)
        assert app.control_results[-1].message == "alice asked bob in ch-posted"
        await pilot.press("w", "escape")  # cancelled: nothing posted
        assert len(launcher.posts) == 1 and not isinstance(app.screen, PostScreen)


async def test_w_offers_no_autogen_worker_a_channel_post() -> None:
    """AutoGen workers (passport meta via=autogen) read no channel posts: w leaves them out, and says
    why when no other agent is there."""
    app, feed, launcher = live_app()
    for name in ("alice", "bob", "carol"):
        passport = {"description": f"AutoGen worker {name}", "meta": {"via": "autogen"}}
        registered = {"name": name, "agent_id": f"a-{name}", "passport": passport}
        feed.put_nowait("event", {"kind": "event", "at": iso(21.0), "type": "agent.registered", **registered})
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await pilot.press("w")
        await pilot.pause()
        assert not isinstance(app.screen, PostScreen) and launcher.posts == []


async def test_read_only_dashboard_cannot_post() -> None:
    feed = QueueFeed()
    app = DashboardApp(feed, None, title="ro")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        assert not isinstance(app.screen, PostScreen)


async def test_after_a_kill_the_caption_says_what_happens_next_and_which_key_restarts() -> None:
    app, feed, launcher = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "bob")
        await pilot.press("k", "y")
        await wait_for(lambda: ("kill", "bob") in launcher.calls, pilot)
        await wait_for(lambda: "Press r to restart bob" in app.model.captions[-1][1], pilot)
        await settle(app, pilot, feed)
        assert "bob was killed (SIGKILL) by you: nothing restarts it" in screen_text(app)


async def test_q_asks_first_while_the_run_goes_on_and_ctrl_c_stops_at_once() -> None:
    app, feed, _ = live_app(quit_stops_run=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+c")
        await wait_for(lambda: not app.is_running, pilot)
    assert app.return_value == "interrupt"


async def test_q_quits_at_once_when_attached() -> None:
    app, feed, _ = live_app()  # `agentnet tui`: quitting leaves the run alone
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await pilot.press("q")
        await wait_for(lambda: not app.is_running, pilot)


# ------------------------------------------------------------------------------------------- layout


async def test_compact_layout_keeps_the_wal_stream_and_the_event_log_on_screen() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, feed)
        assert app.main.has_class("-compact")
        wal, log = app.query_one("#wal"), app.query_one("#log")
        assert wal.region.height >= 5 and log.region.height >= 5  # rows to read, inside the screen
        assert wal.region.bottom <= 23 and log.region.bottom <= 23
        text = screen_text(app)
        assert "WAL stream" in text and "event log" in text
        footer = text.splitlines()[-1]
        assert "? help" in footer and "q quit" in footer and "t target" in footer
        assert "w post l log" in footer and "…" not in footer  # the labels fit whole at 80 columns
        assert not app.query_one("#cursor-explain").display  # the cursor explanation gives way
    app, feed, _ = live_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(app, pilot, feed)
        assert not app.main.has_class("-compact")
        assert "f follow / filter" in screen_text(app).splitlines()[-1]  # wide: every footer key
        explain = app.query_one("#cursor-explain")
        assert explain.display and explain.region.height == 4  # three lines of explanation, one sparkline


async def test_enter_on_an_event_log_line_shows_it_whole_and_then_its_envelope() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, feed)
        log = app.query_one("#log", LogView)
        log.focus()
        lines = list(log.selection)
        whole = "channel review opened (discussion “review”; alice, carol)"
        log.select(next(index for index, line in enumerate(lines) if line.text == whole))
        await pilot.pause()
        assert whole not in screen_text(app)  # cut with … in the narrow pane
        await pilot.press("enter")
        assert isinstance(app.screen, LogLineScreen)
        await pilot.pause()
        assert whole in screen_text(app)
        await pilot.press("enter")  # this line is about no envelope: enter just closes
        assert not isinstance(app.screen, (LogLineScreen, InspectorScreen))
        log.select(next(index for index, line in enumerate(lines) if line.envelope_id == "env-arith-5"))
        await pilot.press("enter")
        assert isinstance(app.screen, LogLineScreen)
        await pilot.pause()
        assert "enter inspect its envelope" in screen_text(app)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, InspectorScreen), pilot)
        assert "envelope #5 in arith" in screen_text(app)


async def test_z_maximizes_the_focused_pane_itself() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        wal = app.query_one("#wal")
        before = wal.region.height
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is wal and wal.region.height > before
        await pilot.press("z")
        assert app.screen.maximized is None


async def test_status_line_leads_with_the_target_and_the_scenario_clock() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        t0 = app.model.clock - 5.0
        at = datetime.fromtimestamp(t0, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        feed.put_nowait(
            "caption",
            {"kind": "caption", "at": at, "text": "t = 0", "t0": True,
             "faults": [{"at": 1.0, "action": "kill", "target": "bob"}, {"at": 900.0, "action": "restart-hub"}]},
        )  # fmt: skip
        await settle(app, pilot, feed)
        status = screen_text(app).splitlines()[0]
        assert status.startswith(" LIVE  target:")
        assert " t+5." in status and "next: restart-hub at t+900.00s" in status


async def test_the_sequence_tab_follows_in_live_mode() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await pilot.press("2")
        await pilot.pause()
        ladder = app.query_one("#ladder", LadderView)
        await wait_for(lambda: ladder.follow and ladder.scroll_y == ladder.max_scroll_y, pilot)


async def test_l_shows_the_selected_process_log(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "bob.log").write_text("bob: connected to ws://127.0.0.1:1/v1\n")
    app, feed, launcher = live_app()
    launcher.run_dir = tmp_path  # type: ignore[attr-defined]  # as RemoteControls (agentnet tui --run DIR)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "bob")
        await pilot.press("l")
        assert isinstance(app.screen, ProcessLogScreen)
        await wait_for(lambda: "bob: connected to" in screen_text(app), pilot)
        with (tmp_path / "logs" / "bob.log").open("a") as f:
            f.write("bob: reconnected after 0.4 s\n")
        await wait_for(lambda: "reconnected after 0.4 s" in screen_text(app), pilot)  # followed
        await pilot.press("escape")
        assert not isinstance(app.screen, ProcessLogScreen)


async def test_l_on_an_identity_without_a_process_shows_the_hubs_log(tmp_path: Path) -> None:
    """A gateway's identity (autogen-gw, an AutoGen type) is a row of the processes pane with no
    process of its own: `l` says so and shows the hub's log, where its activity is."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "hub.log").write_text("agentnet autogen gateway listening on 127.0.0.1:50051\n")
    app, feed, launcher = live_app()
    launcher.run_dir = tmp_path  # type: ignore[attr-defined]
    feed.put_nowait(
        "event",
        {
            "kind": "event",
            "at": iso(21.0),
            "type": "agent.connected",
            "name": "autogen-gw",
            "agent_id": "a-gw",
            "session_id": "s-gw",
            "role": "agent",
        },
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        await select_row(app, pilot, "#processes", "autogen-gw")
        await pilot.press("l")
        assert isinstance(app.screen, ProcessLogScreen) and app.screen.process_name == "hub"
        await wait_for(lambda: "gateway listening on" in screen_text(app), pilot)


async def test_channels_pane_and_status_line_show_the_hubs_totals_from_the_paged_snapshot() -> None:
    app, feed, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        # a hub that has paged closed channels out of memory: its snapshot counts them in `total`
        snapshot = {
            "hub": {"hub_id": "big", "store": "sqlite", "event_seq": 10_000},
            "agents": [{"name": "alice", "agent_id": "a1", "role": "agent", "connected": True}],
            "channels": [],
            "cursors": [],
            "total": {"agents": 1_000, "channels": 50_000},
        }
        feed.put_nowait("snapshot", snapshot)
        await settle(app, pilot, feed)
        assert app.model.total_channels == 50_000 and app.model.total_agents == 1_000
        assert "50,000 total · 1,000 agents" in str(app.query_one("#channels").border_title)
        status = screen_text(app)
        assert "50,000 channels · 1,000 agents" in status
        assert cell(app, "#channels", "*", "who") == "1,000 agents"


async def test_one_clock_the_same_t_for_an_event_live_and_in_playback(sample_recording: Path) -> None:
    """Every pane writes scenario t (``t+6.50s``); a replay shows the same t for the same event."""

    def times(app: DashboardApp) -> dict[str, str]:
        wal, log, ladder = app.query_one("#wal", WalView), app.query_one("#log", LogView), app.query_one(LadderView)
        for view in (wal, log, ladder):
            view.sync(app.model, force=True)
        replay = next(line for line in log.selection if line.text.startswith("replaying 2 envelopes to bob"))
        row = next(row for row in wal.selection if (row.channel_id, row.seq) == ("arith", 4))
        arrow = next(a for a in ladder.selection if a.kind == "redeliver")
        return {
            "log": log.render_item(replay, 100).plain.split()[0],
            "wal": wal.render_item(row, 100).plain.split()[2],
            "sequence": ladder.render_item(arrow, 100).plain.split()[0],
        }

    app, feed, _ = live_app(sample_recording)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        live = times(app)
        status = screen_text(app).splitlines()[0]
        tooltip = str(app.query_one("#status").tooltip)  # hovering the status line: the wall time of t = 0
        assert "scenario's t = 0 was 10:00:01.000 UTC" in tooltip
    # the sample's t = 0 caption is at 10:00:01: bob's replay (10:00:07.5) is t+6.50s
    assert live == {"log": "t+6.50s", "wal": "t+3.50s", "sequence": "t+6.52s"}
    assert "t+" in status and "UTC" not in status

    app = playback_app(sample_recording)
    async with app.run_test(size=SIZE) as pilot:
        assert app.playback is not None
        app.playback.jump("t+7s")
        app.sync_views()
        await pilot.pause()
        assert times(app) == live
        bar = screen_text(app).splitlines()[-2]
        assert "t+6.90s / t+19.00s" in bar  # the playback bar: the last event at or before t+7s, of the end
        app.playback.seek(0)  # nothing applied yet: no time at all rather than a nonsense one
        app.sync_views()
        assert " t" not in screen_text(app).splitlines()[0].split("ev/s")[0]
        app.playback.seek(2)  # before the t = 0 caption: still scenario t (negative), as recorded
        assert app.model.format_at(app.playback.current_at) == "t-0.70s"


async def test_tab_never_lands_on_a_hidden_pane_in_the_compact_layout() -> None:
    def visible(widget: Any) -> bool:
        node = widget
        while node is not None and node is not app.main:
            if not node.display or not node.visible:
                return False
            node = node.parent
        region = widget.region
        return region.width > 0 and region.height > 0 and app.main.region.contains_region(region)

    app, feed, _ = live_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, feed)
        assert app.main.has_class("-compact")
        for tab in ("overview", "sequence"):
            await pilot.press("1" if tab == "overview" else "2")
            seen = []
            for key in ["tab"] * 8 + ["shift+tab"] * 8:
                await pilot.press(key)
                focused = app.focused
                assert focused is not None and visible(focused), (tab, key, focused)
                seen.append(focused.id)
            if tab == "overview":  # every pane on screen is reached: none skipped, none hidden
                assert {"processes", "channels", "cursors", "wal", "log"} <= set(seen), seen
            else:
                assert set(seen) == {"ladder"}, seen


async def test_the_wal_stream_tells_long_senders_apart() -> None:
    """`autogen-gw` and `autogen-registry` both read `autogen-→` in 8 cells: the sender column grows
    to 12 cells for long names and cuts in the middle, keeping the end."""
    app, feed, _ = live_app()
    for seq, sender in ((90, "autogen-gw"), (91, "autogen-registry")):
        frame = appended(seq, f"from {sender}")
        frame["envelope"]["sender"] = sender
        feed.put_nowait("event", frame)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, feed)
        text = screen_text(app)
        assert "autogen-gw→ " in text and "autogen-…try→ " in text, text
