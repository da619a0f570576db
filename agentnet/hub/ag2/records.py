"""ag2 1.2.1's wire records, as agentnet serves them.

ag2 decodes every record with `Cls(**dict)`: a key it does not know makes the client drop the whole
frame, a missing key without a default does too. So every record the hub sends is built here from a
fixed key template (the golden tests compare these key sets with the installed ag2's dataclass fields),
and every frame an ag2 client sends is validated by a pydantic model of exactly its fields.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- constants

EV_TEXT = "ag2.msg.text"
EV_OPENED = "ag2.channel.opened"
EV_CLOSED = "ag2.channel.closed"
EV_INVITE_ACK = "ag2.channel.invite.ack"
EV_INVITE_REJECT = "ag2.channel.invite.reject"
EXTRA_KEY = "_ag2"  # ag2 envelope fields agentnet has no column for ride in `data` under this key

# ag2's error codes (its client maps these to exception classes; anything else is a bare NetworkError)
NOT_FOUND, ACCESS_DENIED, PROTOCOL_ERROR, AUTH_FAILED, ERROR = (
    "not_found",
    "access_denied",
    "protocol_error",
    "auth_failed",
    "error",
)
NATIVE_TO_AG2 = {
    "not_found": NOT_FOUND,
    "access_denied": ACCESS_DENIED,
    "auth_failed": AUTH_FAILED,
    "invalid": PROTOCOL_ERROR,
    "turn_violation": PROTOCOL_ERROR,
    "closed": PROTOCOL_ERROR,
    "conflict": PROTOCOL_ERROR,
    "too_large": PROTOCOL_ERROR,
}

# The record templates: key sets and defaults exactly as ag2 1.2.1 declares them.
ENVELOPE_DEFAULTS: dict[str, Any] = {
    "channel_id": "",
    "sender_id": "",
    "audience": None,
    "event_type": "",
    "event_data": {},
    "envelope_id": "",
    "task_id": None,
    "causation_id": None,
    "trace_id": None,
    "priority": "normal",
    "depth": 0,
    "idempotency_key": None,
    "created_at": "",
    "ttl_seconds": None,
}
ENVELOPE_EXTRAS = ("task_id", "trace_id", "priority", "depth", "ttl_seconds")  # kept under EXTRA_KEY when set

AUTH_BLOCK: dict[str, Any] = {"scheme": "none", "issuer": None, "audience": None, "key_fingerprint": None, "claim": {}}
PASSPORT: dict[str, Any] = {
    "name": "",
    "owner": "",
    "provider": None,
    "model": None,
    "cost": None,
    "region": None,
    "auth": AUTH_BLOCK,
    "kind": None,
    "hub_id": None,
    "version": 1,
    "agent_id": None,
    "created_at": "",
}
COST_KEYS = ("input_per_mtok", "output_per_mtok", "latency_tier")
RESUME: dict[str, Any] = {
    "claimed_capabilities": [],
    "domains": [],
    "summary": "",
    "examples": [],
    "observed": {},
    "version": 1,
    "last_updated": "",
}
RULE: dict[str, Any] = {
    "version": 1,
    "access": {
        "inbound_from": ["*"],
        "outbound_to": ["*"],
        "channel_types": {"initiate": ["*"], "accept": ["*"]},
    },
    "limits": {
        "max_concurrent_channels": 0,
        "max_concurrent_tasks": 0,
        "channel_ttl_default": "2h",
        "task_ttl_default": "15m",
        "rate": {"per_minute": 0, "burst": 0},
        "delegation_depth": 5,
        "inbox": {"max_pending": 1000, "overflow": "reject", "high_water": None},
    },
}


def _expectation(name: str, on_violation: str, seconds: int) -> dict[str, Any]:
    return {"name": name, "on_violation": on_violation, "params": {"seconds": seconds}, "applies_to": None}


# ag2's manifests of its four channel types (what `create_channel` snapshots into ChannelMetadata).
MANIFESTS: dict[str, dict[str, Any]] = {
    "consulting": {
        "type": "consulting",
        "version": 1,
        "participants": {"min": 2, "max": 2, "roles": ["initiator", "respondent"]},
        "knobs_schema": {},
        "default_view_policy": "full_transcript",
        "expectations": [
            _expectation("acks_within", "auto_close", 30),
            _expectation("reply_within", "auto_close", 600),
        ],
    },
    "conversation": {
        "type": "conversation",
        "version": 1,
        "participants": {"min": 2, "max": 2, "roles": ["initiator", "respondent"]},
        "knobs_schema": {},
        "default_view_policy": "windowed_summary",
        "expectations": [_expectation("max_silence", "audit", 3600)],
    },
    "discussion": {
        "type": "discussion",
        "version": 1,
        "participants": {"min": 2, "max": None, "roles": []},
        "knobs_schema": {"ordering": "str"},
        "default_view_policy": "named_windowed_summary",
        "expectations": [_expectation("turn_within", "warn", 120), _expectation("turn_within", "hide", 600)],
    },
    "workflow": {
        "type": "workflow",
        "version": 1,
        "participants": {"min": 2, "max": None, "roles": []},
        "knobs_schema": {"graph": "TransitionGraph"},
        "default_view_policy": "named_windowed_summary",
        "expectations": [_expectation("turn_within", "warn", 120), _expectation("turn_within", "auto_close", 600)],
    },
}
CHANNEL_METADATA_KEYS = (
    "channel_id",
    "manifest",
    "creator_id",
    "participants",
    "state",
    "created_at",
    "expires_at",
    "closed_at",
    "close_reason",
    "parent_channel_id",
    "knobs",
    "labels",
    "required_acks",
    "pending_acks",
    "rejected_by",
)
PARTICIPANT_KEYS = ("agent_id", "role", "order", "joined_at")
PENDING_TURN_KEYS = ("channel_id", "triggering_envelope_id", "expected_at")
WELCOME_KEYS = ("endpoint_id", "hub_time")
ERROR_KEYS = ("code", "message", "envelope_id")
NOTIFY_KEYS = ("envelope", "recipient_id")
RESPONSE_KEYS = ("request_id", "ok", "result", "error_code", "error_message")


def manifest(channel_type: str) -> dict[str, Any]:
    return copy.deepcopy(MANIFESTS[channel_type])


def template(base: dict[str, Any], given: Any) -> dict[str, Any]:
    """`given`'s values for exactly `base`'s keys (nested dicts filled the same way), defaults elsewhere."""
    out = copy.deepcopy(base)
    if not isinstance(given, dict):
        return out
    for key, default in base.items():
        if key not in given:
            continue
        value = given[key]
        out[key] = (
            template(default, value) if isinstance(default, dict) and default and isinstance(value, dict) else value
        )
    return out


def public_passport(passport: dict[str, Any]) -> dict[str, Any]:
    """A passport as the hub keeps and returns it: ag2's keys only, the credential's claim stripped."""
    out = template(PASSPORT, passport)
    out["auth"] = template(AUTH_BLOCK, passport.get("auth"))
    out["auth"]["claim"] = {}
    cost = out.get("cost")
    out["cost"] = {k: cost.get(k) for k in COST_KEYS} if isinstance(cost, dict) else None
    return out


# --------------------------------------------------------------------------- frames an ag2 client sends


class _Ag2Model(BaseModel):
    """Exactly ag2's fields: an unknown key is a protocol error, as it is for ag2's own `Cls(**dict)`."""

    model_config = ConfigDict(extra="forbid")


class Ag2Envelope(_Ag2Model):
    channel_id: str = Field(min_length=1, max_length=128)
    sender_id: str = Field(min_length=1, max_length=128)
    audience: list[str] | None = Field(None, max_length=64)
    event_type: str = Field(min_length=1, max_length=64)
    event_data: dict[str, Any] = {}
    envelope_id: str = ""
    task_id: str | None = None
    causation_id: str | None = None
    trace_id: str | None = None
    priority: Literal["background", "normal", "urgent"] = "normal"
    depth: int = Field(0, ge=0, le=1000)
    idempotency_key: str | None = None
    created_at: str = ""
    ttl_seconds: int | None = None


class Hello(_Ag2Model):
    kind: Literal["hello"]
    name: str = Field(max_length=200)
    auth_scheme: str = "none"
    auth_claim: dict[str, Any] = {}
    since_envelope_id: str | None = None


class Request(_Ag2Model):
    kind: Literal["request"]
    request_id: str = Field(min_length=1, max_length=128)
    op: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = {}


class Receipt(_Ag2Model):
    kind: Literal["receipt"]
    envelope_id: str = Field(min_length=1, max_length=128)
    status: Literal["ack", "nack"]
    recipient_id: str = Field(min_length=1, max_length=128)
    channel_id: str = Field(min_length=1, max_length=128)
    reason: str = ""


class Ping(_Ag2Model):
    kind: Literal["ping"]


# --------------------------------------------------------------------------- op params


class RegisterParams(_Ag2Model):
    passport: dict[str, Any]
    resume: dict[str, Any] | None = None
    skill_md: str | None = Field(None, max_length=64_000)
    rule: dict[str, Any] | None = None


class NameOrId(_Ag2Model):
    name_or_id: str


class AgentId(_Ag2Model):
    agent_id: str


class FindAgentId(_Ag2Model):
    name: str


class NamesFor(_Ag2Model):
    agent_ids: list[str] = Field(max_length=10_000)


class ListAgents(_Ag2Model):
    capability: str | None = None
    query: str | None = None
    kind: str | None = None
    sort_by: str | None = None
    limit: int = Field(50, ge=0, le=1000)


class SetResume(_Ag2Model):
    agent_id: str
    resume: dict[str, Any]


class SetSkill(_Ag2Model):
    agent_id: str
    skill_md: str | None = Field(None, max_length=64_000)


class SetRule(_Ag2Model):
    agent_id: str
    rule: dict[str, Any]


class CreateChannel(_Ag2Model):
    creator_id: str
    manifest_type: str
    manifest_version: int = 1
    participants: list[str] = Field(max_length=64)
    required_acks: int | None = None
    ttl: str | int | None = None
    knobs: dict[str, Any] | None = None
    intent: str | None = Field(None, max_length=1000)
    labels: dict[str, str] | None = None


class ChannelId(_Ag2Model):
    channel_id: str


class ListChannels(_Ag2Model):
    agent_id: str | None = None
    limit: int = Field(50, ge=0, le=1000)


class CloseChannel(_Ag2Model):
    channel_id: str
    reason: str = Field("", max_length=1000)


class PostEnvelope(_Ag2Model):
    envelope: Ag2Envelope


class ReadWal(_Ag2Model):
    channel_id: str
    since: int = 0
    until: int | None = None


class FindByCausation(_Ag2Model):
    channel_id: str
    sender_id: str
    causation_id: str


class CanSend(_Ag2Model):
    channel_id: str
    sender_id: str
    event_type: str | None = None


class ReportTurnFailure(_Ag2Model):
    channel_id: str
    agent_id: str
    envelope_id: str
    error: str | None = None


TASK_OPS = frozenset(
    {
        "get_task",
        "list_tasks",
        "observe_task",
        "update_task",
        "record_observation",
        "fire_task_event",
        "checkpoint_task",
        "read_task_checkpoint",
    }
)
