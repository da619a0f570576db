"""The scenario model: shipped scenarios validate; every error is one line naming file, line and key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentnet.launcher.scenario import OpenStep, Scenario, ScenarioError, StreamStep
from agentnet.launcher.scenario_load import load_scenario, parse_scenario, scenario_json_schema
from agentnet.launcher.yamlsource import parse_yaml

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))

MINIMAL = """\
name: t
agents:
  - name: alice
    brain: echo
  - name: bob
    brain: calc
"""


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write YAML text to s.yaml (cwd = tmp_path, so messages start with `s.yaml:`) and load it."""
    monkeypatch.chdir(tmp_path)

    def _load(text: str) -> Scenario:
        Path("s.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return load_scenario("s.yaml")

    return _load


@pytest.fixture
def error(load):
    """The ScenarioError's one-line message for YAML text that must not validate."""

    def _error(text: str) -> str:
        with pytest.raises(ScenarioError) as info:
            load(text)
        message = str(info.value)
        assert "\n" not in message
        assert info.value.exit_code == 2
        return message

    return _error


# --------------------------------------------------------------------------- shipped scenarios


def test_all_five_scenarios_ship() -> None:
    assert {p.stem for p in SCENARIOS} >= {"consult", "conversation", "discussion", "workflow", "chaos"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_validates_and_says_what_it_teaches(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.description
    assert scenario.expect is not None
    header = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in header[: header.index("")] if line.startswith("#")]
    assert len(comments) >= 5 and "Teaches" in " ".join(comments)
    assert "Watch in the dashboard" in path.read_text(encoding="utf-8")
    assert all(fault.caption for fault in scenario.faults)


def test_consult_asks_bob_12_times_11() -> None:
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "consult.yaml")
    (step,) = scenario.script
    assert isinstance(step, OpenStep)
    assert (step.from_, step.to, step.type, step.text) == (
        "alice",
        ["bob"],
        "consulting",
        "What is 12 times 11?",
    )
    assert scenario.agents[1].brain == "calc"
    assert scenario.expect is not None and scenario.expect.within <= 20
    assert scenario.expect.channels_closed == ["q1"]
    assert scenario.expect.replies[0].matches == r"\b132\b"


def test_chaos_runs_every_fault_kind_against_a_stream() -> None:
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "chaos.yaml")
    actions = [fault.action for fault in scenario.faults]
    assert {"kill", "pause", "resume", "disconnect", "restart-hub"} <= set(actions)
    stream = next(step for step in scenario.script if isinstance(step, StreamStep))
    assert stream.count >= 1000 and stream.type == "note"
    pause = next(f for f in scenario.faults if f.action == "pause")
    resume = next(f for f in scenario.faults if f.action == "resume")
    keepalive = scenario.hub.keepalive
    assert resume.at - pause.at > keepalive.ping_interval + keepalive.ping_timeout
    assert scenario.hub.store_kind == "sqlite"
    assert scenario.expect is not None and scenario.expect.counts.dead_letters == 0
    assert scenario.expect.all_acked


# --------------------------------------------------------------------------- YAML-level errors


def test_broken_yaml_names_line_and_column(error) -> None:
    text = "name: t\nagents: [\n  {name: a, brain: echo}\n"
    assert error(text) == (
        "s.yaml:4:1: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence started at line 2)"
    )


def test_bad_indentation(error) -> None:
    assert error("name: t\n  agents: []\n") == "s.yaml:2:9: YAML syntax error: mapping values are not allowed here"


def test_duplicate_yaml_key(error) -> None:
    text = MINIMAL + "    brain: echo\n"
    assert error(text) == "s.yaml:7: agents[1].brain: duplicate key (first at line 6)"


def test_empty_file_and_non_mapping(error) -> None:
    assert error("") == "s.yaml:1: the file is empty; a scenario is a mapping (name:, agents:, ...)"
    assert error("- a\n") == "s.yaml:1: expected a mapping (name:, agents:, ...), got a list"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read file: No such file or directory"


