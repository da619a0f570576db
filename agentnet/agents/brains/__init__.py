"""Brains: what turns a turn an agent owes into its reply; the registry is the public entry point."""

from agentnet.agents.brains.base import Brain, BrainError, BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainConfigError, BrainOptions
from agentnet.agents.brains.registry import (
    BRAIN_NAMES,
    brain_options_schema,
    make_brain,
    parse_brain_options,
    validate_brain_options,
)

__all__ = [
    "BRAIN_NAMES",
    "Brain",
    "BrainConfigError",
    "BrainError",
    "BrainOptions",
    "BrainReply",
    "BrainRequest",
    "brain_options_schema",
    "make_brain",
    "parse_brain_options",
    "validate_brain_options",
]
