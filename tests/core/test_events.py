"""Typed observer events: the frames the feed sends are the ones it sent before the types existed,
every event the core emits survives encode -> decode, unknown types decode without raising, and
docs/protocol.md lists the events from the classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agentnet.hub.effects import Emit
from agentnet.protocol import events, frames
from agentnet.protocol.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    EnvelopeView,
    EventError,
    UnknownEvent,
    WalAppend,
    decode_event,
    encode,
)
from tests.core.harness import CoreHarness

# What the hub put in each event frame, in order, before events had types (hub/core.py `_emit`
# kwargs and the shell's ObserverFeed): the encoding must stay byte-identical to these.
LEGACY_FIELDS: dict[str, tuple[str, ...]] = {
    "agent.connected": ("name", "agent_id", "session_id", "role"),
    "agent.disconnected": ("name", "session_id", "code", "reason"),
    "agent.registered": ("name", "agent_id", "passport"),
    "channel.opened": ("channel",),
    "channel.closed": ("channel",),
    "wal.append": ("envelope",),
    "deliver": ("recipient", "channel_id", "seq", "envelope_id", "attempt", "reason"),
    "ack": ("recipient", "channel_id", "seq", "envelope_id", "reason"),  # reason: an extension
    "nack": ("recipient", "channel_id", "seq", "envelope_id", "attempt", "reason"),
    "cursor": ("recipient", "channel_id", "ack_floor", "delivered_seq", "inflight", "lag"),
    "replay.start": ("recipient", "count"),
    "replay.end": ("recipient", "count"),
    "dead_letter": ("recipient", "channel_id", "seq", "envelope_id", "attempts", "reason"),
    "receipt.ignored": ("name", "channel_id", "seq", "envelope_id", "reason"),
    "observer.lagged": ("dropped",),
    "agent.latency": ("latency_ms",),
    "channels.dropped": ("count", "before", "channel_ids"),
}
AT = "2026-12-07T10:00:00.123Z"


def legacy_frame(event_seq: int, type_: str, fields: dict[str, Any]) -> bytes:
    frame = {"kind": "event", "event_seq": event_seq, "at": AT, "type": type_}
    frame.update(fields)
    return orjson.dumps(frame)


def every_core_event() -> list[events.Event]:
    """Drive the core through connects, a channel, posts, acks, a nack, a replay, dead letters, an
    ignored receipt, a disconnect and a close; return every event it emitted, in order."""
    h = CoreHarness(max_deliver=2, nack_backoff=0.0)
    emitted: list[events.Event] = []
    apply = h._apply

    def spy(effects: list) -> None:
        emitted.extend(e.event for e in effects if isinstance(e, Emit))
        apply(effects)

    h._apply = spy  # type: ignore[method-assign]
    a, b, ch = h.pair()
    h.ok(b, "register", passport={"description": "b", "meta": {"pid": 1}})
    h.ok(a, "post", channel_id=ch, data={"text": "one"})
    (first,) = h.notifies(b)
    h.receipt(b, first, "nack", "busy")
    h.tick(0.1)
    (again,) = h.notifies(b)
    h.receipt(b, again, "nack", "still busy")  # attempt 2 of max_deliver 2: dead letter
    h.ok(a, "post", channel_id=ch, data={"text": "two"})
    h.receipt(b, h.notifies(b)[0], "ack")
    h.ok(a, "post", channel_id=ch, data={"text": "three"})
    h.notifies(b)
    h.receipt(b, first, "ack")  # dead already: ignored
    h.drop(b)
    b = h.connect("bob")  # replays "three"
    h.ack_all(b)
    h.ok(a, "close_channel", channel_id=ch, reason="done")
    return emitted


def test_encoding_is_byte_identical_to_the_untyped_frames() -> None:
    emitted = every_core_event()
    seen = {ev.type for ev in emitted}
    assert seen >= set(EVENT_TYPES) - {"observer.lagged", "agent.latency", "channels.dropped"}  # from the shell
    emitted += [events.ObserverLagged(12), events.AgentLatency({"bob": 1.25})]
    for n, ev in enumerate(emitted, start=1):
        values = {name: getattr(ev, name) for name in LEGACY_FIELDS[ev.type]}
        assert encode(ev, n, AT) == legacy_frame(n, ev.type, values), ev.type


def test_a_channel_event_carries_what_the_channel_responses_carry() -> None:
    h = CoreHarness()
    a, _, ch = h.pair()
    record = h.core.channels[ch]
    assert orjson.dumps(record.view()) == orjson.dumps(record.info())
    h.ok(a, "close_channel", channel_id=ch, reason="done")
    assert orjson.dumps(record.view()) == orjson.dumps(record.info())


def test_every_event_survives_encode_and_decode() -> None:
    for n, ev in enumerate(every_core_event(), start=1):
        frame = orjson.loads(encode(ev, n, AT))
        back = decode_event(frame)
        assert type(back) is type(ev) and back.event_seq == n and back.at == AT
        if isinstance(ev, WalAppend):
            assert isinstance(back.envelope, EnvelopeView)
            assert orjson.loads(orjson.dumps(back.envelope.to_dict())) == frame["envelope"]
        else:
            assert orjson.loads(encode(back, n, AT)) == frame


def test_an_unknown_type_decodes_and_re_encodes_unchanged() -> None:
    frame = {"kind": "event", "event_seq": 3, "at": AT, "type": "channel.renamed", "channel_id": "c", "to": "x"}
    ev = decode_event(frame)
    assert isinstance(ev, UnknownEvent) and ev.type == "channel.renamed" and ev.event_seq == 3
    assert encode(ev, 3, AT) == orjson.dumps(frame)
    assert isinstance(decode_event({"no": "type"}), UnknownEvent)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "deliver", "channel_id": "c", "seq": 1},  # no recipient
        {"type": "ack", "recipient": "b", "channel_id": "c", "seq": "many"},
        {"type": "wal.append", "envelope": 5},
        {"type": "channel.opened"},
    ],
)
def test_a_known_type_with_bad_fields_is_an_event_error(frame: dict[str, Any]) -> None:
    with pytest.raises(EventError, match=frame["type"]):
        decode_event(frame)


def test_event_types_come_from_the_classes_and_the_doc_lists_them() -> None:
    assert tuple(cls.TYPE for cls in EVENT_CLASSES) == EVENT_TYPES
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)
    assert set(LEGACY_FIELDS) == set(EVENT_TYPES)
    assert not hasattr(frames, "EVENT_TYPES")
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    assert events.doc_table() in doc


def test_recipients_of_is_the_audience_or_everyone_but_the_sender() -> None:
    env = EnvelopeView("e", "c", 1, sender="alice")
    assert events.recipients_of(env, ("alice", "bob", "carol")) == ("bob", "carol")
    env = EnvelopeView("e", "c", 1, sender="alice", audience=("carol",))
    assert events.recipients_of(env, ("alice", "bob", "carol")) == ("carol",)
    assert events.addressed_to("carol", "alice", ("carol",), ("alice", "bob", "carol"))
    assert not events.addressed_to("alice", "alice", None, ("alice", "bob"))


def test_the_hub_records_inlined_addressing_rule_agrees_with_the_protocols() -> None:
    from agentnet.hub.records import EnvRecord

    participants = ("alice", "bob", "carol")
    for audience in (None, ("carol",), (), ("alice", "bob")):
        rec = EnvRecord("c", 1, "e", "alice", audience, "note", None, None, "t", b"{}")
        for name in (*participants, "dave"):
            assert rec.addressed_to(name, participants) == events.addressed_to(name, "alice", audience, participants)
