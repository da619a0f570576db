"""Domain objects on the wire: passports, channels, envelopes (protocol v1, sections 3 and 4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000): the hub stores this as text")
    return value


# Text the hub keeps in a text column (a topic, a close or nack reason): PostgreSQL's refuse NUL.
ShortText = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_nul)]
EnvelopeType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]

ChannelType = Literal["consulting", "conversation", "discussion", "workflow"]
CHANNEL_TYPES: tuple[str, ...] = ("consulting", "conversation", "discussion", "workflow")
Role = Literal["agent", "observer", "supervisor"]
ChannelState = Literal["open", "closed"]


class WireModel(BaseModel):
    """Base for everything a peer sends: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)


class Passport(WireModel):
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    capabilities: Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=64)] = []
    meta: dict[str, Any] = {}


class ChannelInfo(BaseModel):
    """The channel object of the contract, as the hub reports it."""

    model_config = ConfigDict(extra="allow")

    channel_id: str
    type: ChannelType
    topic: str | None = None
    creator: str
    participants: list[str]
    state: ChannelState = "open"
    head_seq: int = 0
    created_at: str
    closed_at: str | None = None
    close_reason: str | None = None
    knobs: dict[str, Any] = {}


class Envelope(BaseModel):
    """One entry of a channel's WAL."""

    model_config = ConfigDict(extra="allow")

    envelope_id: str
    channel_id: str
    seq: int
    sender: str
    audience: list[str] | None = None
    type: str
    data: dict[str, Any] = {}
    causation_id: str | None = None
    idempotency_key: str | None = None
    created_at: str

    @property
    def text(self) -> str | None:
        value = self.data.get("text")
        return value if isinstance(value, str) else None
