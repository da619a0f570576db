"""The pure dashboard model: feed items in, what the panes show out. No Textual here."""

from __future__ import annotations

from typing import Any

import pytest

from agentnet.protocol.ids import parse_time
from agentnet.tui.model import (
    DashboardModel,
    RateCounter,
    SeriesSampler,
    WalFilter,
    format_age,
    sparkline_text,
)
from tests.tui.sample import END_T, build_sample, iso, sample_feed_items

T0 = parse_time(iso(0.0))
assert T0 is not None


def at(t: float) -> float:
    assert T0 is not None
    return T0 + t


def loaded(items: list[tuple[str, dict[str, Any]]] | None = None) -> DashboardModel:
    model = DashboardModel()
    for item in items if items is not None else sample_feed_items():
        model.apply(item)
    return model


def event(t: float, type_: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return ("event", {"kind": "event", "at": iso(t), "type": type_, **fields})


def envelope(
    channel_id: str, seq: int, sender: str, text: str = "hi", audience: list[str] | None = None, type_: str = "text"
) -> dict[str, Any]:
    return {
        "envelope_id": f"e-{channel_id}-{seq}",
        "channel_id": channel_id,
        "seq": seq,
        "sender": sender,
        "audience": audience,
        "type": type_,
        "data": {"text": text},
        "causation_id": None,
        "idempotency_key": None,
        "created_at": iso(0),
    }


def channel(channel_id: str, participants: list[str]) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "type": "conversation",
        "topic": "t",
        "creator": participants[0],
        "participants": participants,
        "state": "open",
        "head_seq": 0,
        "created_at": iso(0),
    }


def test_sample_is_time_ordered_and_applies_cleanly() -> None:
    times = [t for t, _, _ in build_sample()]
    assert times == sorted(times)
    model = loaded()
    assert model.bad_items == 0
    assert model.missed_total == 0
    assert model.clock == at(END_T)
    assert model.hub.hub_id == "hub-7f3a"
    assert list(model.channels) == ["arith", "review"]
    assert model.channels["arith"].head_seq == 12
    assert model.lanes == ["hub", "alice", "bob", "carol"]


def test_delivery_marks_follow_each_recipient() -> None:
    model = loaded()
    q2 = model.envelope(channel_id="arith", seq=4)
    assert q2 is not None and q2.text == "And 7 times 6?"
    bob = q2.marks["bob"]
    assert bob.state == "acked"
    assert bob.attempts == 2 and bob.redeliveries == 1
    assert bob.glyph == "✓↻1"
    assert [what for _, what, _ in bob.history] == ["delivered", "redelivered", "acked"]
    nacked = model.envelope(channel_id="arith", seq=5)
    assert nacked is not None
    assert [what for _, what, _ in nacked.marks["bob"].history] == ["delivered", "nacked", "redelivered", "acked"]
    pending = model.envelope(channel_id="review", seq=2)
    assert pending is not None and pending.marks["carol"].state == "delivered"
    # audience null = every participant but the sender
    assert list(pending.marks) == ["carol"]
    assert model.envelope("env-arith-2") is model.envelope(channel_id="arith", seq=2)


def test_cursor_numbers_and_derived_inflight_age() -> None:
    model = loaded()
    carol = model.cursors[("carol", "review")]
    assert (carol.ack_floor, carol.delivered_seq, carol.inflight, carol.lag) == (1, 2, 1, 1)
    assert carol.oldest_inflight() == (2, at(12.05))
    assert carol.oldest_age(model.clock) == pytest.approx(END_T - 12.05)
    bob = model.cursors[("bob", "arith")]
    assert (bob.ack_floor, bob.inflight, bob.lag, bob.redelivered) == (12, 0, 0, 2)


def test_stuck_cursor_explained_when_connected_but_not_acking() -> None:
    model = loaded()
    assert model.explain_cursor(("carol", "review"), model.clock) == (
        "carol is connected but has not acked #2 for 8.0 s; 1 envelope in flight (redelivered after ack_wait)"
    )
    assert model.explain_cursor(("bob", "arith"), model.clock) is None
    assert [key for key, _ in model.stuck_cursors(model.clock)] == [("carol", "review")]
    # young in-flight deliveries are not stuck
    assert model.explain_cursor(("carol", "review"), at(13.0)) is None


