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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]

# Caps against hostile files (a scenario is a few KB, a few levels deep): checked before anything
# recursive runs (PyYAML's composer and constructor, the walk below, validation) and before any
# alias is expanded, so a deep file or a ~300-byte alias bomb is refused in milliseconds.
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64  # nesting of mappings and sequences, counted through aliases
MAX_NODES = 100_000  # nodes of the document with every alias expanded


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
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlSourceError(path, None, None, f"the file is {size} bytes; the limit is {MAX_BYTES}")
    _check_shape(text, path)
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


_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|(?:^|(?<=\s))#[^\n]*', re.M)
_FLOW = re.compile(r"[\[\]{}]")
_TOP_KEY = re.compile(r"^([A-Za-z0-9_][^:#\s]*)\s*:", re.M)


def _check_flow_nesting(text: str, path: str) -> None:
    """A fast first look at flow brackets (`[[[[...`), outside quotes and comments: PyYAML's scanner
    needs time quadratic in the depth of one long line of them before it yields its first token."""
    blanked = _QUOTED_OR_COMMENT.sub(lambda m: " " * len(m.group()), text)
    steps = [1 if c in "[{" else -1 for c in _FLOW.findall(blanked)]
    depth = 0
    for index, step in enumerate(steps):
        depth += step
        if depth > MAX_DEPTH:
            at = next(m.start() for i, m in enumerate(_FLOW.finditer(blanked)) if i == index)
            line = text.count("\n", 0, at) + 1
            top = _TOP_KEY.findall(text, 0, at)  # the top-level key it is under, for the message
            key: KeyPath = (top[-1],) if top else ()
            raise YamlSourceError(path, line, None, f"nested deeper than {MAX_DEPTH} levels", key)


def _check_shape(text: str, path: str) -> None:
    """Depth and alias expansion, checked with libyaml when it is there (the pure-Python scanner
    takes about a second per 50 KB on a busy machine); a syntax error is left to the loader below,
    which words it the way the rest of this module does."""
    _check_flow_nesting(text, path)
    fast = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_nesting(text, path, fast)
        loader = fast(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return
    if node is not None:
        _check_expansion(node, path)


def _check_nesting(text: str, path: str, loader: Any = yaml.SafeLoader) -> None:
    """Refuse nesting deeper than MAX_DEPTH, from the parser's events (the parser is iterative; the
    composer that builds nodes from them recurses once per level, and would overflow first)."""
    frames: list[list[Any]] = []  # per open collection: [is_mapping, expecting_a_key, key or index]
    for event in yaml.parse(text, Loader=loader):
        if frames and isinstance(event, yaml.CollectionStartEvent | yaml.ScalarEvent | yaml.AliasEvent):
            top = frames[-1]
            if top[0]:
                if top[1]:
                    top[2] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
                top[1] = not top[1]
            else:
                top[2] += 1
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) >= MAX_DEPTH:
                key = tuple(f[2] for f in frames[:3])
                line = event.start_mark.line + 1
                raise YamlSourceError(path, line, None, f"nested deeper than {MAX_DEPTH} levels", key)
            mapping = isinstance(event, yaml.MappingStartEvent)
            frames.append([True, True, None] if mapping else [False, False, -1])
        elif isinstance(event, yaml.CollectionEndEvent):
            frames.pop()


def _check_expansion(root: Node, path: str) -> None:
    """Refuse documents whose aliases expand past MAX_NODES nodes or MAX_DEPTH levels (an alias
    bomb: nine anchors, each a list of the previous one ten times, make a billion nodes from ~300
    bytes), and recursive aliases. Sizes are counted per distinct node, iteratively: linear time."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    state: dict[int, int] = {}  # 1: on the stack, 2: done
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        kids = _children(node)
        if children_done:
            size[ident] = 1 + sum(size[id(k)] for k in kids)
            depth[ident] = 1 + max((depth[id(k)] for k in kids), default=0)
            state[ident] = 2
            if size[ident] > MAX_NODES or depth[ident] > MAX_DEPTH:
                what = f"more than {MAX_NODES} nodes" if size[ident] > MAX_NODES else f"deeper than {MAX_DEPTH} levels"
                line, key = _locate(root, node)
                raise YamlSourceError(path, line, None, f"aliases expand to {what} (an alias bomb?)", key)
            continue
        if state.get(ident) == 2:
            continue
        if state.get(ident) == 1:
            line = node.start_mark.line + 1
            raise YamlSourceError(path, line, None, "a recursive alias (an anchor used inside itself)")
        state[ident] = 1
        stack.append((node, True))
        stack.extend((k, False) for k in kids if state.get(id(k)) != 2)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _locate(root: Node, target: Node) -> tuple[int, KeyPath]:
    """The line and top-level key of the first place `target` is reached from the document's top."""
    if isinstance(root, MappingNode):
        for key_node, value_node in root.value:
            if _reaches(value_node, target):
                name = key_node.value if isinstance(key_node, ScalarNode) else "?"
                return key_node.start_mark.line + 1, (name,)
    return target.start_mark.line + 1, ()


def _reaches(start: Node, target: Node) -> bool:
    seen: set[int] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node is target:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            todo.extend(_children(node))
    return False


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
