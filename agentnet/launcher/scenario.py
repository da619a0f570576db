"""The scenario model: one YAML file says which hub to run, which agents, what they do and what success is.

Config versus runtime, as in uvicorn: this module only describes and validates. A scenario is checked
once, completely (structure by pydantic, then cross-references: agent names, channel aliases,
dependencies, brains and their options, channel knobs, times), and the launcher trusts the `Scenario`
it gets. `load_scenario` turns every problem into a `ScenarioError` whose `str()` is one line naming the
file, the line and the key:

    scenarios/x.yaml:14: agents[1].name: duplicate agent name 'bob' (first at line 9)

`docs/scenarios.md` is the user's reference for every field; `scenario_json_schema()` is the same for
editors (`agentnet schema > scenario.schema.json`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from agentnet.agents.brains import BRAIN_NAMES, BrainConfigError, validate_brain_options
from agentnet.agents.brains.templating import check_template, render
from agentnet.hub.rules import validate_knobs
from agentnet.hub.settings import DELIVERY, KEEPALIVE, DeliverySettings, KeepaliveSettings
from agentnet.protocol.errors import ProtocolError
from agentnet.protocol.models import NAME_PATTERN, ChannelType, EnvelopeType, Name
from agentnet.protocol.vocab import HUB_SENDER

from .yamlsource import KeyPath, YamlSource, format_key_path

# --------------------------------------------------------------------------- errors


class ScenarioError(ValueError):
    """A scenario that cannot run. `str()` is one line: `FILE:LINE: KEY: MESSAGE`.

    `more` holds the other problems found in the same pass (also ScenarioErrors), in line order, so a
    CLI can print them all; the launcher starts nothing when it gets one. CLIs exit with `exit_code`.
    """

    exit_code = 2

    def __init__(
        self,
        path: str | Path | None,
        line: int | None,
        key: str | None,
        message: str,
        *,
        column: int | None = None,
        more: tuple[ScenarioError, ...] = (),
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key or None
        self.message = message
        self.more = more
        where = [part for part in (self.path, line, column if line is not None else None) if part is not None]
        prefix = ":".join(str(part) for part in where)
        text = f"{self.key}: {message}" if self.key else message
        super().__init__(f"{prefix}: {text}" if prefix else text)

    @property
    def all(self) -> tuple[ScenarioError, ...]:
        """This error and the others found with it."""
        return (self, *self.more)


# --------------------------------------------------------------------------- field types

AGENT_NAME_HINT = (
    "expected a name of lowercase letters, digits, '_', '.' or '-' (1-64, starting with a letter or digit)"
)
STORE_PATTERN = r"^(memory|sqlite(:.+)?|postgresql|postgres(ql)?://.+)$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PATTERN_HINTS = {
    NAME_PATTERN: AGENT_NAME_HINT,
    STORE_PATTERN: "expected 'sqlite', 'sqlite:PATH', 'memory', 'postgresql' or 'postgresql://URL'",
    ENV_NAME_PATTERN: "expected an environment variable name (letters, digits, '_'; no leading digit)",
}

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Alias = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Caption = Annotated[str, StringConstraints(max_length=500)]
RestartPolicy = Literal["no", "on-failure", "always"]
FaultAction = Literal[
    "kill", "stop", "pause", "resume", "disconnect", "restart", "restart-hub", "kill-hub", "freeze-hub", "failover"
]
HUB_FAULTS = ("restart-hub", "kill-hub", "freeze-hub", "failover")


def _restart_policy(value: Any) -> Any:
    # YAML 1.1 reads a bare `no` as false; process-compose spells it on_failure.
    if value is False:
        return "no"
    return "on-failure" if value == "on_failure" else value


def _env_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


EnvValue = Annotated[str, BeforeValidator(_env_value, json_schema_input_type=str | int | float | bool)]
Restart = Annotated[RestartPolicy, BeforeValidator(_restart_policy, json_schema_input_type=RestartPolicy)]
Recipients = Annotated[
    list[Name],
    Field(min_length=1),
    BeforeValidator(_one_or_many, json_schema_input_type=Annotated[list[Name], Field(min_length=1)] | Name),
]


class _Spec(BaseModel):
    """Base of every scenario model: unknown keys are errors, YAML types are taken as written."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- hub


