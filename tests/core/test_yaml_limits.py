"""Hostile YAML: size, depth and alias expansion are capped before anything recursive runs.

Each case is refused with one `file:line: key: problem` line; `agentnet up` then exits 2 having
started nothing (the e2e test at the end runs the real command).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentnet.launcher.yamlsource import MAX_BYTES, YamlSourceError, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
HEAD = "name: hostile\nagents: [{name: a, brain: echo}]\n"


def bomb() -> str:
    """A billion laughs in ~300 bytes: nine anchors, each a list of nine of the previous one."""
    lines = ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghi"
    for prev, cur in itertools.pairwise(names):
        lines.append(f"x-{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return HEAD + "\n".join(lines) + "\n"


def chain(n: int = 3000) -> str:
    return HEAD + "x-0: &a0 [1]\n" + "".join(f"x-{i}: &a{i} [*a{i - 1}]\n" for i in range(1, n))


def merge_chain(n: int = 2000) -> str:
    return HEAD + "x-0: &m0 {k0: 0}\n" + "".join(f"x-{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}\n" for i in range(1, n))


def deep_block(n: int = 400) -> str:
    return HEAD + "x-deep:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(n)) + "  " * (n + 1) + "v\n"


CASES = {
    "alias bomb": (bomb, 8, "x-f", "aliases expand to more than"),
    "long alias chain": (chain, 66, "x-63", "aliases expand to deeper than 64 levels"),
    "long merge chain": (merge_chain, None, None, "aliases expand to deeper than 64 levels"),
    "deep flow nesting": (lambda: HEAD + "x-deep: " + "[" * 20000 + "]" * 20000 + "\n", 3, "x-deep", "nested deeper"),
    "deep block nesting": (deep_block, None, "x-deep", "nested deeper than 64 levels"),
    "deep sequence on one line": (lambda: HEAD + "x-deep:\n  " + "- " * 3000 + "x\n", 4, "x-deep", "nested deeper"),
    "recursive alias": (lambda: HEAD + "x-loop: &l [1, *l]\n", 3, None, "recursive alias"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_yaml_is_refused_in_one_line(case: str) -> None:
    make, line, key, problem = CASES[case]
    text = make()
    started = time.perf_counter()
    with pytest.raises(YamlSourceError) as refused:
        parse_yaml(text, "s.yaml")
    took = time.perf_counter() - started
    message = str(refused.value)
    print(f"{case}: {len(text)} bytes refused in {took * 1000:.0f} ms: {message}")
    assert "\n" not in message and problem in message, message
    assert message.startswith("s.yaml:")
    if line is not None:
        assert refused.value.line == line, message
    if key is not None:
        assert refused.value.key[:1] == (key,), message


def test_a_file_over_the_size_cap_is_refused_unread() -> None:
    with pytest.raises(YamlSourceError, match=f"the limit is {MAX_BYTES}"):
        parse_yaml(HEAD + "x-pad: " + "a" * MAX_BYTES + "\n", "s.yaml")


def test_anchors_and_merges_of_normal_size_still_work() -> None:
    text = HEAD + "x-base: &base {brain: echo}\nx-list: &l [1, 2]\nx-use: {<<: *base, more: *l}\n"
    data = parse_yaml(text, "s.yaml").data
    assert data["x-use"] == {"brain": "echo", "more": [1, 2]}


@pytest.mark.parametrize("case", ["alias bomb", "long alias chain", "deep flow nesting"])
def test_agentnet_up_exits_2_with_one_line_and_starts_nothing(case: str, tmp_path: Path) -> None:
    scenario = tmp_path / "hostile.yaml"
    scenario.write_text(CASES[case][0]())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "agentnet.cli", "up", "--headless", str(scenario)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"agentnet up: {scenario}:"), done.stderr
    assert not (tmp_path / ".agentnet").exists(), "a run directory was made: something started"
