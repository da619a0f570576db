"""The scripted brain: canned replies, in order or chosen by the first matching regex rule."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentnet.agents.brains.base import BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions
from agentnet.agents.brains.templating import check_template, render

BASE_PLACEHOLDERS = ("text", "sender", "agent", "topic")
NO_REPLY = "(no scripted reply for this message)"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(description="Python regex searched (re.search) in the prompt text.")
    reply: str = Field(
        description="Reply template: {text}, {sender}, {agent}, {topic}, and regex groups {0}, {1}, {name}."
    )
    ignore_case: bool = Field(default=False, description="Match case-insensitively.")

    @field_validator("match")
    @classmethod
    def _check_regex(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"is not a valid regex {pattern!r}: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _check_reply(self) -> Rule:
        compiled = re.compile(self.match)
        groups = [str(i) for i in range(compiled.groups + 1)] + list(compiled.groupindex)
        try:
            check_template(self.reply, (*BASE_PLACEHOLDERS, *groups))
        except ValueError as exc:
            raise ValueError(f"reply {exc}") from None
        return self

    def compile(self) -> re.Pattern[str]:
        return re.compile(self.match, re.IGNORECASE if self.ignore_case else 0)


class ScriptedOptions(BrainOptions):
    replies: list[str] = Field(
        default_factory=list,
        description="Replies given in order, per channel; after the last, repeat it (or cycle). Templates.",
    )
    cycle: bool = Field(default=False, description="After the last reply, start again from the first.")
    rules: list[Rule] = Field(default_factory=list, description="Checked first; the first match wins.")
    default: str | None = Field(default=None, description="Reply (template) when no rule matches and no replies.")

    @field_validator("replies")
    @classmethod
    def _check_replies(cls, replies: list[str]) -> list[str]:
        for index, template in enumerate(replies):
            try:
                check_template(template, BASE_PLACEHOLDERS)
            except ValueError as exc:
                raise ValueError(f"item {index} {exc}") from None
        return replies

    @field_validator("default")
    @classmethod
    def _check_default(cls, template: str | None) -> str | None:
        if template is not None:
            check_template(template, BASE_PLACEHOLDERS)
        return template

    @model_validator(mode="after")
    def _check_something(self) -> ScriptedOptions:
        if not self.replies and not self.rules and self.default is None:
            raise ValueError("needs at least one of 'replies', 'rules' or 'default'")
        return self


class ScriptedBrain:
    name = "scripted"

    def __init__(self, options: ScriptedOptions, *, agent: str) -> None:
        self.agent = agent
        self.replies = list(options.replies)
        self.cycle = options.cycle
        self.rules = [(rule.compile(), rule.reply) for rule in options.rules]
        self.default = options.default
        # Per channel: how many in-order replies were given, and the last (seq, index), so a redelivered
        # turn (same seq) gets the same reply instead of advancing the script.
        self._given: dict[str, int] = {}
        self._last: dict[str, tuple[int, int]] = {}

    async def reply(self, request: BrainRequest) -> BrainReply:
        values = {
            "text": request.text,
            "sender": request.sender,
            "agent": self.agent,
            "topic": request.topic or "",
        }
        for pattern, template in self.rules:
            match = pattern.search(request.text)
            if match is not None:
                groups = {str(i): g or "" for i, g in enumerate((match.group(0), *match.groups()))}
                named = {k: v or "" for k, v in match.groupdict().items()}
                return BrainReply(text=render(template, {**values, **groups, **named}), data={"rule": pattern.pattern})
        if self.replies:
            index = self._next_index(request)
            return BrainReply(text=render(self.replies[index], values), data={"script_index": index})
        if self.default is not None:
            return BrainReply(text=render(self.default, values))
        return BrainReply(text=NO_REPLY)

    def _next_index(self, request: BrainRequest) -> int:
        last = self._last.get(request.channel_id)
        if last is not None and request.seq and last[0] == request.seq:
            return last[1]
        given = self._given.get(request.channel_id, 0)
        self._given[request.channel_id] = given + 1
        index = given % len(self.replies) if self.cycle else min(given, len(self.replies) - 1)
        self._last[request.channel_id] = (request.seq, index)
        return index

    async def aclose(self) -> None:
        return None
