"""Reply templates: "{name}" placeholders filled from a mapping, checked against allowed names up front."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Deliberately not str.format: a config template like "{text.__class__}" must not reach attributes,
# and an unknown placeholder should be a config error at load time, not a KeyError mid-run.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}|[{}]")


def placeholders(template: str) -> list[str]:
    """The placeholder names used by template; raises ValueError on a stray brace."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(
                f"has a stray {token!r} at position {match.start()} (write {token * 2!r} for a literal brace)"
            )
        names.append(match.group(1))
    return names


def check_template(template: str, allowed: Iterable[str]) -> None:
    """Raise ValueError naming the first placeholder not in allowed (message starts with a verb)."""
    allowed_set = set(allowed)
    for name in placeholders(template):
        if name not in allowed_set:
            shown = ", ".join("{" + a + "}" for a in sorted(allowed_set, key=_sort_key))
            raise ValueError(f"uses unknown placeholder {{{name}}} (available: {shown})")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a template already checked by check_template; a missing value renders as ""."""

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        return values.get(name, "") if name is not None else token

    return _PLACEHOLDER.sub(sub, template)


def _sort_key(name: str) -> tuple[int, int, str]:
    return (1, int(name), "") if name.isdigit() else (0, 0, name)