def test_merge_keys_and_extension_keys(load) -> None:
    scenario = load(
        """\
        name: t
        x-agent: &agent {brain: echo, restart: no}
        agents:
          - <<: *agent
            name: a
            brain: calc
        """
    )
    assert (scenario.agents[0].brain, scenario.agents[0].restart) == ("calc", "no")
    source = parse_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n")
    assert source.lines[("c", "b")] == 1 and source.lines[("c", "d")] == 4


# --------------------------------------------------------------------------- structural errors


def test_missing_required_key(error) -> None:
    text = MINIMAL.replace("    brain: calc\n", "")
    assert error(text) == "s.yaml:5: agents[1].brain: missing required key (or give a command: any program)"


def test_missing_top_level_key(error) -> None:
    assert error("name: t\n") == "s.yaml:1: agents: missing required key"


def test_unknown_key_suggests_the_right_one(error) -> None:
    assert error(MINIMAL + "    replica: 2\n") == "s.yaml:7: agents[1].replica: unknown key (did you mean 'replicas'?)"
    assert error(MINIMAL + "zzz: 1\n").startswith("s.yaml:7: zzz: unknown key (allowed: name, description, hub,")


def test_unknown_key_inside_a_script_step(error) -> None:
    text = MINIMAL + "script:\n  - {at: 1, action: post, channel: q, from: alice, text: hi, txet: x}\n"
    assert error(text) == "s.yaml:8: script[0].txet: unknown key (did you mean 'text'?)"


def test_wrong_types(error) -> None:
    assert error(MINIMAL + "hub: {port: '8080'}\n") == "s.yaml:7: hub.port: expected a valid integer, got '8080'"
    assert error(MINIMAL + "hub: {auth: maybe}\n") == "s.yaml:7: hub.auth: expected a valid boolean, got 'maybe'"
    assert error(MINIMAL + "hub: 5\n") == "s.yaml:7: hub: expected a mapping, got 5"


def test_port_range(error) -> None:
    assert error(MINIMAL + "hub:\n  port: 70000\n") == "s.yaml:8: hub.port: must be <= 65535, got 70000"


def test_store_values(load, error, tmp_path: Path) -> None:
    assert error(MINIMAL + "hub: {store: redis}\n") == (
        "s.yaml:7: hub.store: expected 'sqlite', 'sqlite:PATH', 'memory', 'postgresql' or 'postgresql://URL', "
        "got 'redis'"
    )
    run_dir = tmp_path / "run"
    pg = load(MINIMAL + "hub: {store: postgresql, replicas: 2}\n")
    assert pg.hub.store_kind == "postgresql" and pg.hub.replicas == 2 and pg.store_path(run_dir) is None
    assert "need a shared store" in error(MINIMAL + "hub: {store: sqlite, replicas: 2}\n")
    faults = "faults:\n  - {at: 1, action: freeze-hub}\n"
    assert "needs a standby hub" in error(MINIMAL + "hub: {store: postgresql}\n" + faults)
    assert load(MINIMAL).store_path(run_dir) == run_dir / "hub.sqlite3"
    assert load(MINIMAL + "hub: {store: memory}\n").store_path(run_dir) is None
    scenario = load(MINIMAL + "hub: {store: 'sqlite:data/wal.db'}\n")
    assert scenario.store_path(run_dir) == Path("data/wal.db")  # relative to the scenario file (cwd here)


def test_bad_agent_name(error) -> None:
    assert error(MINIMAL.replace("name: bob", "name: Bob")) == (
        "s.yaml:5: agents[1].name: expected a name of lowercase letters, digits, '_', '.' or '-' "
        "(1-64, starting with a letter or digit), got 'Bob'"
    )


def test_restart_policy(load, error) -> None:
    assert load(MINIMAL + "    restart: no\n").agents[1].restart == "no"  # YAML 1.1 reads `no` as false
    assert load(MINIMAL + "    restart: on_failure\n").agents[1].restart == "on-failure"
    assert error(MINIMAL + "    restart: sometimes\n") == (
        "s.yaml:7: agents[1].restart: expected 'no', 'on-failure' or 'always', got 'sometimes'"
    )


