"""Every frame of protocol v1 as a pydantic model, and the params of every request op.

Client frames (hello, request, receipt) form one discriminated union decoded in one call
(`agentnet.protocol.codec.decode_client_frame`). Hub frames are modelled too, so clients and
tests validate what the hub sends; the hub itself builds its hot frames with orjson directly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, TypeAdapter

from .models import (
    ChannelType,
    EnvelopeType,
    Id,
    Name,
    Passport,
    Role,
    ShortText,
    WireModel,
)

MAX_REQUEST_ID = 128

# --------------------------------------------------------------------------- client -> hub


class Auth(WireModel):
    scheme: Literal["api_key"] = "api_key"
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class Hello(WireModel):
    kind: Literal["hello"]
    name: Name
    role: Role = "agent"
    auth: Auth | None = None
    since: Annotated[dict[Id, Annotated[int, Field(ge=0, le=2**53)]], Field(max_length=10_000)] | None = None
    client: Annotated[str, StringConstraints(max_length=128)] | None = None  # extension: SDK name/version
    # extension: the largest frame this client accepts (the hub never sends more); default 1 MiB
    max_size: Annotated[int, Field(ge=4096, le=2**31)] | None = None
    # extension: false = refuse (close 4002) rather than supersede a connected session of this name
    takeover: bool | None = None


class Request(WireModel):
    kind: Literal["request"]
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REQUEST_ID)]
    op: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[str, Any] = {}


class Receipt(WireModel):
    kind: Literal["receipt"]
    channel_id: Id
    seq: Annotated[int, Field(ge=1, le=2**53)]
    envelope_id: Id
    status: Literal["ack", "nack"]
    reason: ShortText | None = None


class RegisterParams(WireModel):
    passport: Passport = Passport()


class NoParams(WireModel):
    pass


MAX_PAGE_LIMIT = 5000


class PageParams(WireModel):
    """list_agents, list_channels, observe: one page, in key order (agent name, channel id).

    Each page also stays below the hub's page byte budget; `next` in the result is the `after` of
    the following page (null on the last one)."""

    after: Annotated[str, StringConstraints(max_length=256)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT)] = 1000
    cursors: bool = False  # list_channels, observers only: the resident cursors of the page's channels


class OpenChannelParams(WireModel):
    type: ChannelType
    participants: Annotated[list[Name], Field(min_length=1, max_length=64)]
    topic: ShortText | None = None
    knobs: dict[str, Any] = {}
    as_agent: Name | None = None  # extension: the supervisor (launcher) acts for a scenario agent


class PostParams(WireModel):
    channel_id: Id
    type: EnvelopeType = "text"
    data: dict[str, Any] = {}
    # None: every participant but the sender; [] (ext): a record only, stored and observed, delivered to no one
    audience: Annotated[list[Name], Field(max_length=64)] | None = None
    causation_id: Id | None = None
    idempotency_key: Id | None = None
    as_agent: Name | None = None


class ReadWalParams(WireModel):
    channel_id: Id
    after_seq: Annotated[int, Field(ge=0, le=2**53)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


class ChannelParams(WireModel):
    channel_id: Id


class CloseChannelParams(WireModel):
    channel_id: Id
    reason: ShortText | None = None
    as_agent: Name | None = None


class FindByCausationParams(WireModel):
    channel_id: Id
    causation_id: Id
    sender: Name | None = None


class DisconnectParams(WireModel):
    name: Name


class PostRequest(WireModel):
    """A post request, validated with its params in the same call as the frame (the hot path)."""

    kind: Literal["request"]
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REQUEST_ID)]
    op: Literal["post"]
    params: PostParams


def _frame_tag(value: Any) -> str | None:
    """The union's tag: the frame's kind, or "post" for a post request (frames arrive as dicts)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("kind")
    return "post" if kind == "request" and value.get("op") == "post" else kind


ClientFrame = Annotated[
    Annotated[Hello, Tag("hello")]
    | Annotated[Request, Tag("request")]
    | Annotated[Receipt, Tag("receipt")]
    | Annotated[PostRequest, Tag("post")],
    Discriminator(_frame_tag),
]
CLIENT_FRAME = TypeAdapter(ClientFrame)
REQUEST = TypeAdapter(Request)

OP_PARAMS: dict[str, type[WireModel]] = {
    "register": RegisterParams,
    "list_agents": PageParams,
    "open_channel": OpenChannelParams,
    "post": PostParams,
    "read_wal": ReadWalParams,
    "get_channel": ChannelParams,
    "list_channels": PageParams,
    "close_channel": CloseChannelParams,
    "find_by_causation": FindByCausationParams,
    "pending_turns": NoParams,
    "observe": PageParams,
    "disconnect": DisconnectParams,
}

# --------------------------------------------------------------------------- hub -> client


class HubFrame(BaseModel):
    model_config = ConfigDict(extra="allow")


class Welcome(HubFrame):
    kind: Literal["welcome"]
    session_id: str
    name: str
    agent_id: str
    hub_id: str
    hub_time: str
    protocol: int


class Error(HubFrame):
    kind: Literal["error"]
    code: str
    message: str


class Response(HubFrame):
    kind: Literal["response"]
    request_id: str
    ok: bool
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


class Notify(HubFrame):
    kind: Literal["notify"]
    recipient: str
    envelope: dict[str, Any]
    attempt: int


class Event(HubFrame):
    kind: Literal["event"]
    event_seq: int
    at: str
    type: str


HUB_FRAME = TypeAdapter(Annotated[Welcome | Error | Response | Notify | Event, Field(discriminator="kind")])
