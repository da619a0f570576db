"""Recordings, feeds, playback and the Mermaid export — all without a terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from agentnet.run.feed import QueueFeed, classify, frames_feed, items_feed, merge_feeds, recording_feed
from agentnet.run.recording import RecordingError, RecordingReader, RecordingWriter
from agentnet.tui.diagram import draw_arrow, lane_centres, to_mermaid
from agentnet.tui.model import Arrow, DashboardModel
from agentnet.tui.playback import PlaybackController
from tests.tui.sample import END_T, build_sample, sample_feed_items


def test_writer_and_reader_round_trip(sample_recording: Path) -> None:
    reader = RecordingReader(sample_recording)
    assert reader.header["kind"] == "recording" and reader.header["version"] == 1
    assert reader.header["title"] == "sample"
    expected = build_sample()
    assert len(reader) == len(expected)
    assert [(item.t, item.kind, item.data) for item in reader] == expected
    assert reader.duration == END_T
    assert not reader.truncated


def test_reader_seeks_by_index_time_and_seq(sample_recording: Path) -> None:
    reader = RecordingReader(sample_recording)
    assert reader.seek_index(-5) == 0 and reader.seek_index(10**6) == len(reader)
    position = reader.seek_time(5.0)
    assert all(item.t <= 5.0 for item in reader.items[:position])
    assert reader.items[position].t > 5.0
    position = reader.seek_seq(4, "arith")
    assert position is not None
    appended = reader.items[position - 1].data
    assert appended["type"] == "wal.append" and appended["envelope"]["seq"] == 4
    assert reader.seek_seq(2, "review") is not None
    assert reader.seek_seq(99) is None


def test_reader_tolerates_a_cut_last_line_and_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path) as writer:
        writer.write("caption", {"at": "2026-11-20T10:00:00Z", "text": "one"}, t=0.0)
        writer.write("caption", {"at": "2026-11-20T10:00:01Z", "text": "two"}, t=1.0)
    path.write_bytes(path.read_bytes() + b'{"t": 2.0, "kind": "capt')
    reader = RecordingReader(path)
    assert len(reader) == 2 and reader.truncated
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(RecordingError):
        RecordingReader(other)
    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(orjson.dumps({"kind": "recording", "version": 99}) + b"\n")
    with pytest.raises(RecordingError, match="version 99"):
        RecordingReader(newer)


def test_writer_stamps_time_since_start(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "r.jsonl", meta={"scenario": "consult"}) as writer:
        writer.write_item(("caption", {"text": "x"}))
    reader = RecordingReader(tmp_path / "r.jsonl")
    assert reader.header["scenario"] == "consult"
    assert 0.0 <= reader[0].t < 1.0


def test_playback_step_back_equals_a_fresh_replay(sample_recording: Path) -> None:
    controller = PlaybackController(RecordingReader(sample_recording))
    controller.seek(len(controller))
    assert controller.at_end
    final = controller.model
    controller.step(-30)
    assert controller.rebuilds == 1
    fresh = DashboardModel()
    for item in sample_feed_items()[: len(controller)]:
        if fresh.items_total == controller.position:
            break
        fresh.apply(item)
    assert controller.model.items_total == fresh.items_total == controller.position
    assert [row.seq for row in controller.model.envelopes] == [row.seq for row in fresh.envelopes]
    assert controller.model.clock == fresh.clock
    controller.step(30)
    assert controller.at_end
    assert controller.model.events_total == final.events_total
    assert controller.model.cursors.keys() == final.cursors.keys()


def test_playback_jumps_and_plays_at_speed(sample_recording: Path) -> None:
    controller = PlaybackController(RecordingReader(sample_recording))
    assert controller.jump("4", channel_id="arith") == "seq 4"
    row = controller.model.envelopes[-1]
    assert (row.channel_id, row.seq) == ("arith", 4)
    assert controller.jump("#10") == "item 10" and controller.position == 10
    assert controller.jump("5s") == "t+5.00s" and controller.current_t <= 6.0  # the sample's t = 0 is at 1.0
    assert (
        controller.model.t_of(controller.current_at)
        <= 5.0
        < controller.model.t_of(controller.item_ats()[controller.position])
    )
    assert controller.jump("t+5.5s") == "t+5.50s"
    assert controller.model.format_at(controller.end_at) == "t+19.00s"
    assert controller.jump("10:00:07.45") == "time 10:00:07.45"
    assert controller.model.agents["bob"].session_id == "s-bob-2"
    with pytest.raises(ValueError):
        controller.jump("999")
    with pytest.raises(ValueError):
        controller.jump("soon")

    controller.seek(0)
    assert controller.toggle() is True
    controller.speed = 4.0
    assert controller.advance(1.0)  # 1 s of wall time = 4 s of recording
    assert controller.current_t <= 4.0 < controller.reader[controller.position].t
    assert controller.faster() == 8.0 and controller.slower() == 4.0
    controller.advance(100.0)
    assert controller.at_end and not controller.playing
    assert controller.toggle() is True and controller.position == 0  # play again from the start


async def test_feeds_classify_merge_and_replay(sample_recording: Path) -> None:
    assert classify({"hub": {}, "agents": []})[0] == "snapshot"
    assert classify({"kind": "event", "type": "ack"})[0] == "event"
    with pytest.raises(ValueError):
        classify({"kind": "weird"})

    async def frames():
        yield {"hub": {"hub_id": "h"}, "agents": [], "channels": [], "cursors": []}
        yield {"kind": "event", "type": "ack"}
        yield ("caption", {"text": "already an item"})

    assert [kind for kind, _ in [item async for item in frames_feed(frames())]] == ["snapshot", "event", "caption"]

    queue = QueueFeed(maxsize=2)
    for index in range(4):
        queue.put_nowait("caption", {"text": str(index)})
    queue.close()
    assert queue.dropped == 2  # a full queue drops the oldest, never blocks the producer
    merged = [item async for item in merge_feeds(queue, items_feed([("caption", {"text": "x"})]))]
    assert sorted(data["text"] for _, data in merged) == ["2", "3", "x"]

    replayed = [item async for item in recording_feed(sample_recording)]
    assert replayed == sample_feed_items()
    loop = asyncio.get_running_loop()
    start = loop.time()
    paced = [item async for item in recording_feed(sample_recording, realtime=True, speed=200.0, limit=40)]
    assert len(paced) == 40
    assert loop.time() - start >= build_sample()[39][0] / 200.0 - 0.01


def test_mermaid_export_of_a_channel() -> None:
    model = DashboardModel()
    for item in sample_feed_items():
        model.apply(item)
    text = to_mermaid(model, "arith")
    lines = text.splitlines()
    assert lines[:5] == [
        "sequenceDiagram",
        "    title channel arith: arithmetic",
        "    participant hub as hub",
        "    participant alice as alice",
        "    participant bob as bob",
    ]
    assert "    alice->>hub: #2 post What is 12 times 11?" in lines
    assert "    hub--)bob: #4 redeliver try 2" in lines
    assert "    bob-xhub: #5 nack busy" in lines
    assert "    bob-->>hub: #5 ack" in lines
    assert "carol" not in text
    everything = to_mermaid(model, None)
    assert "participant carol as carol" in everything and "[review]" in everything


def test_draw_arrow_puts_heads_and_labels_between_lanes() -> None:
    centres = lane_centres(["hub", "alice", "bob"], 0, 60)
    assert centres == {"hub": 10, "alice": 30, "bob": 50}
    deliver = Arrow(1, 0.0, "deliver", "hub", "bob", "c", 3, "e", 1)
    line, (start, end) = draw_arrow(deliver, centres, 60, "#3 deliver")
    assert line[10] == "│" and line[15] == "─" and line[49] == "▶" and line[50] == "│"
    assert "#3 deliver" in line and (start, end) == (11, 50)
    ack = Arrow(2, 0.0, "ack", "alice", "hub", "c", 3, "e")
    line, _ = draw_arrow(ack, centres, 60, "#3 ack")
    assert line[11] == "◁" and "┈" in line
    redelivery = Arrow(3, 0.0, "redeliver", "hub", "alice", "c", 3, "e", 2)
    assert "╌" in draw_arrow(redelivery, centres, 60, "x")[0]
