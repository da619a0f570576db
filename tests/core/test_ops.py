"""The core's op table: every op of the wire contract has one entry (params model, handler, roles),
and the roles it names are the ones enforced."""

from __future__ import annotations

import pytest

from agentnet.hub.ops import OPS
from agentnet.protocol.frames import OP_PARAMS
from tests.core.harness import CoreHarness


def test_every_op_of_the_contract_has_one_entry_with_its_params_model() -> None:
    assert set(OPS) == set(OP_PARAMS)
    for name, op in OPS.items():
        assert op.params is OP_PARAMS[name], name
        assert op.roles <= {"agent", "observer", "supervisor"}, name


@pytest.mark.parametrize("role", ["agent", "observer", "supervisor"])
def test_each_role_is_refused_exactly_the_ops_it_is_not_given(role: str) -> None:
    h = CoreHarness()
    alice, _, ch = h.pair()
    conn = alice if role == "agent" else h.connect("someone", role=role)
    valid = {  # params that pass validation, so what is refused is the role
        "open_channel": {"type": "conversation", "participants": ["bob"]},
        "post": {"channel_id": ch, "data": {"text": "hi"}},
        "read_wal": {"channel_id": ch},
        "get_channel": {"channel_id": ch},
        "close_channel": {"channel_id": ch},
        "find_by_causation": {"channel_id": ch, "causation_id": "e-1"},
        "disconnect": {"name": "bob"},
    }
    for name, op in OPS.items():
        response = h.request(conn, name, **valid.get(name, {}))
        denied = not response["ok"] and response["error_code"] == "access_denied"
        assert denied == (role not in op.roles), (role, name, response)


def test_the_supervisor_acts_for_an_agent_only_on_ops_that_allow_it() -> None:
    h = CoreHarness()
    h.connect("alice")
    h.connect("bob")
    sup = h.connect("launcher", role="supervisor")
    opened = h.ok(sup, "open_channel", type="conversation", participants=["bob"], as_agent="alice")
    h.ok(sup, "post", channel_id=opened["channel_id"], data={"text": "hi"}, as_agent="alice")
    refused = h.request(sup, "register", as_agent="alice")
    assert not refused["ok"]
    observer = h.connect("watcher", role="observer")
    refused = h.request(observer, "post", channel_id=opened["channel_id"], data={}, as_agent="alice")
    assert refused["error_message"] == "only the supervisor may act as another agent"
