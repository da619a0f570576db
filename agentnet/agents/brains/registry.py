"""The brain registry: names to option models and classes; validate options, build brains, give schemas."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agentnet.agents.brains.base import Brain
from agentnet.agents.brains.calc import CalcBrain, CalcOptions
from agentnet.agents.brains.echo import EchoBrain, EchoOptions
from agentnet.agents.brains.knobs import KnobbedBrain
from agentnet.agents.brains.llm import LlmBrain, LlmOptions
from agentnet.agents.brains.options import BrainConfigError, BrainOptions, format_validation_error
from agentnet.agents.brains.python_brain import PythonBrain, PythonOptions
from agentnet.agents.brains.scripted import ScriptedBrain, ScriptedOptions
from agentnet.agents.brains.transform import TransformBrain, TransformOptions


@dataclass(frozen=True, slots=True)
class BrainKind:
    name: str
    options: type[BrainOptions]
    factory: Callable[..., Brain]  # factory(options, *, agent=...) -> Brain
    summary: str


_KINDS: dict[str, BrainKind] = {
    kind.name: kind
    for kind in (
        BrainKind("echo", EchoOptions, EchoBrain, "replies with the prompt text"),
        BrainKind("calc", CalcOptions, CalcBrain, "arithmetic asked in words or symbols"),
        BrainKind("scripted", ScriptedOptions, ScriptedBrain, "canned replies in order, or by regex rule"),
        BrainKind("transform", TransformOptions, TransformBrain, "upper/lower/reverse/word_count/template"),
        BrainKind("llm", LlmOptions, LlmBrain, "an OpenAI-compatible chat-completions endpoint"),
        BrainKind("python", PythonOptions, PythonBrain, 'a user function "package.module:function"'),
    )
}

BRAIN_NAMES: tuple[str, ...] = ("echo", "calc", "scripted", "transform", "llm", "python")
assert set(BRAIN_NAMES) == set(_KINDS)


def brain_kind(name: str) -> BrainKind:
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise BrainConfigError(f"unknown brain {name!r} (known: {', '.join(sorted(_KINDS))})")
    return kind


def parse_brain_options(name: str, options: Mapping[str, Any] | None = None) -> BrainOptions:
    """The validated options model of brain `name`; BrainConfigError (one line) if invalid."""
    kind = brain_kind(name)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise BrainConfigError(f"brain '{name}': options must be a mapping, got {type(options).__name__}")
    try:
        return kind.options.model_validate(dict(options))
    except ValidationError as exc:
        raise BrainConfigError(format_validation_error(name, kind.options, exc)) from None


def validate_brain_options(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Raise BrainConfigError if `name` is unknown or `options` are invalid for it (no side effects)."""
    parse_brain_options(name, options)


def make_brain(name: str, options: Mapping[str, Any] | None = None, *, agent: str) -> Brain:
    """Build brain `name` for `agent`, wrapped with think_time/fail_rate when those are set."""
    parsed = parse_brain_options(name, options)
    brain = brain_kind(name).factory(parsed, agent=agent)
    if parsed.think_time is not None or parsed.fail_rate > 0:
        return KnobbedBrain(brain, parsed, agent=agent)
    return brain


def brain_options_schema(name: str) -> dict[str, Any]:
    """JSON schema of brain `name`'s options (for `agentnet schema`)."""
    kind = brain_kind(name)
    schema = kind.options.model_json_schema()
    schema["title"] = f"{name} brain options"
    schema["description"] = f"Options of the {name} brain: {kind.summary}."
    return schema
