"""YAML loading that remembers where every key and item came from.

`parse_yaml` builds the plain Python data (safe loader: no tags that run code) and, beside it, a map
from key paths to 1-based line numbers: `("agents", 1, "name") -> 14`. Validation errors carry such
paths (pydantic's `loc`), so they can name the line a user has to fix.

The map is built by composing the node graph once, constructing the data from it, then walking the
same nodes. YAML 1.1 merge keys (`<<: *defaults`) are flattened by the constructor first, so merged
keys point at the lines they were written on. A key written twice in one mapping is an error here
(PyYAML would silently keep the last one, which hides a duplicated agent or a typo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]


class YamlSourceError(ValueError):
    """The text is not YAML, or not YAML this loader accepts. `str()` is one line."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str, key: KeyPath = ()):
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        where = path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        keytext = f" {format_key_path(key)}:" if key else ""
        super().__init__(f"{where}:{keytext} {message}")


@dataclass(frozen=True, slots=True)
class YamlSource:
    """Parsed YAML data plus the line of every key and sequence item in it."""

    path: str  # as the user named it; used verbatim in error messages
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key: KeyPath) -> int:
        """The line of `key`, or of its nearest ancestor that is in the file (e.g. for a missing key)."""
        for end in range(len(key), -1, -1):
            line = self.lines.get(tuple(key[:end]))
            if line is not None:
                return line
        return 1


def format_key_path(key: KeyPath) -> str:
    """`("agents", 1, "name")` -> `agents[1].name`."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(path: str | Path) -> YamlSource:
    """Read and parse a YAML file. Raises YamlSourceError (unreadable file or bad YAML)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSourceError(shown, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise YamlSourceError(shown, None, None, f"cannot read file: {exc.strerror or exc}") from None
    return parse_yaml(text, shown)


def parse_yaml(text: str, path: str = "<string>") -> YamlSource:
    """Parse one YAML document. Raises YamlSourceError naming the line and column of a syntax error."""
    loader = yaml.SafeLoader(text)
    lines: dict[KeyPath, int] = {}
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(node, (), lines, path, frozenset())  # before constructing: that flattens merges in place
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, exc) from None
    except yaml.YAMLError as exc:  # unmarked (rare): e.g. a reader error without position
        raise YamlSourceError(path, None, None, f"YAML error: {_one_line(str(exc))}") from None
    finally:
        loader.dispose()
    return YamlSource(path=path, data=data, lines=lines)


def _syntax_error(path: str, exc: yaml.MarkedYAMLError) -> YamlSourceError:
    mark = exc.problem_mark or exc.context_mark
    problem = _one_line(exc.problem or exc.context or "invalid YAML")
    if exc.context and exc.problem:
        context = _one_line(exc.context)
        if exc.context_mark is not None and (mark is None or exc.context_mark.line != mark.line):
            context += f" started at line {exc.context_mark.line + 1}"
        problem += f" ({context})"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return YamlSourceError(path, line, column, f"YAML syntax error: {problem}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _walk(node: Node, key: KeyPath, lines: dict[KeyPath, int], path: str, stack: frozenset[int]) -> None:
    if id(node) in stack:  # a recursive alias (`a: &x [*x]`): validation rejects the data anyway
        return
    stack = stack | {id(node)}
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        for name, key_node, value_node in _effective_pairs(node, path, key):
            lines[(*key, name)] = key_node.start_mark.line + 1
            _walk(value_node, (*key, name), lines, path, stack)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*key, index)] = item.start_mark.line + 1
            _walk(item, (*key, index), lines, path, stack)


def _effective_pairs(node: MappingNode, path: str, key: KeyPath) -> list[tuple[str, Node, Node]]:
    """The (name, key node, value node) a mapping ends up with: its own keys, then merged ones not
    overridden (`<<: *a` or `<<: [*a, *b]`, earlier sources win). Its own keys must be unique."""
    own: dict[str, tuple[str, Node, Node]] = {}
    merges: list[Node] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            continue  # a complex key never names a field; validation reports the mapping itself
        name = key_node.value
        if name == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
            merges.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
            continue
        if name in own:
            first = own[name][1].start_mark.line + 1
            line = key_node.start_mark.line + 1
            raise YamlSourceError(path, line, None, f"duplicate key (first at line {first})", (*key, name))
        own[name] = (name, key_node, value_node)
    pairs = dict(own)
    for source in merges:
        if isinstance(source, MappingNode):
            for pair in _effective_pairs(source, path, key):
                pairs.setdefault(pair[0], pair)
    return list(pairs.values())