def test_stuck_cursor_explained_when_disconnected() -> None:
    items = [
        event(0, "agent.connected", name="bob", session_id="s1", agent_id="a", role="agent"),
        event(0, "channel.opened", channel=channel("c", ["alice", "bob"])),
        *[event(1, "wal.append", envelope=envelope("c", seq, "alice")) for seq in (1, 2, 3)],
        *[event(1.1, "deliver", recipient="bob", channel_id="c", seq=seq, attempt=1) for seq in (1, 2, 3)],
        event(1.2, "cursor", recipient="bob", channel_id="c", ack_floor=0, delivered_seq=3, inflight=3, lag=3),
        event(2.0, "agent.disconnected", name="bob", session_id="s1", code=1006, reason="lost"),
    ]
    model = loaded(items)
    assert model.explain_cursor(("bob", "c"), at(6.1)) == (
        "bob disconnected 4.1 s ago; 3 envelopes will be redelivered when it reconnects"
    )
    assert model.connection_label("bob") == "disconnected"


def test_stuck_cursor_explained_for_killed_paused_and_superseded() -> None:
    base = [
        event(0, "agent.connected", name="bob", session_id="s1", agent_id="a", role="agent"),
        event(0, "channel.opened", channel=channel("c", ["alice", "bob"])),
        event(1, "wal.append", envelope=envelope("c", 1, "alice")),
        event(1.1, "deliver", recipient="bob", channel_id="c", seq=1, attempt=1),
        event(1.2, "cursor", recipient="bob", channel_id="c", ack_floor=0, delivered_seq=1, inflight=1, lag=1),
    ]

    def proc(t: float, state: str) -> tuple[str, dict[str, Any]]:
        return (
            "process",
            {
                "kind": "process",
                "at": iso(t),
                "name": "bob",
                "role": "agent",
                "pid": 7,
                "state": state,
                "reason": "",
                "restarts": 0,
                "started_at": iso(0),
            },
        )

    killed = loaded([*base, proc(2.0, "killed")])
    assert killed.explain_cursor(("bob", "c"), at(5.0)) == (
        "bob's process was killed 3.0 s ago; 1 envelope will be redelivered when it reconnects"
    )
    paused = loaded([*base, proc(2.0, "paused")])
    assert paused.explain_cursor(("bob", "c"), at(5.0)) == (
        "bob is paused (SIGSTOP) for 3.0 s; 1 envelope in flight, the oldest 3.9 s old; "
        "they are redelivered after ack_wait or when it resumes"
    )
    # a new session supersedes the old one: the old session's close does not disconnect bob
    superseded = loaded(
        [
            *base,
            event(3.0, "agent.connected", name="bob", session_id="s2", agent_id="a", role="agent"),
            event(3.1, "agent.disconnected", name="bob", session_id="s1", code=4001, reason="superseded"),
        ]
    )
    assert superseded.agents["bob"].connected
    assert superseded.agents["bob"].session_id == "s2"
    assert any("supersedes s1" in line.text for line in superseded.log)
    alone = loaded([*base, event(3.1, "agent.disconnected", name="bob", session_id="s1", code=4001)])
    assert alone.connection_label("bob") == "superseded"


def test_nack_and_dead_letter_are_logged_and_marked() -> None:
    model = loaded(
        [
            event(0, "channel.opened", channel=channel("c", ["alice", "bob"])),
            event(1, "wal.append", envelope=envelope("c", 1, "alice")),
            event(1.1, "deliver", recipient="bob", channel_id="c", seq=1, attempt=1),
            event(1.2, "nack", recipient="bob", channel_id="c", seq=1, attempt=1, reason="busy"),
            event(1.5, "cursor", recipient="bob", channel_id="c", ack_floor=0, delivered_seq=1, inflight=1, lag=1),
        ]
    )
    assert model.explain_cursor(("bob", "c"), at(2.0)) == (
        "bob nacked #1 (busy); the hub redelivers it after a backoff"
    )
    model.apply(event(3, "dead_letter", recipient="bob", channel_id="c", seq=1, attempts=5, reason="busy"))
    row = model.envelope(channel_id="c", seq=1)
    assert row is not None and row.marks["bob"].state == "dead" and row.marks["bob"].glyph == "†"
    assert model.cursors[("bob", "c")].dead == 1
    levels = [(line.level, line.text) for line in model.log]
    assert ("warn", "bob nacked c #1 after attempt 1: busy") in levels
    assert ("error", "dead letter: c #1 for bob after 5 attempts (busy)") in levels
    assert [arrow.kind for arrow in model.arrows] == ["post", "deliver", "nack", "dead"]


