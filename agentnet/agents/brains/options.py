"""Brain option models: the knobs every brain accepts, and one-line config error messages."""

from __future__ import annotations

import math
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# A think_time above this is almost certainly a unit mistake (ms for s), and would stall a demo for hours.
MAX_THINK_TIME = 3600.0


class BrainConfigError(ValueError):
    """A brain name or its options are invalid; the message is one line fit for a CLI or a log."""


class BrainOptions(BaseModel):
    """Options common to every brain; each brain's own model extends this one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    think_time: float | tuple[float, float] | None = Field(
        default=None,
        description="Seconds to wait before answering: a number, or [min, max] for a random delay.",
    )
    fail_rate: float = Field(
        default=0.0,
        description="Probability in [0, 1] that a turn fails with a simulated error (nacked, redelivered).",
    )
    seed: int | None = Field(
        default=None,
        description="Seed of the think_time/fail_rate randomness (mixed with the agent name).",
    )

    @field_validator("think_time", mode="before")
    @classmethod
    def _check_think_time(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list | tuple):
            if len(value) != 2 or not all(_is_number(v) for v in value):
                raise ValueError("must be a number of seconds or a [min, max] pair of numbers")
            low, high = float(value[0]), float(value[1])
            if not (0 <= low <= high <= MAX_THINK_TIME):
                raise ValueError(f"must satisfy 0 <= min <= max <= {MAX_THINK_TIME:g} (got [{low:g}, {high:g}])")
            return (low, high)
        if not _is_number(value):
            raise ValueError("must be a number of seconds or a [min, max] pair of numbers")
        seconds = float(value)
        if not (0 <= seconds <= MAX_THINK_TIME):
            raise ValueError(f"must be between 0 and {MAX_THINK_TIME:g} seconds (got {seconds:g})")
        return seconds

    @field_validator("fail_rate", mode="before")
    @classmethod
    def _check_fail_rate(cls, value: Any) -> Any:
        if not _is_number(value) or not (0 <= float(value) <= 1):
            raise ValueError(f"must be a number between 0 and 1 (got {value!r})")
        return float(value)


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but `think_time: true` is a config mistake, not one second.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_validation_error(brain: str, model: type[BaseModel], error: ValidationError) -> str:
    """Turn a pydantic ValidationError into one line: "brain 'x': option 'y' must be ...; ..."."""
    parts = [_describe(model, item) for item in error.errors(include_url=False)]
    return f"brain '{brain}': " + "; ".join(dict.fromkeys(parts))  # dedupe, keep order


def _describe(model: type[BaseModel], item: Any) -> str:
    loc = _loc(item.get("loc", ()))
    kind = item.get("type", "")
    msg = str(item.get("msg", "invalid value")).replace("\n", " ")
    if kind == "extra_forbidden":
        known = ", ".join(sorted(_model_at(model, tuple(item.get("loc", ()))[:-1]).model_fields))
        return f"unknown option '{loc}' (known: {known})"
    if kind == "missing":
        return f"option '{loc}' is required"
    if kind == "literal_error":
        expected = str(item.get("ctx", {}).get("expected", ""))
        choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
        return f"option '{loc}' must be one of {', '.join(choices)}"
    if kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"option '{loc}' {msg}" if loc else msg
    msg = msg[:1].lower() + msg[1:]
    return f"option '{loc}': {msg}" if loc else msg


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel]:
    """The (nested) model that a loc path points into, e.g. ("rules", 0) -> Rule."""
    for part in path:
        if not isinstance(part, str) or part not in model.model_fields:
            continue  # list indexes and union-member names
        found = _find_model(model.model_fields[part].annotation)
        if found is None:
            break
        model = found
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # list[Rule], Rule | None, ...
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "," in str(part):
            continue  # pydantic names union members in the loc ("tuple[float, float]"); noise to a user
        else:
            out += f".{part}" if out else str(part)
    return out
