"""Every command's --help shows its defaults and an example; usage errors name the subcommand and
suggest the nearest spelling."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from agentnet.cli import _load_extra_commands, build_parser, main


def parsers(parser: argparse.ArgumentParser, name: str = "agentnet") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from parsers(child, f"{name} {child_name}")


def test_every_help_has_an_example_and_every_default() -> None:
    _load_extra_commands()
    seen = []
    for name, parser in parsers(build_parser()):
        seen.append(name)
        text = parser.format_help()
        assert "Examples:\n  agentnet" in text, f"{name} --help has no example"
        for action in parser._actions:
            if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
                continue
            if isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.help == argparse.SUPPRESS:
                continue
            rendered = parser._get_formatter()._get_help_string(action) or ""
            assert "default" in rendered, f"{name} {action.option_strings[0]}: no default in its help"
    assert {"agentnet hub", "agentnet agent", "agentnet ask", "agentnet up", "agentnet tui"} <= set(seen)


def test_usage_errors_name_the_subcommand_and_suggest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["hub", "--prot", "9000"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: agentnet hub" in err and "did you mean --port?" in err
    with pytest.raises(SystemExit):
        main(["upp", "scenarios/consult.yaml"])
    assert "did you mean 'up'?" in capsys.readouterr().err
