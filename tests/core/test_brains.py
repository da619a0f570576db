"""The brain registry, every brain's behaviour and option errors, and the think_time / fail_rate knobs."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agentnet.agents.brains import (
    BRAIN_NAMES,
    BrainConfigError,
    BrainError,
    BrainReply,
    BrainRequest,
    brain_options_schema,
    make_brain,
    validate_brain_options,
)
from agentnet.agents.brains.knobs import KnobbedBrain
from agentnet.agents.brains.scripted import NO_REPLY

LLM = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}  # never contacted in this file
MINIMAL: dict[str, dict[str, Any]] = {
    "echo": {},
    "calc": {},
    "scripted": {"default": "ok"},
    "transform": {"op": "upper"},
    "llm": LLM,
    "python": {"callable": "json:dumps"},
}


def req(text: str = "hello world", **overrides: Any) -> BrainRequest:
    fields: dict[str, Any] = {
        "agent": "bot",
        "text": text,
        "data": {"text": text},
        "sender": "alice",
        "channel_id": "ch-1",
        "channel_type": "conversation",
        "topic": "testing",
        "seq": 1,
    }
    fields.update(overrides)
    return BrainRequest(**fields)


def config_error(name: str, options: Any) -> str:
    with pytest.raises(BrainConfigError) as info:
        validate_brain_options(name, options)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- registry


def test_brain_names() -> None:
    assert BRAIN_NAMES == ("echo", "calc", "scripted", "transform", "llm", "python")


def test_unknown_brain() -> None:
    assert config_error("cacl", {}) == "unknown brain 'cacl' (known: calc, echo, llm, python, scripted, transform)"
    with pytest.raises(BrainConfigError, match="unknown brain 'nope'"):
        make_brain("nope", agent="a")


def test_brain_config_error_is_a_value_error() -> None:
    assert issubclass(BrainConfigError, ValueError)


@pytest.mark.parametrize("name", BRAIN_NAMES)
def test_every_brain_builds_with_minimal_options_and_has_a_strict_schema(name: str) -> None:
    validate_brain_options(name, MINIMAL[name])
    brain = make_brain(name, MINIMAL[name], agent="bot")
    assert brain.name == name
    schema = brain_options_schema(name)
    assert schema["additionalProperties"] is False
    assert {"think_time", "fail_rate", "seed"} <= set(schema["properties"])
    assert schema["title"] == f"{name} brain options"


@pytest.mark.parametrize("name", BRAIN_NAMES)
def test_every_brain_rejects_unknown_options(name: str) -> None:
    message = config_error(name, {**MINIMAL[name], "bogus": 1})
    assert message.startswith(f"brain '{name}': unknown option 'bogus' (known: ")
    assert "fail_rate" in message


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("echo", [1, 2], "brain 'echo': options must be a mapping, got list"),
        (
            "echo",
            {"prefx": ">"},
            "brain 'echo': unknown option 'prefx' (known: fail_rate, prefix, seed, think_time)",
        ),
        (
            "transform",
            {"op": "uper"},
            "brain 'transform': option 'op' must be one of upper, lower, reverse, word_count, template",
        ),
        ("transform", {}, "brain 'transform': option 'op' is required"),
        (
            "transform",
            {"op": "template"},
            "brain 'transform': option 'template' is required when op is 'template'",
        ),
        (
            "transform",
            {"op": "upper", "template": "{text}"},
            "brain 'transform': option 'template' is only used with op 'template' (op is 'upper')",
        ),
        (
            "transform",
            {"op": "template", "template": "Re: {txt}"},
            "brain 'transform': option 'template' uses unknown placeholder {txt} "
            "(available: {agent}, {channel_type}, {sender}, {text}, {topic})",
        ),
        (
            "transform",
            {"op": "template", "template": "a { b"},
            "brain 'transform': option 'template' has a stray '{' at position 2 (write '{{' for a literal brace)",
        ),
        ("scripted", {}, "brain 'scripted': needs at least one of 'replies', 'rules' or 'default'"),
        (
            "scripted",
            {"rules": [{"match": "ok", "reply": "fine"}, {"match": "(unclosed", "reply": "x"}]},
            "brain 'scripted': option 'rules[1].match' is not a valid regex '(unclosed': "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            "scripted",
            {"rules": [{"match": "(a)", "reply": "{2}"}]},
            "brain 'scripted': option 'rules[0]' reply uses unknown placeholder {2} "
            "(available: {agent}, {sender}, {text}, {topic}, {0}, {1})",
        ),
        (
            "scripted",
            {"rules": [{"match": "a", "reply": "b", "when": "x"}]},
            "brain 'scripted': unknown option 'rules[0].when' (known: ignore_case, match, reply)",
        ),
        (
            "scripted",
            {"replies": ["fine", "{who}"]},
            "brain 'scripted': option 'replies' item 1 uses unknown placeholder {who} "
            "(available: {agent}, {sender}, {text}, {topic})",
        ),
        ("llm", {}, "brain 'llm': option 'base_url' is required; option 'model' is required"),
        (
            "llm",
            {**LLM, "base_url": "127.0.0.1:8000"},
            "brain 'llm': option 'base_url' must be an http(s) URL like http://127.0.0.1:8000/v1 "
            "(got '127.0.0.1:8000')",
        ),
        (
            "llm",
            {**LLM, "retries": -1},
            "brain 'llm': option 'retries': input should be greater than or equal to 0",
        ),
        ("llm", {**LLM, "timeout": 0}, "brain 'llm': option 'timeout': input should be greater than 0"),
        (
            "python",
            {"callable": "just_a_name"},
            "brain 'python': option 'callable' must look like \"package.module:function\" (got 'just_a_name')",
        ),
        ("python", {}, "brain 'python': option 'callable' is required"),
        (
            "echo",
            {"fail_rate": 1.5},
            "brain 'echo': option 'fail_rate' must be a number between 0 and 1 (got 1.5)",
        ),
        (
            "echo",
            {"think_time": "soon"},
            "brain 'echo': option 'think_time' must be a number of seconds or a [min, max] pair of numbers",
        ),
        (
            "echo",
            {"think_time": [2, 1]},
            "brain 'echo': option 'think_time' must satisfy 0 <= min <= max <= 3600 (got [2, 1])",
        ),
        (
            "echo",
            {"think_time": -1},
            "brain 'echo': option 'think_time' must be between 0 and 3600 seconds (got -1)",
        ),
        (
            "echo",
            {"seed": "x"},
            "brain 'echo': option 'seed': input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_option_errors_are_one_clear_line(name: str, options: Any, expected: str) -> None:
    assert config_error(name, options) == expected


def test_several_problems_are_reported_together() -> None:
    message = config_error("transform", {"op": "nope", "extra": 1})
    assert message == (
        "brain 'transform': option 'op' must be one of upper, lower, reverse, word_count, template; "
        "unknown option 'extra' (known: fail_rate, op, seed, template, think_time)"
    )


# ---------------------------------------------------------------- echo and transform


async def test_echo() -> None:
    assert (await make_brain("echo", agent="bot").reply(req("hi"))).text == "hi"
    assert (await make_brain("echo", {"prefix": "echo: "}, agent="bot").reply(req("hi"))).text == "echo: hi"
    assert (await make_brain("echo", None, agent="bot").reply(req(""))).text == ""


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("upper", "HELLO BIG WORLD"),
        ("lower", "hello big world"),
        ("reverse", "dlroW giB olleH"),
        ("word_count", "3"),
    ],
)
async def test_transform_ops(op: str, expected: str) -> None:
    reply = await make_brain("transform", {"op": op}, agent="bot").reply(req("Hello Big World"))
    assert reply.text == expected


async def test_transform_template() -> None:
    brain = make_brain(
        "transform",
        {
            "op": "template",
            "template": "[{agent}] plan for {topic} from {sender} ({channel_type}): {text} {{ok}}",
        },
        agent="planner",
    )
    reply = await brain.reply(req("write docs"))
    assert reply.text == "[planner] plan for testing from alice (conversation): write docs {ok}"
    no_topic = await brain.reply(req("x", topic=None))
    assert no_topic.text == "[planner] plan for  from alice (conversation): x {ok}"


async def test_transform_template_does_not_reach_attributes() -> None:
    # str.format would allow "{text.__class__}"; our templates only know plain names.
    assert "has a stray" in config_error("transform", {"op": "template", "template": "{text.__class__}"})


# ---------------------------------------------------------------- scripted


async def test_scripted_replies_in_order_then_repeat_the_last() -> None:
    brain = make_brain("scripted", {"replies": ["one", "two", "last ({sender})"]}, agent="bot")
    texts = [(await brain.reply(req(seq=seq))).text for seq in range(1, 6)]
    assert texts == ["one", "two", "last (alice)", "last (alice)", "last (alice)"]


async def test_scripted_cycle_and_per_channel_order() -> None:
    brain = make_brain("scripted", {"replies": ["a", "b"], "cycle": True}, agent="bot")
    got = [(await brain.reply(req(seq=seq))).text for seq in range(1, 6)]
    assert got == ["a", "b", "a", "b", "a"]
    assert (await brain.reply(req(channel_id="other", seq=1))).text == "a"  # each channel has its own script


async def test_scripted_redelivery_of_the_same_turn_gets_the_same_reply() -> None:
    brain = make_brain("scripted", {"replies": ["first", "second"]}, agent="bot")
    assert (await brain.reply(req(seq=7))).text == "first"
    assert (await brain.reply(req(seq=7, attempt=2))).text == "first"
    assert (await brain.reply(req(seq=8))).text == "second"


async def test_scripted_rules_first_match_wins_with_groups() -> None:
    brain = make_brain(
        "scripted",
        {
            "rules": [
                {"match": r"(?P<name>\w+) is (\d+)", "reply": "{agent} heard {name}={2} from {sender} ({0})"},
                {"match": r"^hello", "reply": "hi {sender}", "ignore_case": True},
                {"match": r"hello", "reply": "never: the rule above wins"},
                {"match": r"maybe (x)?y", "reply": "[{1}]"},
            ],
            "default": "no idea about {text}",
        },
        agent="bot",
    )
    reply = await brain.reply(req("age is 42"))
    assert reply.text == "bot heard age=42 from alice (age is 42)"
    assert reply.data == {"rule": r"(?P<name>\w+) is (\d+)"}
    assert (await brain.reply(req("HELLO there"))).text == "hi alice"
    assert (await brain.reply(req("maybe y"))).text == "[]"  # an unmatched group is empty
    assert (await brain.reply(req("something else"))).text == "no idea about something else"


async def test_scripted_rules_fall_back_to_replies_then_to_a_fixed_text() -> None:
    brain = make_brain("scripted", {"rules": [{"match": "ping", "reply": "pong"}], "replies": ["r1"]}, agent="b")
    assert (await brain.reply(req("ping"))).text == "pong"
    assert (await brain.reply(req("other"))).text == "r1"
    rules_only = make_brain("scripted", {"rules": [{"match": "ping", "reply": "pong"}]}, agent="b")
    assert (await rules_only.reply(req("other"))).text == NO_REPLY


# ---------------------------------------------------------------- python


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    source = """
        import asyncio
        import threading

        from agentnet.agents.brains import BrainError, BrainReply

        def shout(request):
            return request.text.upper()

        async def slow_async(request):
            await asyncio.sleep(0)
            return {"text": "async " + request.sender, "data": {"n": 1}, "extra": True}

        def full(request):
            return BrainReply(text="full", data={"agent": request.agent})

        def where(request):
            return threading.current_thread().name

        def wrong_type(request):
            return 42

        def broken(request):
            raise KeyError("missing")

        def refuses(request):
            raise BrainError("not now")

        class Holder:
            @staticmethod
            def method(request):
                return "nested"

        NOT_CALLABLE = 3
    """
    (tmp_path / "brainmod_for_tests.py").write_text(textwrap.dedent(source))
    (tmp_path / "brainmod_broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "brainmod_for_tests"


async def test_python_brain_return_shapes(user_module: str) -> None:
    async def ask(func: str) -> BrainReply:
        return await make_brain("python", {"callable": f"{user_module}:{func}"}, agent="bot").reply(req("hey"))

    assert (await ask("shout")).text == "HEY"
    assert await ask("slow_async") == BrainReply(text="async alice", data={"n": 1, "extra": True})
    assert await ask("full") == BrainReply(text="full", data={"agent": "bot"})
    assert (await ask("Holder.method")).text == "nested"
    assert (await ask("where")).text != "MainThread"  # sync callables run in a worker thread


async def test_python_brain_failures_are_brain_errors(user_module: str) -> None:
    async def ask(func: str) -> BrainReply:
        return await make_brain("python", {"callable": f"{user_module}:{func}"}, agent="bot").reply(req())

    with pytest.raises(BrainError, match=r"returned int; expected str, dict or BrainReply$"):
        await ask("wrong_type")
    with pytest.raises(BrainError, match=r"^python callable brainmod_for_tests:broken raised KeyError: 'missing'$"):
        await ask("broken")
    with pytest.raises(BrainError, match=r"^not now$"):
        await ask("refuses")


async def test_python_brain_import_problems_are_config_errors_at_make_time(user_module: str) -> None:
    validate_brain_options("python", {"callable": "no_such_module_xyz:f"})  # validation does not import
    with pytest.raises(BrainConfigError) as info:
        make_brain("python", {"callable": "no_such_module_xyz:f"}, agent="bot")
    assert str(info.value) == (
        "brain 'python': cannot import module 'no_such_module_xyz' for callable 'no_such_module_xyz:f': "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    with pytest.raises(BrainConfigError, match=r"callable 'brainmod_for_tests:nope' not found \('nope' is missing\)"):
        make_brain("python", {"callable": f"{user_module}:nope"}, agent="bot")
    with pytest.raises(BrainConfigError, match=r"'brainmod_for_tests:NOT_CALLABLE' is a int, not a callable"):
        make_brain("python", {"callable": f"{user_module}:NOT_CALLABLE"}, agent="bot")
    with pytest.raises(BrainConfigError, match=r"RuntimeError: boom at import$"):
        make_brain("python", {"callable": "brainmod_broken:f"}, agent="bot")


# ---------------------------------------------------------------- knobs


def test_no_knobs_means_no_wrapper() -> None:
    assert not isinstance(make_brain("echo", agent="a"), KnobbedBrain)
    assert isinstance(make_brain("echo", {"fail_rate": 0.1}, agent="a"), KnobbedBrain)
    assert isinstance(make_brain("echo", {"think_time": 0}, agent="a"), KnobbedBrain)


async def _failures(brain: Any, turns: int) -> list[bool]:
    pattern = []
    for seq in range(turns):
        try:
            await brain.reply(req(seq=seq))
            pattern.append(False)
        except BrainError as exc:
            assert str(exc) == "simulated failure (fail_rate=0.3)"
            pattern.append(True)
    return pattern


async def test_fail_rate_with_a_seed_is_reproducible_and_roughly_right() -> None:
    options = {"fail_rate": 0.3, "seed": 42}
    first = await _failures(make_brain("echo", options, agent="a"), 400)
    again = await _failures(make_brain("echo", options, agent="a"), 400)
    other_agent = await _failures(make_brain("echo", options, agent="b"), 400)
    assert first == again
    assert first != other_agent  # agents sharing a seed do not fail in lockstep
    assert 80 < sum(first) < 160  # 0.3 * 400 = 120


async def test_fail_rate_extremes() -> None:
    never = make_brain("echo", {"fail_rate": 0}, agent="a")
    assert (await never.reply(req("x"))).text == "x"
    always = make_brain("echo", {"fail_rate": 1, "prefix": "> "}, agent="a")
    with pytest.raises(BrainError, match=r"^simulated failure \(fail_rate=1\)$"):
        await always.reply(req())


async def test_think_time_delays_the_reply() -> None:
    brain = make_brain("echo", {"think_time": 0.05}, agent="a")
    started = time.monotonic()
    assert (await brain.reply(req("x"))).text == "x"
    assert time.monotonic() - started >= 0.05


def test_think_time_range_with_a_seed_is_reproducible() -> None:
    def delays(agent: str) -> list[float]:
        brain = make_brain("echo", {"think_time": [0.5, 2.0], "seed": 3}, agent=agent)
        assert isinstance(brain, KnobbedBrain)
        return [brain._delay() for _ in range(50)]

    first = delays("a")
    assert first == delays("a")
    assert first != delays("b")
    assert all(0.5 <= d <= 2.0 for d in first)
    assert len(set(first)) > 40


async def test_wrapper_forwards_name_and_aclose() -> None:
    brain = make_brain("transform", {"op": "upper", "think_time": [0, 0.001], "seed": 1}, agent="a")
    assert brain.name == "transform"
    assert (await brain.reply(req("abc"))).text == "ABC"
    await brain.aclose()