def test_log_has_connections_replays_faults_captions_and_process_changes() -> None:
    texts = [line.text for line in loaded().log]
    for expected in (
        "bob reconnected (session s-bob-2)",  # seen connected before: a reconnect
        "bob disconnected (code 1006, connection lost)",
        "replaying 2 envelopes to bob",
        "replay to bob done (2 envelopes)",
        "fault: kill bob — SIGKILL",
        "now kill bob while a question is in flight",
        "bob: ready → killed (SIGKILL by scenario), exit -9",
        "bob: backoff → starting (restart 1)",
    ):
        assert expected in texts


def test_processes_uptime_and_restarts() -> None:
    model = loaded()
    bob = model.processes["bob"]
    assert (bob.state, bob.pid, bob.restarts) == ("ready", 4102, 1)
    assert bob.last_restart_at == at(7.0)
    assert bob.uptime(model.clock) == pytest.approx(END_T - 7.0)
    assert bob.rss == 38 * 1024 * 1024
    assert model.process_names() == ["hub", "alice", "bob", "carol"]


def test_rates_come_from_event_time_not_the_wall_clock() -> None:
    model = loaded()
    series = model.channel_rate("arith", model.clock, 10)
    assert series == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
    counter = RateCounter()
    for t in (0.1, 0.2, 1.5, 3.9, 3.95):
        counter.add(t)
    assert counter.series(4.0, 5) == [2, 1, 0, 2, 0]
    counter.add(1.7)  # out of order, still within the window
    assert counter.series(4.0, 5) == [2, 2, 0, 2, 0]
    sampler = SeriesSampler()
    sampler.add(1.2, 3)
    sampler.add(3.5, 1)
    assert sampler.series(5.0, 5) == [3, 3, 1, 1, 1]
    assert sampler.series(9.0, 3) == [1, 1, 1]  # forward-filled from before the window


def test_ring_buffers_are_bounded_and_selections_follow_them() -> None:
    model = DashboardModel(max_envelopes=100, max_log=10, max_arrows=50)
    model.apply(event(0, "channel.opened", channel=channel("c", ["alice", "bob"])))
    selection = model.select_wal("c", WalFilter.parse("from:alice"))
    for seq in range(1, 301):
        model.apply(event(seq / 100, "wal.append", envelope=envelope("c", seq, "alice" if seq % 2 else "bob")))
        if seq % 37 == 0:
            selection.sync()
    selection.sync()
    assert len(model.envelopes) == 100
    assert len(model.arrows) == 50
    assert len(model.log) <= 10
    assert [row.seq for row in selection] == list(range(201, 301, 2))
    assert model.envelope(channel_id="c", seq=1) is None  # evicted rows leave the indexes too
    assert len(model._by_key) == 100
    assert selection.index_of_serial(selection[3].serial) == 3


def test_wal_filter_parses_prefixes_and_free_text() -> None:
    wal_filter = WalFilter.parse("from:alice type:text to:bob Times")
    assert (wal_filter.sender, wal_filter.type, wal_filter.recipient, wal_filter.text) == (
        "alice",
        "text",
        "bob",
        "times",
    )
    assert wal_filter.describe() == "from:alice type:text to:bob times"
    model = loaded()
    rows = list(model.select_wal(None, WalFilter.parse("times")))
    assert [row.text for row in rows] == ["What is 12 times 11?", "And 7 times 6?"]
    assert [row.seq for row in model.select_wal("arith", WalFilter.parse("from:bob"))] == [3, 6]
    assert [row.seq for row in model.select_wal(None, WalFilter.parse("type:channel.opened"))] == [1, 1]
    assert len(model.select_wal(None, WalFilter.parse("to:carol"))) == 2