class HubSpec(_Spec):
    """The hub process the launcher starts first."""

    port: int = Field(0, ge=0, le=65535, description="TCP port on 127.0.0.1; 0 picks a free one.")
    store: Annotated[str, StringConstraints(pattern=STORE_PATTERN)] = Field(
        "sqlite",
        description="'sqlite' (a file in the run directory), 'sqlite:PATH' (relative to the scenario file), "
        "'memory' (lost when the hub stops), 'postgresql' (a throwaway PostgreSQL the launcher starts in the "
        "run directory) or 'postgresql://URL' (an existing database).",
    )
    replicas: int = Field(
        1, ge=1, le=5, description="Hubs on the store (postgresql only): one active, the others standing by."
    )
    lease: PositiveSeconds = Field(
        2.0, description="postgresql: seconds after which a silent (frozen, cut-off) active hub loses the lead."
    )
    auth: bool = Field(False, description="Generate a token per agent and one for the observer.")
    delivery: DeliverySettings = DELIVERY  # the hub's own settings models (agentnet.hub.settings)
    keepalive: KeepaliveSettings = KEEPALIVE

    @model_validator(mode="after")
    def _replicas_share_a_database(self) -> HubSpec:
        if self.replicas > 1 and self.store_kind != "postgresql":
            raise ValueError(
                f"replicas: {self.replicas} hubs need a shared store (store: postgresql), not {self.store!r}"
            )
        return self

    @property
    def store_kind(self) -> Literal["sqlite", "memory", "postgresql"]:
        if self.store == "memory":
            return "memory"
        return "postgresql" if self.store.startswith("postgres") else "sqlite"

    def store_path(self, run_dir: Path, base_dir: Path) -> Path | None:
        """The sqlite file (None for memory and postgresql): `run_dir/hub.sqlite3`, or PATH resolved
        against base_dir."""
        if self.store_kind != "sqlite":
            return None
        if self.store == "sqlite":
            return run_dir / "hub.sqlite3"
        return base_dir / Path(self.store.removeprefix("sqlite:")).expanduser()


# --------------------------------------------------------------------------- agents


class BackoffSpec(_Spec):
    """Delay before restart n (1, 2, ...): min(max, initial * factor**(n-1)), plus up to jitter of it."""

    initial: PositiveSeconds = Field(0.5, description="Seconds before the first restart.")
    max: PositiveSeconds = Field(10.0, description="Upper bound of the delay.")
    factor: float = Field(2.0, ge=1, le=100, description="Growth of the delay per restart.")
    jitter: float = Field(0.0, ge=0, le=1, description="Random extra, as a fraction of the delay (0 = none).")

    @model_validator(mode="after")
    def _max_at_least_initial(self) -> BackoffSpec:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max:g}) must be at least initial ({self.initial:g})")
        return self

    def delay(self, restart: int) -> float:
        """The delay before restart number `restart` (1-based), without jitter."""
        return min(self.max, self.initial * self.factor ** max(0, restart - 1))


