"""The echo brain: replies with the prompt text, optionally prefixed."""

from __future__ import annotations

from pydantic import Field

from agentnet.agents.brains.base import BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions


class EchoOptions(BrainOptions):
    prefix: str = Field(default="", description='Text put before the echoed prompt, e.g. "echo: ".')


class EchoBrain:
    name = "echo"

    def __init__(self, options: EchoOptions, *, agent: str) -> None:
        self.prefix = options.prefix
        self.agent = agent

    async def reply(self, request: BrainRequest) -> BrainReply:
        return BrainReply(text=self.prefix + request.text)

    async def aclose(self) -> None:
        return None
