"""The transform brain: a fixed text transformation (case, reverse, word count, template) of the prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentnet.agents.brains.base import BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions
from agentnet.agents.brains.templating import check_template, render

TRANSFORM_PLACEHOLDERS = ("text", "sender", "agent", "topic", "channel_type")


class TransformOptions(BrainOptions):
    op: Literal["upper", "lower", "reverse", "word_count", "template"] = Field(
        description="upper/lower: change case; reverse: the text backwards; word_count: the number of words; "
        "template: fill `template`.",
    )
    template: str | None = Field(
        default=None,
        description="For op template: placeholders {text}, {sender}, {agent}, {topic}, {channel_type}; "
        "{{ and }} for literal braces.",
    )

    @model_validator(mode="after")
    def _check_template(self) -> TransformOptions:
        if self.op == "template":
            if self.template is None:
                raise ValueError("option 'template' is required when op is 'template'")
            try:
                check_template(self.template, TRANSFORM_PLACEHOLDERS)
            except ValueError as exc:
                raise ValueError(f"option 'template' {exc}") from None
        elif self.template is not None:
            raise ValueError(f"option 'template' is only used with op 'template' (op is '{self.op}')")
        return self


class TransformBrain:
    name = "transform"

    def __init__(self, options: TransformOptions, *, agent: str) -> None:
        self.op = options.op
        self.template = options.template or ""
        self.agent = agent

    async def reply(self, request: BrainRequest) -> BrainReply:
        text = request.text
        if self.op == "upper":
            return BrainReply(text=text.upper())
        if self.op == "lower":
            return BrainReply(text=text.lower())
        if self.op == "reverse":
            return BrainReply(text=text[::-1])
        if self.op == "word_count":
            count = len(text.split())
            return BrainReply(text=str(count), data={"word_count": count})
        values = {
            "text": text,
            "sender": request.sender,
            "agent": self.agent,
            "topic": request.topic or "",
            "channel_type": request.channel_type,
        }
        return BrainReply(text=render(self.template, values))

    async def aclose(self) -> None:
        return None