class AgentSpec(_Spec):
    """One agent declaration; `replicas` > 1 makes several processes of it."""

    name: Name = Field(description="Unique; with replicas > 1 the processes are NAME-1, NAME-2, ...")
    brain: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="The brain that answers turns (give either brain or command)."
    )
    options: dict[str, Any] = Field({}, description="Brain options, checked by the brain.")
    command: Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)] | None = Field(
        None,
        description="Any program instead of a brain, e.g. an ag2 script: argv, run in the scenario file's folder. "
        "Placeholders: {name}, {hub_url}, {hub_host}, {hub_port}, {run_dir}, {autogen_address} (with "
        "gateways: [autogen]). Ready when the hub sees it registered.",
    )
    env: dict[Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)], EnvValue] = Field(
        {}, description="Extra environment variables for the process."
    )
    restart: Restart = Field(
        "on-failure",
        description="When the process ends: 'no', 'on-failure' (non-zero exit or signal), 'always'.",
    )
    backoff: BackoffSpec = BackoffSpec()
    max_restarts: int | None = Field(5, ge=0, description="Restarts before giving up; null = no limit.")
    depends_on: list[Name] = Field(
        [], description="Agents (or replica names) that must be ready before this one starts."
    )
    replicas: int = Field(1, ge=1, le=100, description="Processes of this agent.")

    def process_names(self) -> list[str]:
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.replicas + 1)]


@dataclass(frozen=True, slots=True)
class AgentInstance:
    """One agent process, after expanding replicas."""

    name: str  # final name: the declared one, or NAME-i for replica i
    spec: AgentSpec
    replica: int | None  # 1-based replica number; None when the agent has a single process
    depends_on: tuple[str, ...]  # final names of the processes that must be ready first


# --------------------------------------------------------------------------- script


class _Step(_Spec):
    at: Seconds = Field(description="Seconds after every agent is ready.")


class OpenStep(_Step):
    """Open a channel on behalf of `from` (its creator) and optionally post the first turn."""

    action: Literal["open"]
    channel: Alias = Field(description="Alias of the channel, used by later steps and by expect.")
    type: ChannelType
    from_: Name = Field(alias="from", description="The agent that opens the channel.")
    to: Recipients = Field(description="The other participants, in order (turn order for discussion/workflow).")
    topic: Annotated[str, StringConstraints(max_length=1000)] | None = None
    knobs: dict[str, Any] = Field(
        {}, description="max_turns (conversation), rounds (discussion), max_revisions (workflow)."
    )
    text: str | None = Field(None, description="First message (a text turn) posted by `from`.")


class PostStep(_Step):
    """Post a message into a channel opened earlier, on behalf of `from`."""

    action: Literal["post"]
    channel: Alias
    from_: Name = Field(alias="from")
    text: str
    type: EnvelopeType = Field("text", description="Envelope type; only 'text' (and 'revise') are turns.")


STREAM_PLACEHOLDERS = ("n", "count")


class StreamStep(_Step):
    """Post `count` envelopes at `rate` per second: a steady load to watch under faults."""

    action: Literal["stream"]
    channel: Alias
    from_: Name = Field(alias="from")
    count: int = Field(ge=1, le=1_000_000)
    rate: float = Field(gt=0, le=10_000, allow_inf_nan=False, description="Envelopes per second.")
    type: EnvelopeType = Field("note", description="Envelope type; non-turn types ask no reply.")
    text: str = Field("note {n} of {count}", description="Template: {n} (1-based) and {count}.")

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        check_template(text, STREAM_PLACEHOLDERS)
        return text

    @property
    def duration(self) -> float:
        """Seconds from the first envelope to the last."""
        return (self.count - 1) / self.rate

    def text_for(self, n: int) -> str:
        return render(self.text, {"n": str(n), "count": str(self.count)})


ScriptStep = Annotated[Union[OpenStep, PostStep, StreamStep], Field(discriminator="action")]  # noqa: UP007


class Fault(_Spec):
    """One entry of the fault timeline."""

    at: Seconds = Field(description="Seconds after every agent is ready.")
    action: FaultAction = Field(
        description="kill (SIGKILL: a crash), stop (SIGTERM: intentional), pause (SIGSTOP), "
        "resume (SIGCONT), disconnect (the hub drops the socket), restart (the process), restart-hub; with "
        "hub replicas: kill-hub (SIGKILL the active hub), freeze-hub (SIGSTOP it for `duration` s), "
        "failover (restart the active hub: a standby takes over)."
    )
    target: Name | None = Field(None, description="Agent or replica name; a replicated agent's name means all.")
    caption: Caption | None = Field(None, description="Shown in the dashboard when the fault fires.")
    duration: PositiveSeconds | None = Field(
        None, description="freeze-hub: seconds the active hub stays frozen (SIGSTOP) before SIGCONT wakes it."
    )