def test_feed_gap_lag_and_resnapshot() -> None:
    model = loaded()
    last = model.event_seq
    assert last is not None
    model.apply(
        (
            "event",
            {
                "kind": "event",
                "event_seq": last + 5,
                "at": iso(21),
                "type": "ack",
                "recipient": "bob",
                "channel_id": "arith",
                "seq": 12,
            },
        )
    )
    assert model.missed_total == 4
    model.apply(
        ("event", {"kind": "event", "event_seq": last + 6, "at": iso(21), "type": "observer.lagged", "dropped": 120})
    )
    assert model.dropped_total == 120
    envelopes = len(model.envelopes)
    model.apply(
        (
            "snapshot",
            {
                "hub": {"hub_id": "hub-7f3a", "store": "sqlite", "event_seq": last + 200},
                "agents": [
                    {
                        "name": "alice",
                        "agent_id": "ag-alice",
                        "connected": True,
                        "session_id": "s",
                        "passport": None,
                        "latency_ms": 1.5,
                    }
                ],
                "channels": [channel("arith", ["alice", "bob"]) | {"head_seq": 40}],
                "cursors": [
                    {
                        "recipient": "bob",
                        "channel_id": "arith",
                        "ack_floor": 30,
                        "delivered_seq": 33,
                        "inflight": 3,
                        "oldest_inflight_age": 2.5,
                        "redelivered": 4,
                        "dead": 1,
                        "lag": 10,
                    }
                ],
            },
        )
    )
    assert model.missed_total == 4  # the snapshot is the new base, no gap counted after lagging
    assert len(model.envelopes) == envelopes  # the WAL ring survives a re-snapshot
    assert list(model.agents) == ["alice"] and model.agents["alice"].latency_ms == 1.5
    assert model.channels["arith"].head_seq == 40
    bob = model.cursors[("bob", "arith")]
    assert (bob.inflight, bob.redelivered, bob.dead) == (3, 4, 1)
    assert bob.oldest_age(model.clock + 1.0) == pytest.approx(3.5)


def test_malformed_items_are_counted_not_raised() -> None:
    model = DashboardModel()
    model.apply(("event", {"type": "deliver", "at": iso(0)}))  # no recipient
    model.apply(("mystery", {}))
    model.apply(("process", {"at": iso(0)}))  # no name
    assert model.bad_items == 3
    assert any("malformed" in line.text for line in model.log)