def test_backoff_and_env(load, error) -> None:
    scenario = load(MINIMAL + "    env: {PORT: 8080, DEBUG: true, NAME: x}\n    backoff: {initial: 1, max: 5}\n")
    assert scenario.agents[1].env == {"PORT": "8080", "DEBUG": "true", "NAME": "x"}
    assert [scenario.agents[1].backoff.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert error(MINIMAL + "    backoff: {initial: 5, max: 1}\n") == (
        "s.yaml:7: agents[1].backoff: max (1) must be at least initial (5)"
    )


def test_unknown_script_action(error) -> None:
    text = MINIMAL + "script:\n  - at: 1\n    action: explode\n"
    assert error(text) == "s.yaml:9: script[0].action: unknown action 'explode' (expected 'open', 'post', 'stream')"


def test_all_structural_errors_are_collected_in_line_order(load) -> None:
    with pytest.raises(ScenarioError) as info:
        load(MINIMAL.replace("name: t", "name: T") + "hub: {port: -1}\n")
    assert [(e.line, e.key) for e in info.value.all] == [(1, "name"), (7, "hub.port")]


# --------------------------------------------------------------------------- agents


DUPLICATE = """\
name: t
description: two bobs
hub:
  port: 0
agents:
  - name: alice
    brain: echo
    restart: always
  - name: bob
    brain: calc
  - name: carol
    brain: echo
  - name: bob
    brain: echo
"""


def test_duplicate_agent_name(load) -> None:
    with pytest.raises(ScenarioError) as info:
        load(DUPLICATE)
    assert str(info.value) == "s.yaml:13: agents[3].name: duplicate agent name 'bob' (first at line 9)"
    assert (info.value.path, info.value.line, info.value.key) == ("s.yaml", 13, "agents[3].name")


def test_name_clash_with_a_replica(error) -> None:
    text = MINIMAL + "    replicas: 2\n  - name: bob-2\n    brain: echo\n"
    assert (
        error(text) == "s.yaml:8: agents[2].name: agent name 'bob-2' is taken by a replica of 'bob' (first at line 5)"
    )


def test_reserved_hub_name(error) -> None:
    assert error(MINIMAL.replace("name: bob", "name: hub")) == (
        "s.yaml:5: agents[1].name: 'hub' is reserved (the hub's own sender name)"
    )


def test_replicas_expand(load) -> None:
    scenario = load(
        MINIMAL + "    replicas: 3\n  - name: boss\n    brain: echo\n    depends_on: [bob, alice]\n"
        "  - name: fan\n    brain: echo\n    depends_on: [bob-2]\n"
    )
    assert scenario.agent_names() == ["alice", "bob-1", "bob-2", "bob-3", "boss", "fan"]
    expanded = scenario.expanded_agents()
    assert [(a.name, a.replica) for a in expanded[1:4]] == [("bob-1", 1), ("bob-2", 2), ("bob-3", 3)]
    assert all(a.spec is scenario.agents[1] for a in expanded[1:4])
    assert expanded[0].replica is None
    assert expanded[4].depends_on == ("bob-1", "bob-2", "bob-3", "alice")
    assert expanded[5].depends_on == ("bob-2",)
    assert scenario.resolve("bob") == ("bob-1", "bob-2", "bob-3")
    assert scenario.resolve("bob-2") == ("bob-2",)
    assert scenario.resolve("nobody") == ()


def test_unknown_dependency(error) -> None:
    assert error(MINIMAL + "    depends_on: [carol]\n") == (
        "s.yaml:7: agents[1].depends_on[0]: unknown agent 'carol' (agents: alice, bob)"
    )


def test_self_dependency(error) -> None:
    assert (
        error(MINIMAL + "    depends_on: [bob]\n")
        == "s.yaml:7: agents[1].depends_on[0]: agent 'bob' cannot depend on itself"
    )


def test_dependency_cycle(error) -> None:
    text = MINIMAL.replace("brain: echo", "brain: echo\n    depends_on: [carol]") + (
        "    depends_on: [alice]\n  - name: carol\n    brain: echo\n    depends_on: [bob]\n"
    )
    assert error(text) == "s.yaml:5: agents[0].depends_on: dependency cycle: alice -> carol -> bob -> alice"


def test_unknown_brain(error) -> None:
    message = error(MINIMAL.replace("brain: calc", "brain: oracle"))
    assert message.startswith("s.yaml:6: agents[1].brain: unknown brain 'oracle' (brains: echo, calc, scripted,")


def test_bad_brain_options(error) -> None:
    text = MINIMAL + "    options: {thinktime: 1}\n"
    assert error(text) == (
        "s.yaml:7: agents[1].options: brain 'calc': unknown option 'thinktime' (known: fail_rate, seed, think_time)"
    )


# --------------------------------------------------------------------------- script


OPEN = MINIMAL + "script:\n  - {at: 1, action: open, channel: q, type: consulting, from: alice, to: [bob]}\n"


def test_open_and_participants(load) -> None:
    step = "{at: 1, action: open, channel: q, type: discussion, from: alice, to: bob, knobs: {rounds: 2}}"
    scenario = load(MINIMAL + f"    replicas: 2\nscript:\n  - {step}\n")
    assert scenario.channels()["q"].to == ["bob"]
    assert scenario.participants("q") == ("alice", "bob-1", "bob-2")


def test_duplicate_channel_alias(error) -> None:
    text = OPEN + "  - {at: 2, action: open, channel: q, type: consulting, from: bob, to: [alice]}\n"
    assert error(text) == "s.yaml:9: script[1].channel: channel 'q' is opened twice (first at line 8)"


def test_unknown_channel(error) -> None:
    text = OPEN + "  - {at: 2, action: post, channel: r, from: alice, text: hi}\n"
    assert error(text) == "s.yaml:9: script[1].channel: unknown channel 'r' (channels: q)"


def test_post_before_open(error) -> None:
    text = OPEN + "  - {at: 0.5, action: post, channel: q, from: alice, text: hi}\n"
    assert error(text) == "s.yaml:9: script[1].at: channel 'q' is not open yet (it opens at 1 s)"


def test_post_from_outsider(error) -> None:
    text = MINIMAL + "  - name: carol\n    brain: echo\n" + OPEN[len(MINIMAL) :]
    text += "  - {at: 2, action: post, channel: q, from: carol, text: hi}\n"
    assert error(text) == "s.yaml:11: script[1].from: 'carol' is not in channel 'q' (alice, bob)"


def test_knob_must_fit_the_channel_type(error) -> None:
    text = OPEN.replace("to: [bob]", "to: [bob], knobs: {rounds: 3}")
    assert error(text) == "s.yaml:8: script[0].knobs.rounds: consulting channels take no knob 'rounds' (known: none)"
    text = OPEN.replace("consulting", "conversation").replace("to: [bob]", "to: [bob], knobs: {max_turns: 0}")
    assert error(text) == "s.yaml:8: script[0].knobs.max_turns: knob 'max_turns' must be at least 1"


def test_to_must_be_others(error) -> None:
    assert error(OPEN.replace("to: [bob]", "to: [alice]")) == (
        "s.yaml:8: script[0].to[0]: 'alice' opens the channel; list only the others"
    )
    assert error(OPEN.replace("to: [bob]", "to: [bob, bob]")) == "s.yaml:8: script[0].to[1]: 'bob' is listed twice"
    assert error(OPEN.replace("to: [bob]", "to: []")) == "s.yaml:8: script[0].to: expected at least 1 item(s)"


def test_sender_must_be_one_process(error) -> None:
    text = MINIMAL.replace("brain: echo", "brain: echo\n    replicas: 2") + OPEN[len(MINIMAL) :]
    assert error(text) == ("s.yaml:9: script[0].from: 'alice' has 2 replicas; name one of them (alice-1, alice-2)")


def test_stream_text_template_and_deadline(load, error) -> None:
    stream = "  - {at: 2, action: stream, channel: q, from: alice, count: 10, rate: 5}\n"
    scenario = load(OPEN + stream)
    step = scenario.script[1]
    assert isinstance(step, StreamStep)
    assert (step.text_for(3), step.duration) == ("note 3 of 10", 1.8)
    bad = stream.replace("rate: 5", "rate: 5, text: '{i}'")
    assert error(OPEN + bad) == "s.yaml:9: script[1].text: uses unknown placeholder {i} (available: {count}, {n})"
    assert error(OPEN + stream + "expect: {within: 3}\n") == (
        "s.yaml:9: script[1].at: the stream ends at 3.8 s, not before expect.within (3 s)"
    )


# --------------------------------------------------------------------------- faults and expect


def test_fault_target_rules(error) -> None:
    assert error(MINIMAL + "faults:\n  - {at: 1, action: kill}\n") == (
        "s.yaml:8: faults[0].target: kill needs a target (an agent name)"
    )
    assert error(MINIMAL + "faults:\n  - {at: 1, action: restart-hub, target: bob}\n") == (
        "s.yaml:8: faults[0].target: restart-hub takes no target"
    )
    assert error(MINIMAL + "faults:\n  - {at: 1, action: pause, target: eve}\n") == (
        "s.yaml:8: faults[0].target: unknown agent 'eve' (agents: alice, bob)"
    )
    assert error(MINIMAL + "faults:\n  - {at: -1, action: kill, target: bob}\n") == (
        "s.yaml:8: faults[0].at: must be >= 0, got -1"
    )
    assert error(MINIMAL + "faults:\n  - {at: 1, action: explode, target: bob}\n") == (
        "s.yaml:8: faults[0].action: expected 'kill', 'stop', 'pause', 'resume', 'disconnect', 'restart', "
        "'restart-hub', 'kill-hub', 'freeze-hub' or 'failover', got 'explode'"
    )


def test_faults_are_sorted_stably(load) -> None:
    scenario = load(
        MINIMAL + "faults:\n"
        "  - {at: 3, action: resume, target: bob}\n"
        "  - {at: 1, action: pause, target: bob, caption: first}\n"
        "  - {at: 1, action: restart-hub, caption: second}\n"
    )
    assert [(f.at, f.caption) for f in scenario.faults] == [(1, "first"), (1, "second"), (3, None)]


def test_expect_references(load, error) -> None:
    ok = load(OPEN + "expect:\n  channels_closed: [q]\n  replies: [{channel: q, from: bob, matches: '13'}]\n")
    assert ok.expect is not None and ok.expect.within == 60
    assert error(OPEN + "expect:\n  channels_closed: [r]\n") == (
        "s.yaml:10: expect.channels_closed[0]: unknown channel 'r' (channels: q)"
    )
    assert error(OPEN + "expect:\n  replies:\n    - {channel: q, from: bob, matches: '('}\n") == (
        "s.yaml:11: expect.replies[0].matches: invalid regular expression: "
        "missing ), unterminated subpattern at position 0"
    )
    assert error(OPEN + "expect:\n  channels_closed: [q]\n  all_channels_closed: true\n") == (
        "s.yaml:11: expect.all_channels_closed: give either channels_closed or all_channels_closed"
    )
    assert error(MINIMAL + "faults:\n  - {at: 9, action: kill, target: bob}\nexpect: {within: 5}\n") == (
        "s.yaml:8: faults[0].at: at 9 s, not before expect.within (5 s)"
    )


# --------------------------------------------------------------------------- API surface


def test_parse_scenario_and_direct_validation() -> None:
    assert parse_scenario(MINIMAL, "inline.yaml").source is None
    with pytest.raises(ScenarioError, match=r"^inline\.yaml:3: agents\[0\]\.name"):
        parse_scenario(MINIMAL.replace("alice", "Alice"), "inline.yaml")
    data = {"name": "t", "agents": [{"name": "a", "brain": "echo"}, {"name": "a", "brain": "echo"}]}
    with pytest.raises(ValidationError, match=r"duplicate agent name 'a' \(first at agents\[0\]\.name\)"):
        Scenario.model_validate(data)


def test_scenario_error_without_line() -> None:
    assert str(ScenarioError("x.yaml", None, None, "boom")) == "x.yaml: boom"
    assert str(ScenarioError("x.yaml", 3, "a.b", "boom", column=7)) == "x.yaml:3:7: a.b: boom"


def test_json_schema_exports() -> None:
    schema = scenario_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {
        "name",
        "description",
        "hub",
        "gateways",
        "agents",
        "script",
        "faults",
        "expect",
        "live",
    }
    assert schema["additionalProperties"] is False
    step = schema["properties"]["script"]["items"]
    assert set(step["discriminator"]["mapping"]) == {"open", "post", "stream"}
    open_step = schema["$defs"]["OpenStep"]
    assert "from" in open_step["properties"] and "from" in open_step["required"]
    agent = schema["$defs"]["AgentSpec"]
    assert agent["properties"]["brain"]["enum"][:2] == ["echo", "calc"]
    assert agent["properties"]["restart"]["enum"] == ["no", "on-failure", "always"]
    calc = next(b for b in agent["allOf"] if b["if"]["properties"]["brain"]["const"] == "calc")
    ref = calc["then"]["properties"]["options"]["$ref"].split("/")[-1]
    assert "think_time" in schema["$defs"][ref]["properties"]
    refs = {value for value in _walk(schema) if isinstance(value, str) and value.startswith("#/$defs/")}
    assert {ref.split("/")[-1] for ref in refs} <= set(schema["$defs"])  # every $ref resolves


def _walk(node: object):
    if isinstance(node, dict):
        for value in node.values():
            yield value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --------------------------------------------------------------------------- command agents


def test_command_agent_validates(load) -> None:
    s = load(
        """\
        name: t
        agents:
          - name: alice
            command: [python3, peer.py, --hub, "{hub_url}", --name, "{name}"]
          - name: bob
            brain: echo
        """
    )
    assert s.agents[0].command == ["python3", "peer.py", "--hub", "{hub_url}", "--name", "{name}"]
    assert s.agents[0].brain is None


def test_command_agent_errors(error) -> None:
    both = "name: t\nagents:\n  - name: a\n    brain: echo\n    command: [x]\n"
    assert "give either brain or command, not both" in error(both)
    neither = "name: t\nagents:\n  - name: a\n"
    assert "agents[0].brain: missing required key (or give a command" in error(neither)
    placeholder = "name: t\nagents:\n  - name: a\n    command: [x, '{port}']\n"
    message = error(placeholder)
    assert "agents[0].command[1]" in message and "unknown placeholder {port}" in message
    options = "name: t\nagents:\n  - name: a\n    command: [x]\n    options: {think_time: 1}\n"
    assert "options are for brains" in error(options)


def test_live_section_is_checked_like_the_script() -> None:
    with pytest.raises(ScenarioError, match=r"live\.text: .*unknown placeholder \{m\}"):
        parse_scenario(MINIMAL + "live: {from: alice, to: [bob], text: 'What is {n} times {m}?'}\n", "live.yaml")
    with pytest.raises(ScenarioError, match=r"live\.to\[0\]: unknown agent 'bobby'"):
        parse_scenario(MINIMAL + "live: {every: 1.5, from: alice, to: [bobby]}\n", "live.yaml")
    ok = parse_scenario(MINIMAL + "live: {from: alice, to: alice}\n", "live.yaml")
    assert ok.live is not None and ok.live.text_for(3) == "What is 3 times 11?"