LIVE_PLACEHOLDERS = ("n",)


class LiveSpec(_Spec):
    """With the dashboard open (not headless): once the script is done, keep asking until the user quits.

    Every `every` seconds `from` opens a new consulting channel to `to` and asks `text`, so there is
    always work in flight to watch, kill and replay. Headless runs ignore this section.
    """

    every: PositiveSeconds = Field(1.5, description="Seconds between two questions.")
    from_: Name = Field(alias="from", description="The agent that asks.")
    to: Recipients = Field(description="The agents that answer.")
    topic: Annotated[str, StringConstraints(max_length=1000)] | None = None
    text: str = Field("What is {n} times 11?", description="Template: {n} counts the questions (1, 2, ...).")
    caption: Caption | None = Field(None, description="Shown in the dashboard when the questions start.")

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        check_template(text, LIVE_PLACEHOLDERS)
        return text

    def text_for(self, n: int) -> str:
        return render(self.text, {"n": str(n)})


# --------------------------------------------------------------------------- expect


class ReplyExpect(_Spec):
    channel: Alias
    from_: Name = Field(alias="from", description="Agent (a replicated agent's name means any replica).")
    matches: str = Field(description="Python regular expression searched in the reply's text.")

    @field_validator("matches")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern


class CountsExpect(_Spec):
    dead_letters: int | None = Field(None, ge=0, description="Exact number of dead-lettered deliveries.")
    min_delivered: int | None = Field(
        None, ge=0, description="At least this many deliveries acked (each recipient/channel/seq once)."
    )


class Expect(_Spec):
    """What a successful run shows; checked until `within` seconds after the run starts."""

    within: PositiveSeconds = Field(60.0, description="Seconds for the whole run, from the launch.")
    channels_closed: list[Alias] = []
    all_channels_closed: bool = False
    all_acked: bool = Field(False, description="Every envelope acked by every recipient at the end.")
    replies: list[ReplyExpect] = []
    counts: CountsExpect = CountsExpect()


# --------------------------------------------------------------------------- scenario


class Scenario(_Spec):
    """An agentnet scenario: a hub, agents, a script, a fault timeline and what success looks like."""

    model_config = ConfigDict(title="agentnet scenario", json_schema_extra={"patternProperties": {"^x-": {}}})

    name: Name
    description: str = ""
    hub: HubSpec = HubSpec()
    gateways: list[Literal["autogen"]] = Field(
        [],
        description="Gateways the hub serves besides agentnet's own protocol: 'autogen' = AutoGen 0.7.5 gRPC "
        "workers, whose host_address is {autogen_address} (docs/autogen.md).",
    )
    agents: list[AgentSpec] = Field(min_length=1)
    script: list[ScriptStep] = Field([], description="Timed actions; sorted by `at` (stable) once loaded.")
    faults: list[Fault] = Field([], description="Fault timeline; sorted by `at` (stable) once loaded.")
    expect: Expect | None = None
    live: LiveSpec | None = Field(None, description="Only with the dashboard: keep asking until the user quits.")

    _source: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data: Any) -> Any:
        # Top-level `x-...` keys are ignored (docker compose's convention): a place for YAML anchors.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        issues = list(_cross_issues(self))
        if issues:
            raise _Issues(issues)
        # Times may be written in any order; the launcher runs them in time order (stable for ties).
        self.script.sort(key=lambda step: step.at)
        self.faults.sort(key=lambda fault: fault.at)
        return self

    # ---- agents

    def agent_names(self) -> list[str]:
        """Every process name, replicas expanded, in declaration order."""
        return [name for spec in self.agents for name in spec.process_names()]

    def expanded_agents(self) -> list[AgentInstance]:
        """One entry per process, with its final name and its dependencies resolved to final names."""
        out: list[AgentInstance] = []
        for spec in self.agents:
            deps = tuple(name for dep in spec.depends_on for name in self.resolve(dep))
            names = spec.process_names()
            for i, name in enumerate(names, start=1):
                out.append(AgentInstance(name, spec, i if len(names) > 1 else None, deps))
        return out

    def resolve(self, name: str) -> tuple[str, ...]:
        """Process names that `name` stands for: a replicated agent's name means all its replicas."""
        for spec in self.agents:
            names = spec.process_names()
            if name == spec.name or name in names:
                return tuple(names) if name == spec.name else (name,)
        return ()

    # ---- channels

    def channels(self) -> dict[str, OpenStep]:
        """The open steps by channel alias."""
        return {step.channel: step for step in self.script if isinstance(step, OpenStep)}

    def participants(self, alias: str) -> tuple[str, ...]:
        """Process names in a channel, creator first (the turn order of discussions and workflows)."""
        step = self.channels()[alias]
        return (step.from_, *(name for recipient in step.to for name in self.resolve(recipient)))

    # ---- files

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from (None when built from data)."""
        return self._source

    def store_path(self, run_dir: Path) -> Path | None:
        """The hub's sqlite file for a run in `run_dir`; None with the memory store."""
        base = self._source.parent if self._source is not None else Path.cwd()
        return self.hub.store_path(run_dir, base)