def test_helpers() -> None:
    assert parse_time("2026-11-20T10:00:00.123Z") == pytest.approx(at(0.123))
    assert parse_time(None) is None and parse_time("garbage") is None
    assert format_age(4.06) == "4.1 s" and format_age(192) == "3 min 12 s" and format_age(7300) == "2 h 01 min"
    assert sparkline_text([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline_text([0, 0]) == "▁▁"


def test_an_agent_that_came_through_an_adapter_has_a_protocol_badge() -> None:
    from agentnet.tui.widgets.tables import with_badge

    model = loaded([])
    model.apply(event(1.0, "agent.registered", name="bob", agent_id="a-1", passport={"meta": {"via": "ag2"}}))
    model.apply(event(1.1, "agent.registered", name="calc", agent_id="a-2", passport={"description": "native"}))
    assert model.agents["bob"].via == "ag2" and model.agents["calc"].via is None
    assert with_badge("bob", model.agents["bob"].via).plain == "bob ag2"
    assert with_badge("calc", None).plain == "calc"
    logged = [line.text for line in model.log]
    assert "bob registered (via ag2)" in logged and "calc registered" in logged
    # registering again in the same session is a passport update (an AutoGen worker's new types);
    # in a new session it is a registration again
    model.apply(event(1.2, "agent.connected", name="bob", session_id="s-1"))
    model.apply(event(1.3, "agent.registered", name="bob", agent_id="a-1", passport={"meta": {"via": "ag2"}}))
    model.apply(event(1.4, "agent.registered", name="bob", agent_id="a-1", passport={"meta": {"via": "ag2"}}))
    model.apply(event(1.5, "agent.disconnected", name="bob", session_id="s-1", code=1000))
    model.apply(event(1.6, "agent.connected", name="bob", session_id="s-2"))
    model.apply(event(1.7, "agent.registered", name="bob", agent_id="a-1", passport={"meta": {"via": "ag2"}}))
    bob = [line.text for line in model.log if line.text.startswith(("bob registered", "bob updated"))]
    assert bob == [
        "bob registered (via ag2)",
        "bob registered (via ag2)",
        "bob updated its passport (via ag2)",
        "bob registered (via ag2)",
    ]


def test_a_hub_takeover_is_a_row_across_the_sequence_diagram() -> None:
    from agentnet.tui.diagram import arrow_label, draw_arrow, lane_centres, lanes_for, to_mermaid
    from agentnet.tui.model import DashboardModel

    model = DashboardModel()
    text = "failover: hub-2 is now the active hub (took over from hub; term 2)"
    model.apply(("caption", {"kind": "caption", "at": "2026-12-07T13:40:15.568Z", "text": text}))
    (arrow,) = [a for a in model.arrows if a.kind == "takeover"]
    row, span = draw_arrow(arrow, lane_centres(lanes_for(model, [arrow]), 0, 120), 120, arrow_label(arrow))
    assert "hub takeover: hub-2 is now the active hub" in row and row.startswith("═") and span == (0, 120)
    selection = model.select_arrows("ch-any")
    assert [selection[i] for i in range(len(selection))] == [arrow]  # shown whichever channel is selected
    assert "Note over hub: hub takeover: hub-2 is now the active hub" in to_mermaid(model, None)


def test_restarts_and_delivered_cells_read_sensibly() -> None:
    from agentnet.tui.widgets.tables import delivered_text, restarts_text

    assert restarts_text(0, 0) == "0" and restarts_text(2, 0) == "2"
    assert restarts_text(0, 1) == "0+1 you"  # an operator restart beside `last restart 6 s ago`
    assert restarts_text(0, 0, 1) == "0+1 fault"  # a scenario's fault, not you
    assert restarts_text(1, 2, 1) == "1+2 you+1 fault"
    assert delivered_text(3, 5).plain == "5"
    assert delivered_text(1202, 1).plain == "≤1202"  # a sender: its own envelopes are skipped
    assert delivered_text(4, 0).plain == "—"


def test_faults_controls_and_connections_are_marked_on_the_sequence_diagram() -> None:
    from agentnet.tui.diagram import arrow_label, draw_arrow, lane_centres, to_mermaid

    model = loaded()
    model.apply(("control", {"kind": "control", "at": iso(END_T + 1), "verb": "pause", "target": "carol"}))
    model.apply(("control", {"at": iso(END_T + 2), "verb": "kill", "target": "x", "error": True, "message": "no"}))
    markers = [(a.kind, a.src, arrow_label(a).strip()) for a in model.arrows if a.kind in a.MARKERS]
    assert markers == [
        ("connect", "alice", "alice connected"),
        ("connect", "bob", "bob connected"),
        ("connect", "carol", "carol connected"),
        ("fault", "bob", "⚡ kill bob"),
        ("disconnect", "bob", "bob disconnected 1006"),
        ("connect", "bob", "bob reconnected"),
        ("fault", "carol", "⚡ pause carol (you)"),  # an operator's control (a refused one is not marked)
    ]
    # in time among the arrows: the kill between bob's last delivery and his disconnect
    kinds = [a.kind for a in model.arrows]
    assert kinds.index("fault") < kinds.index("disconnect") < kinds.index("redeliver")
    # a channel's diagram keeps every fault and the connections of its own participants
    arith = [model.select_arrows("arith")[i] for i in range(len(model.select_arrows("arith")))]
    assert ("connect", "carol") not in [(a.kind, a.src) for a in arith]
    assert [a.detail for a in arith if a.kind == "fault"] == ["kill bob", "pause carol (you)"]
    centres = lane_centres(["hub", "alice", "bob"], 0, 90)
    fault = next(a for a in arith if a.kind == "fault")
    row, span = draw_arrow(fault, centres, 90, arrow_label(fault))
    assert "⚡ kill bob" in row and row.startswith("┄") and span == (0, 90)  # a row across every lane
    back = next(a for a in arith if a.kind == "connect" and a.src == "bob" and a.detail == "reconnected")
    row, _ = draw_arrow(back, centres, 90, arrow_label(back))
    assert "●" in row and "bob reconnected" in row
    mermaid = to_mermaid(model, "arith")
    assert "Note over bob: ⚡ kill bob" in mermaid and "Note over bob: bob reconnected" in mermaid


def test_a_resnapshot_says_which_connections_changed_while_the_dashboard_was_away() -> None:
    """After a hub restart the dashboard re-observes; an agent that reconnected first left no event."""
    model = loaded()

    def agent(name: str, session: str | None, connected: bool) -> dict[str, Any]:
        return {"name": name, "agent_id": f"ag-{name}", "connected": connected, "session_id": session}

    model.apply(
        (
            "snapshot",
            {
                "at": iso(END_T + 2),
                "hub": {"hub_id": "hub-7f3a", "started_at": iso(END_T + 1), "store": "sqlite", "event_seq": 0},
                "agents": [agent("alice", None, False), agent("bob", "s-bob-3", True), agent("carol", None, False)],
                "channels": [],
                "cursors": [
                    {"recipient": "bob", "channel_id": "arith", "ack_floor": 12, "delivered_seq": 13, "inflight": 1}
                ],
            },
        )
    )
    texts = [line.text for line in model.log][-4:]
    assert texts[0] == "snapshot: 3 agents, 0 channels, 1 cursor (event_seq 0) after the hub restarted"
    assert texts[1].startswith("bob reconnected (session s-bob-3) before the dashboard re-attached")
    assert texts[1].endswith("1 envelope in flight to it now")
    assert texts[2:] == [
        "alice disconnected while the dashboard was away",
        "carol disconnected while the dashboard was away",
    ]
    assert [(a.kind, a.src) for a in list(model.arrows)[-3:]] == [
        ("connect", "bob"),
        ("disconnect", "alice"),
        ("disconnect", "carol"),
    ]
    model.apply(event(END_T + 3, "agent.connected", name="alice", agent_id="ag-alice", session_id="s-alice-2"))
    assert model.log[-1].text == "alice reconnected (session s-alice-2)"


def test_a_resnapshot_says_what_a_session_that_came_meanwhile_replayed() -> None:
    """A hub that reports each session's replay (`replayed`, `replaying`) lets the dashboard say
    which replay.start it missed, and show a replay still running as one it saw."""
    model = loaded()

    def agent(name: str, session: str, replayed: int, replaying: bool) -> dict[str, Any]:
        return {
            "name": name,
            "agent_id": f"ag-{name}",
            "connected": True,
            "session_id": session,
            "replayed": replayed,
            "replaying": replaying,
        }

    model.apply(
        (
            "snapshot",
            {
                "at": iso(END_T + 2),
                "hub": {"hub_id": "hub-7f3a", "started_at": iso(END_T + 1), "store": "sqlite", "event_seq": 0},
                "agents": [
                    agent("alice", "s-alice-2", 0, False),
                    agent("bob", "s-bob-3", 2, False),
                    agent("carol", "s-carol-2", 3, True),
                ],
                "channels": [],
                "cursors": [],
            },
        )
    )
    texts = [line.text for line in model.log][-3:]
    assert [t.split(": ", 1)[1] for t in texts] == [
        "nothing to replay; 0 envelopes in flight to it now",
        "2 envelopes replayed to it; 0 envelopes in flight to it now",
        "replaying 3 envelopes to it; 0 envelopes in flight to it now",
    ]
    assert texts[2].startswith("carol reconnected (session s-carol-2) before the dashboard re-attached")
    assert model.connection_label("carol") == "replay 3"
    assert model.connection_label("bob") == model.agents["bob"].connection
    model.apply(event(END_T + 3, "replay.end", recipient="carol", count=3))
    assert model.log[-1].text == "replay to carol done (3 envelopes)"
    assert model.connection_label("carol") == model.agents["carol"].connection


def test_a_cursor_whose_agent_is_away_lags_as_its_channel_grows() -> None:
    """The hub emits nothing for a cursor that does not move (its agent is disconnected): the lag
    grows with each envelope appended for that agent, not only at the agent's next ack."""
    model = loaded()
    bob = model.cursors[("bob", "arith")]
    floor, head = bob.ack_floor, model.channels["arith"].head_seq
    model.apply(event(END_T + 1, "agent.disconnected", name="bob", session_id="s", code=1006, reason="killed"))
    for seq in (head + 1, head + 2):
        model.apply(event(END_T + 2, "wal.append", envelope=envelope("arith", seq, "alice")))
    assert bob.lag == head + 2 - floor
    model.apply(event(END_T + 3, "wal.append", envelope=envelope("arith", head + 3, "bob", audience=["alice"])))
    assert bob.lag == head + 2 - floor  # not addressed to bob


def test_an_ack_with_a_reason_is_settled_unhandled_not_acked() -> None:
    """The AutoGen gateway acks a request whose caller gave up with the reason: ⊘, said in the log."""
    model = loaded()
    head = model.channels["arith"].head_seq
    model.apply(event(END_T + 1, "wal.append", envelope=envelope("arith", head + 1, "alice")))
    model.apply(event(END_T + 2, "deliver", recipient="bob", channel_id="arith", seq=head + 1, attempt=1))
    why = "expired: its caller's deadline passed before a worker took it"
    model.apply(event(END_T + 3, "ack", recipient="bob", channel_id="arith", seq=head + 1, reason=why))
    mark = model.envelopes[-1].marks["bob"]
    assert (mark.state, mark.glyph) == ("settled", "⊘")
    assert mark.history[-1][1:] == ("acked", why)
    assert model.log[-1].text == f"bob settled arith #{head + 1} unhandled: {why}"
    model.apply(event(END_T + 4, "wal.append", envelope=envelope("arith", head + 2, "alice")))
    model.apply(event(END_T + 5, "ack", recipient="bob", channel_id="arith", seq=head + 2))
    assert model.envelopes[-1].marks["bob"].glyph == "✓"
