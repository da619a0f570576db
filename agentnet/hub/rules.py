"""Channel rules: who may post a turn, who owes the next one, and when a channel closes itself.

Pure functions of a channel's `rule_state`. Only turn-bearing envelopes (`text`, and `revise` in
workflows) are governed; other types (`note`, `event`, ...) may be posted by any participant of an
open channel. After each turn the hub stamps the envelope with `turn: {"next": [...], ...}`, so an
agent knows from the envelope alone whether it owes a reply, also when the envelope is replayed.
"""

from __future__ import annotations

from typing import Any

from agentnet.protocol.errors import ErrorCode, ProtocolError
from agentnet.protocol.vocab import TURN_TYPES

from .records import ChannelRecord

KNOBS: dict[str, dict[str, type]] = {
    "consulting": {},
    "conversation": {"max_turns": int},
    "discussion": {"rounds": int},
    "workflow": {"max_revisions": int},
}


def _violation(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.TURN_VIOLATION, message)


def validate_knobs(channel_type: str, knobs: dict[str, Any]) -> dict[str, Any]:
    allowed = KNOBS[channel_type]
    for key, value in knobs.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ProtocolError(ErrorCode.INVALID, f"{channel_type} channels take no knob {key!r} (known: {known})")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
            raise ProtocolError(ErrorCode.INVALID, f"knob {key!r} must be an integer from 0 to 1000000")
    if channel_type == "discussion" and knobs.get("rounds", 1) < 1:
        raise ProtocolError(ErrorCode.INVALID, "knob 'rounds' must be at least 1")
    if channel_type == "conversation" and knobs.get("max_turns", 1) < 1:
        raise ProtocolError(ErrorCode.INVALID, "knob 'max_turns' must be at least 1")
    return dict(knobs)


def workflow_steps(ch: ChannelRecord) -> list[str]:
    return [p for p in ch.participants if p != ch.creator]


def init_state(ch: ChannelRecord) -> dict[str, Any]:
    """Rule state of a freshly opened channel: the creator owes the first turn."""
    return {"turns": 0, "next": [ch.creator], "last_turn_seq": 0}


def check_post(ch: ChannelRecord, sender: str, env_type: str, causation_id: str | None) -> None:
    """Raise turn_violation if `sender` may not post this now."""
    if env_type not in TURN_TYPES:
        return
    st = ch.rule_state
    if ch.type == "consulting":
        if env_type != "text":
            raise _violation("consulting channels take text turns only")
        if sender == ch.creator:
            if st.get("question_id"):
                raise _violation(f"{sender} has asked already; consulting takes one question")
            return
        if not st.get("question_id"):
            raise _violation(f"{sender} cannot answer: {ch.creator} has not asked yet")
        if sender in st.get("answered", []):
            raise _violation(f"{sender} has answered already; each target answers once")
        if causation_id != st["question_id"]:
            raise _violation(f"an answer must carry causation_id={st['question_id']} (the question)")
    elif ch.type == "conversation":
        if env_type != "text":
            raise _violation("conversation channels take text turns only")
    elif ch.type == "discussion":
        if env_type != "text":
            raise _violation("discussion channels take text turns only")
        order = list(ch.participants)
        expected = order[st["turns"] % len(order)]
        if sender != expected:
            rounds = ch.knobs.get("rounds", 1)
            current = st["turns"] // len(order) + 1
            raise _violation(f"it is {expected}'s turn (round {current} of {rounds}), not {sender}'s")
    elif ch.type == "workflow":
        expected = st["next"]
        if sender not in expected:
            who = expected[0] if expected else "nobody"
            raise _violation(f"it is {who}'s step, not {sender}'s")
        if env_type == "revise":
            steps = workflow_steps(ch)
            if sender == ch.creator or steps.index(sender) == 0:
                raise _violation("the first step has no previous step to send work back to")
            limit = ch.knobs.get("max_revisions", 0)
            if st.get("revisions", 0) >= limit:
                raise _violation(f"max_revisions ({limit}) reached; post text to pass the work on")


def after_turn(ch: ChannelRecord, sender: str, env_type: str, envelope_id: str, seq: int) -> tuple[dict, str | None]:
    """Fold an appended turn into the rule state. Returns (turn stamp for the envelope, close reason)."""
    st = ch.rule_state
    st["turns"] = st.get("turns", 0) + 1
    st["last_turn_seq"] = seq
    close: str | None = None
    stamp: dict[str, Any] = {"index": st["turns"]}
    if ch.type == "consulting":
        if sender == ch.creator:
            st["question_id"] = envelope_id
            st["answered"] = []
            st["next"] = [p for p in ch.participants if p != ch.creator]
        else:
            st["answered"].append(sender)
            st["next"] = [p for p in st["next"] if p != sender]
            if not st["next"]:
                close = "every target answered"
    elif ch.type == "conversation":
        st["next"] = [p for p in ch.participants if p != sender]
        max_turns = ch.knobs.get("max_turns")  # opt-in: the contract gives conversations no turn limit
        if max_turns is not None and st["turns"] >= max_turns:
            close = f"max_turns ({st['turns']}) reached"
    elif ch.type == "discussion":
        order = list(ch.participants)
        rounds = ch.knobs.get("rounds", 1)
        stamp["round"] = (st["turns"] - 1) // len(order) + 1
        if st["turns"] >= rounds * len(order):
            close = f"{rounds} rounds completed"
        st["next"] = [order[st["turns"] % len(order)]]
    elif ch.type == "workflow":
        steps = workflow_steps(ch)
        if sender == ch.creator and st.get("step") is None:
            st["step"] = 0
        elif env_type == "revise":
            st["revisions"] = st.get("revisions", 0) + 1
            st["step"] = steps.index(sender) - 1
        else:
            st["step"] = steps.index(sender) + 1
        stamp["step"] = st["step"]
        if st["step"] >= len(steps):
            close = "last step done"
        else:
            st["next"] = [steps[st["step"]]]
    if close:
        st["next"] = []
    stamp["next"] = list(st["next"])
    return stamp, close


def owed_turn(ch: ChannelRecord, agent: str) -> int | None:
    """If `agent` owes a turn in this open channel, the seq of the envelope that gave it (else None)."""
    seq = int(ch.rule_state.get("last_turn_seq", 0))
    # seq 0: nobody has spoken; the opening turn comes from the script or the SDK user, not a brain
    if ch.state != "open" or seq == 0 or agent not in ch.rule_state.get("next", ()):
        return None
    return seq
