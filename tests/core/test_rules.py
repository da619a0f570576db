"""Pure tests of the channel rules: who may speak, who owes the next turn, and auto-close."""

from __future__ import annotations

import pytest

from .harness import CoreHarness


def open_channel(h: CoreHarness, type_: str, creator: str, others: list[str], **knobs):
    conns = {name: h.connect(name) for name in [creator, *others]}
    ch = h.ok(conns[creator], "open_channel", type=type_, participants=others, knobs=knobs)
    for c in conns.values():
        h.ack_all(c)
    return conns, ch


def say(h: CoreHarness, conn: int, ch: dict, text: str, **extra) -> dict:
    return h.request(conn, "post", channel_id=ch["channel_id"], data={"text": text}, **extra)


def state(h: CoreHarness, ch: dict) -> dict:
    return h.core.channels[ch["channel_id"]].info()


def last_envelope(h: CoreHarness, ch: dict) -> dict:
    page = h.ok(next(iter(h.names)), "read_wal", channel_id=ch["channel_id"], after_seq=0, limit=1000)
    return [e for e in page["envelopes"] if e["type"] in ("text", "revise")][-1]


def test_consulting_each_target_answers_once_then_the_hub_closes_it():
    h = CoreHarness()
    c, ch = open_channel(h, "consulting", "alice", ["bob", "carol"])
    assert say(h, c["bob"], ch, "too early")["error_code"] == "turn_violation"
    q = say(h, c["alice"], ch, "What is 12 times 11?")
    assert q["ok"]
    assert last_envelope(h, ch)["turn"]["next"] == ["bob", "carol"]
    assert say(h, c["alice"], ch, "second question")["error_code"] == "turn_violation"
    wrong = say(h, c["bob"], ch, "132")  # no causation_id
    assert wrong["error_code"] == "turn_violation" and "causation_id" in wrong["error_message"]
    qid = q["result"]["envelope_id"]
    assert say(h, c["bob"], ch, "132", causation_id=qid)["ok"]
    assert say(h, c["bob"], ch, "132 again", causation_id=qid)["error_code"] == "turn_violation"
    assert state(h, ch)["state"] == "open"
    assert say(h, c["carol"], ch, "132", causation_id=qid)["ok"]
    info = state(h, ch)
    assert info["state"] == "closed" and info["close_reason"] == "every target answered"
    assert say(h, c["alice"], ch, "hello?")["error_code"] == "closed"
    assert any(e["type"] == "channel.closed" for e in h.events)


def test_conversation_is_free_until_max_turns():
    h = CoreHarness()
    c, ch = open_channel(h, "conversation", "alice", ["bob"], max_turns=3)
    assert say(h, c["alice"], ch, "hi")["ok"]
    assert say(h, c["alice"], ch, "still me")["ok"]  # free: no strict alternation
    assert last_envelope(h, ch)["turn"]["next"] == ["bob"]
    assert say(h, c["bob"], ch, "hello")["ok"]
    assert state(h, ch)["state"] == "closed"
    assert "max_turns" in state(h, ch)["close_reason"]


def test_conversation_has_no_turn_limit_by_default():
    """The contract gives `conversation` no turn limit: max_turns is opt-in."""
    h = CoreHarness()
    c, ch = open_channel(h, "conversation", "alice", ["bob"])
    for i in range(1000):
        assert say(h, c["alice" if i % 3 else "bob"], ch, f"turn {i}")["ok"], i
    assert state(h, ch)["state"] == "open"


def test_notes_are_not_turns():
    h = CoreHarness()
    c, ch = open_channel(h, "discussion", "alice", ["bob"], rounds=1)
    r = h.request(c["bob"], "post", channel_id=ch["channel_id"], type="note", data={"n": 1})
    assert r["ok"]


def test_discussion_round_robin_for_n_rounds():
    h = CoreHarness()
    c, ch = open_channel(h, "discussion", "a", ["b", "c", "d"], rounds=2)
    order = ["a", "b", "c", "d"] * 2
    for i, speaker in enumerate(order):
        wrong = order[(i + 1) % 4]
        r = say(h, c[wrong], ch, "out of turn")
        assert r["error_code"] == "turn_violation" and f"{speaker}'s turn" in r["error_message"]
        assert say(h, c[speaker], ch, f"turn {i}")["ok"]
    info = state(h, ch)
    assert info["state"] == "closed" and info["close_reason"] == "2 rounds completed"


def test_discussion_pending_turns_name_the_next_speaker():
    h = CoreHarness()
    c, ch = open_channel(h, "discussion", "a", ["b", "c"], rounds=3)
    say(h, c["a"], ch, "opening")
    assert h.ok(c["b"], "pending_turns")["turns"] == [{"channel_id": ch["channel_id"], "after_seq": 1}]
    assert h.ok(c["c"], "pending_turns")["turns"] == []


def test_workflow_pipeline_with_one_revision():
    h = CoreHarness()
    c, ch = open_channel(h, "workflow", "client", ["planner", "writer", "editor"], max_revisions=1)
    assert say(h, c["writer"], ch, "jump the queue")["error_code"] == "turn_violation"
    assert say(h, c["client"], ch, "write about tides")["ok"]
    assert last_envelope(h, ch)["turn"]["next"] == ["planner"]
    assert say(h, c["planner"], ch, "plan")["ok"]
    assert say(h, c["writer"], ch, "draft")["ok"]
    # the editor sends the work back once...
    assert h.request(c["editor"], "post", channel_id=ch["channel_id"], type="revise", data={"text": "tighten"})["ok"]
    assert last_envelope(h, ch)["turn"]["next"] == ["writer"]
    assert say(h, c["writer"], ch, "draft 2")["ok"]
    # ...and not twice
    r = h.request(c["editor"], "post", channel_id=ch["channel_id"], type="revise", data={"text": "again"})
    assert r["error_code"] == "turn_violation" and "max_revisions" in r["error_message"]
    assert say(h, c["editor"], ch, "final")["ok"]
    info = state(h, ch)
    assert info["state"] == "closed" and info["close_reason"] == "last step done"


def test_first_workflow_step_cannot_revise():
    h = CoreHarness()
    c, ch = open_channel(h, "workflow", "client", ["planner", "writer"], max_revisions=3)
    say(h, c["client"], ch, "task")
    r = h.request(c["planner"], "post", channel_id=ch["channel_id"], type="revise", data={"text": "no"})
    assert r["error_code"] == "turn_violation"


@pytest.mark.parametrize(
    ("type_", "knobs", "message"),
    [
        ("consulting", {"rounds": 2}, "consulting channels take no knob 'rounds'"),
        ("discussion", {"rounds": 0}, "at least 1"),
        ("conversation", {"max_turns": "ten"}, "must be an integer"),
    ],
)
def test_bad_knobs_are_refused(type_, knobs, message):
    h = CoreHarness()
    a, _ = h.connect("alice"), h.connect("bob")
    r = h.request(a, "open_channel", type=type_, participants=["bob"], knobs=knobs)
    assert r["error_code"] == "invalid" and message in r["error_message"]


def test_rule_state_survives_a_restart():
    h = CoreHarness()
    c, ch = open_channel(h, "discussion", "a", ["b"], rounds=2)
    say(h, c["a"], ch, "one")
    h2 = CoreHarness(store=h.store)
    a2, b2 = h2.connect("a"), h2.connect("b")
    r = h2.request(a2, "post", channel_id=ch["channel_id"], data={"text": "me again"})
    assert r["error_code"] == "turn_violation"
    assert h2.request(b2, "post", channel_id=ch["channel_id"], data={"text": "two"})["ok"]