# --------------------------------------------------------------------------- cross-reference checks


@dataclass(frozen=True, slots=True)
class _Issue:
    loc: KeyPath
    message: str
    first: KeyPath | None = None  # where the other half of a conflict is: rendered "(first at line N)"


class _Issues(ValueError):
    """Raised inside validation with every cross-reference problem; load_scenario unpacks it."""

    def __init__(self, issues: list[_Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(_render(issue, None) for issue in issues))


def _render(issue: _Issue, source: YamlSource | None) -> str:
    if issue.first is None:
        return issue.message
    where = f"line {source.line_of(issue.first)}" if source is not None else format_key_path(issue.first)
    return f"{issue.message} (first at {where})"


def _cross_issues(s: Scenario) -> Iterator[_Issue]:
    yield from _agent_issues(s)
    yield from _script_issues(s)
    yield from _fault_issues(s)
    if s.expect is not None:
        yield from _expect_issues(s, s.expect)
    if s.live is not None:
        yield from _agent_ref(s, s.live.from_, ("live", "from"), single=True)
        for j, name in enumerate(s.live.to):
            yield from _agent_ref(s, name, ("live", "to", j))


def _known(s: Scenario) -> str:
    names = (
        f"{spec.name} ({', '.join(spec.process_names())})" if spec.replicas > 1 else spec.name for spec in s.agents
    )
    return ", ".join(dict.fromkeys(names))


def _agent_ref(s: Scenario, name: str, loc: KeyPath, *, single: bool = False) -> Iterator[_Issue]:
    """`name` must be a declared agent or replica; with `single`, one process (not a replicated agent)."""
    names = s.resolve(name)
    if not names:
        yield _Issue(loc, f"unknown agent '{name}' (agents: {_known(s)})")
    elif single and len(names) > 1:
        yield _Issue(loc, f"'{name}' has {len(names)} replicas; name one of them ({', '.join(names)})")


def _agent_issues(s: Scenario) -> Iterator[_Issue]:
    claimed: dict[str, int] = {}  # every name an agent answers to (declared and replica) -> agent index
    for i, spec in enumerate(s.agents):
        for name in dict.fromkeys([spec.name, *spec.process_names()]):
            key: KeyPath = ("agents", i, "name" if name == spec.name else "replicas")
            if name == HUB_SENDER:
                yield _Issue(key, f"'{name}' is reserved (the hub's own sender name)")
            elif len(name) > 64:
                yield _Issue(key, f"replica name '{name}' is longer than 64 characters")
            elif name in claimed:
                other = s.agents[claimed[name]]
                if name != spec.name:
                    what = f"replica name '{name}' is taken by the agent '{other.name}'"
                elif name != other.name:
                    what = f"agent name '{name}' is taken by a replica of '{other.name}'"
                else:
                    what = f"duplicate agent name '{name}'"
                yield _Issue(key, what, ("agents", claimed[name], "name"))
                break  # one clash per agent is enough to fix it
            else:
                claimed[name] = i
    for i, spec in enumerate(s.agents):
        for j, dep in enumerate(spec.depends_on):
            loc = ("agents", i, "depends_on", j)
            if claimed.get(dep) == i:
                yield _Issue(loc, f"agent '{spec.name}' cannot depend on itself")
            else:
                yield from _agent_ref(s, dep, loc)
        yield from _brain_issues(i, spec)
    cycle = _dependency_cycle(s, claimed)
    if cycle is not None:
        yield _Issue(
            ("agents", cycle[0], "depends_on"),
            "dependency cycle: " + " -> ".join(s.agents[i].name for i in cycle),
        )


COMMAND_PLACEHOLDERS = ("name", "hub_url", "hub_host", "hub_port", "run_dir", "autogen_address")


def _brain_issues(index: int, spec: AgentSpec) -> Iterator[_Issue]:
    if spec.command is not None:
        if spec.brain is not None:
            yield _Issue(("agents", index, "command"), "give either brain or command, not both")
        elif spec.options:
            yield _Issue(("agents", index, "options"), "options are for brains; a command agent takes none")
        for j, arg in enumerate(spec.command):
            try:
                check_template(arg, COMMAND_PLACEHOLDERS)
            except ValueError as exc:
                yield _Issue(("agents", index, "command", j), str(exc))
        return
    if spec.brain is None:
        yield _Issue(("agents", index, "brain"), "missing required key (or give a command: any program)")
        return
    if spec.brain not in BRAIN_NAMES:
        yield _Issue(("agents", index, "brain"), f"unknown brain '{spec.brain}' (brains: {', '.join(BRAIN_NAMES)})")
        return
    try:
        validate_brain_options(spec.brain, spec.options)
    except BrainConfigError as exc:
        yield _Issue(("agents", index, "options"), " ".join(str(exc).split()))


def _dependency_cycle(s: Scenario, claimed: dict[str, int]) -> list[int] | None:
    """The first dependency cycle between agent declarations, as a closed path of agent indexes."""
    graph = [
        list(dict.fromkeys(claimed[dep] for dep in spec.depends_on if claimed.get(dep, i) != i))
        for i, spec in enumerate(s.agents)
    ]
    done: set[int] = set()

    def visit(node: int, path: list[int]) -> list[int] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for dep in graph[node]:
            found = visit(dep, [*path, node])
            if found is not None:
                return found
        done.add(node)
        return None

    for start in range(len(graph)):
        found = visit(start, [])
        if found is not None:
            return found
    return None


def _script_issues(s: Scenario) -> Iterator[_Issue]:
    opened: dict[str, int] = {}  # alias -> index of its open step
    # Steps run in time order (ties: file order); a channel must be opened before it is used.
    for i in sorted(range(len(s.script)), key=lambda k: s.script[k].at):
        step = s.script[i]
        loc: KeyPath = ("script", i)
        if isinstance(step, OpenStep):
            if step.channel in opened:
                first = ("script", opened[step.channel], "channel")
                yield _Issue((*loc, "channel"), f"channel '{step.channel}' is opened twice", first)
                continue
            opened[step.channel] = i
            yield from _agent_ref(s, step.from_, (*loc, "from"), single=True)
            creator = s.resolve(step.from_)
            listed: set[str] = set()
            for j, recipient in enumerate(step.to):
                names = s.resolve(recipient)
                if not names:
                    yield from _agent_ref(s, recipient, (*loc, "to", j))
                elif set(names) & set(creator):
                    yield _Issue((*loc, "to", j), f"'{recipient}' opens the channel; list only the others")
                elif set(names) & listed:
                    yield _Issue((*loc, "to", j), f"'{recipient}' is listed twice")
                listed.update(names)
            for knob, value in step.knobs.items():
                try:
                    validate_knobs(step.type, {knob: value})
                except ProtocolError as exc:
                    yield _Issue((*loc, "knobs", knob), exc.message)
            continue
        if step.channel not in s.channels():
            yield _Issue((*loc, "channel"), f"unknown channel '{step.channel}'{_aliases(s)}")
            continue
        if step.channel not in opened:
            first_at = s.channels()[step.channel].at
            yield _Issue((*loc, "at"), f"channel '{step.channel}' is not open yet (it opens at {first_at:g} s)")
            continue
        issues = list(_agent_ref(s, step.from_, (*loc, "from"), single=True))
        yield from issues
        if not issues and step.from_ not in s.participants(step.channel):
            who = ", ".join(s.participants(step.channel))
            yield _Issue((*loc, "from"), f"'{step.from_}' is not in channel '{step.channel}' ({who})")


def _aliases(s: Scenario) -> str:
    aliases = list(s.channels())
    return f" (channels: {', '.join(aliases)})" if aliases else " (no channel is opened in the script)"


def _fault_issues(s: Scenario) -> Iterator[_Issue]:
    for i, fault in enumerate(s.faults):
        loc: KeyPath = ("faults", i)
        if fault.duration is not None and fault.action != "freeze-hub":
            yield _Issue((*loc, "duration"), "only freeze-hub takes a duration")
        if fault.action in ("kill-hub", "freeze-hub", "failover") and s.hub.replicas < 2:
            yield _Issue(
                (*loc, "action"), f"{fault.action} needs a standby hub (hub: {{store: postgresql, replicas: 2}})"
            )
        if fault.action == "freeze-hub" and fault.duration is None:
            yield _Issue((*loc, "duration"), "freeze-hub needs a duration (seconds frozen)")
        if fault.action in HUB_FAULTS:
            if fault.target is not None:
                yield _Issue((*loc, "target"), f"{fault.action} takes no target")
        elif fault.target is None:
            yield _Issue((*loc, "target"), f"{fault.action} needs a target (an agent name)")
        else:
            yield from _agent_ref(s, fault.target, (*loc, "target"))


def _expect_issues(s: Scenario, expect: Expect) -> Iterator[_Issue]:
    channels = s.channels()
    for j, alias in enumerate(expect.channels_closed):
        if alias not in channels:
            yield _Issue(("expect", "channels_closed", j), f"unknown channel '{alias}'{_aliases(s)}")
    if expect.all_channels_closed and expect.channels_closed:
        yield _Issue(("expect", "all_channels_closed"), "give either channels_closed or all_channels_closed")
    for j, reply in enumerate(expect.replies):
        loc: KeyPath = ("expect", "replies", j)
        if reply.channel not in channels:
            yield _Issue((*loc, "channel"), f"unknown channel '{reply.channel}'{_aliases(s)}")
            continue
        issues = list(_agent_ref(s, reply.from_, (*loc, "from")))
        yield from issues
        members = s.participants(reply.channel)
        if not issues and not set(s.resolve(reply.from_)) & set(members):
            yield _Issue((*loc, "from"), f"'{reply.from_}' is not in channel '{reply.channel}' ({', '.join(members)})")
    # Everything scheduled must happen before the deadline, or the run cannot show it.
    for i, step in enumerate(s.script):
        end = step.at + step.duration if isinstance(step, StreamStep) else step.at
        if end >= expect.within:
            what = f"the stream ends at {end:g} s" if isinstance(step, StreamStep) else f"at {step.at:g} s"
            yield _Issue(("script", i, "at"), f"{what}, not before expect.within ({expect.within:g} s)")
    for i, fault in enumerate(s.faults):
        if fault.at >= expect.within:
            yield _Issue(("faults", i, "at"), f"at {fault.at:g} s, not before expect.within ({expect.within:g} s)")


# --------------------------------------------------------------------------- loading
