"""Reading a scenario file: YAML with line numbers in, a validated `Scenario` (or every problem as
`FILE:LINE: KEY: MESSAGE`) out; and the JSON schema editors use (`agentnet schema`)."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

from agentnet.agents.brains import BRAIN_NAMES, brain_options_schema

from .scenario import _PATTERN_HINTS, Scenario, ScenarioError, _Issues, _render
from .yamlsource import KeyPath, YamlSource, YamlSourceError, format_key_path, load_yaml, parse_yaml


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file. Raises ScenarioError (one line; see `.more`)."""
    try:
        source = load_yaml(path)
    except YamlSourceError as exc:
        raise _from_yaml_error(exc) from None
    scenario = scenario_from_source(source)
    scenario._source = Path(path)
    return scenario


def parse_scenario(text: str, path: str = "<string>") -> Scenario:
    """Validate a scenario given as YAML text; `path` is only used in error messages."""
    try:
        source = parse_yaml(text, path)
    except YamlSourceError as exc:
        raise _from_yaml_error(exc) from None
    return scenario_from_source(source)


def scenario_from_source(source: YamlSource) -> Scenario:
    data = source.data
    if data is None:
        raise ScenarioError(source.path, 1, None, "the file is empty; a scenario is a mapping (name:, agents:, ...)")
    if not isinstance(data, dict):
        raise ScenarioError(source.path, 1, None, f"expected a mapping (name:, agents:, ...), got {_got(data)}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(exc, source) from None


def scenario_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a scenario file, for editors and `agentnet schema`."""
    schema = Scenario.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    agent = defs["AgentSpec"]
    brain = agent["properties"]["brain"]
    agent["properties"]["brain"] = {"enum": [*BRAIN_NAMES, None], "default": None, "description": brain["description"]}
    # Each brain's options, chosen by the `brain` value, so editors complete and check them too.
    branches = []
    for name in BRAIN_NAMES:
        options = brain_options_schema(name)
        nested = options.pop("$defs", {})
        if any(key in defs and defs[key] != value for key, value in nested.items()):
            continue  # a name clash between models: leave this brain's options unchecked by the schema
        defs.update(nested)
        defs[f"{name.capitalize()}BrainOptions"] = options
        branches.append(
            {
                "if": {"properties": {"brain": {"const": name}}, "required": ["brain"]},
                "then": {"properties": {"options": {"$ref": f"#/$defs/{name.capitalize()}BrainOptions"}}},
            }
        )
    agent["allOf"] = branches
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _from_yaml_error(exc: YamlSourceError) -> ScenarioError:
    key = format_key_path(exc.key) or None
    column = exc.column if exc.message.startswith("YAML syntax error") else None
    return ScenarioError(exc.path, exc.line, key, exc.message, column=column)


def _from_validation_error(exc: ValidationError, source: YamlSource) -> ScenarioError:
    found: list[tuple[KeyPath, str]] = []
    for error in exc.errors(include_url=False):
        # a validator's ValueError rides in ctx["error"] (pydantic sets ctx for value_error)
        cause = error["ctx"]["error"] if error["type"] == "value_error" else None
        if isinstance(cause, _Issues):
            found.extend((issue.loc, _render(issue, source)) for issue in cause.issues)
        else:
            found.append(_describe(error, source.data))
    errors = [ScenarioError(source.path, source.line_of(loc), format_key_path(loc), msg) for loc, msg in found]
    errors.sort(key=lambda e: e.line or 0)  # stable: errors on one line keep pydantic's order
    first, *rest = errors
    return ScenarioError(first.path, first.line, first.key, first.message, more=tuple(rest))


def _describe(error: ErrorDetails, data: Any) -> tuple[KeyPath, str]:
    """A pydantic error as (key path in the YAML data, one-line message)."""
    loc = _data_path(data, error["loc"])
    kind: str = error["type"]
    value = error["input"]
    if kind == "missing":
        return loc, "missing required key"
    if kind == "extra_forbidden":
        return loc, _unknown_key(str(loc[-1]), _allowed_keys(error["loc"][:-1]))
    if kind == "union_tag_invalid":
        return (*loc, "action"), f"unknown action {error['ctx']['tag']!r} (expected {error['ctx']['expected_tags']})"
    if kind == "union_tag_not_found":
        return (*loc, "action"), "missing required key"
    if kind == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        hint = _PATTERN_HINTS.get(pattern, f"expected text matching {pattern}")
        return loc, f"{hint}, got {_got(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping, got {_got(value)}"
    if kind == "too_short":
        return loc, f"expected at least {error['ctx']['min_length']} item(s)"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(error["ctx"].values()), "?")
        limit = f"{limit:g}" if isinstance(limit, float) else limit
        return loc, f"must be {bounds[kind]} {limit}, got {_got(value)}"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if message.startswith("Input should be"):
        return loc, "expected" + message.removeprefix("Input should be") + f", got {_got(value)}"
    return loc, message[:1].lower() + message[1:]


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Follow pydantic's loc through the YAML data, dropping the parts that are not keys (union tags)."""
    path: list[str | int] = []
    node = data
    for n, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif isinstance(node, dict) and n == len(loc) - 1:
            node = None  # a missing key: name it, at its parent's line
        else:
            continue
        path.append(part)
    return tuple(path)


def _unknown_key(key: str, allowed: list[str]) -> str:
    if not allowed:
        return "unknown key"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (allowed: {', '.join(allowed)})"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at pydantic `loc` accepts (for "did you mean" hints)."""
    tp: Any = Scenario
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (Union, types.UnionType):
            tp = next((m for m in typing.get_args(tp) if _tag(m) == part), None)
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional around a model type."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (Union, types.UnionType):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _tag(tp: Any) -> str | None:
    """The `action` literal of a script step model."""
    if isinstance(tp, type) and issubclass(tp, BaseModel) and "action" in tp.model_fields:
        args = typing.get_args(tp.model_fields["action"].annotation)
        return args[0] if len(args) == 1 else None
    return None
