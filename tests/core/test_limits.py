"""Contract-level limits and parsing nits: 64-bit integer bounds, the bearer scheme, redaction."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from agentnet.hub.auth import Authenticator, AuthError, bearer_token, load_auth_file
from agentnet.protocol import redact
from agentnet.protocol.codec import FrameError, decode_client_frame


def post_with(n: int) -> bytes:
    params = {"channel_id": "ch-1", "type": "note", "data": {"n": "N"}}
    text = orjson.dumps({"kind": "request", "request_id": "r1", "op": "post", "params": params})
    return text.replace(b'"N"', str(n).encode())  # by hand: orjson cannot encode beyond 64 bits


@pytest.mark.parametrize("n", [-(2**63), 2**63 - 1, 0, -1])
def test_every_signed_64_bit_integer_is_accepted(n: int) -> None:
    frame = decode_client_frame(post_with(n))
    assert frame.params.data["n"] == n


@pytest.mark.parametrize("n", [2**63, 2**64 - 1])  # (orjson reads below -2**63 as a float)
def test_integers_beyond_64_bits_are_refused(n: int) -> None:
    with pytest.raises(FrameError, match="beyond 64 bits"):
        decode_client_frame(post_with(n))


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer tok-1", "tok-1"),
        ("bearer tok-1", "tok-1"),
        ("BEARER  tok-1 ", "tok-1"),
        ("Basic dXNlcjpwdw==", ""),
        ("Bearer", ""),
        (None, None),
    ],
)
def test_the_bearer_scheme_is_case_insensitive(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_key_for_several_names_covers_those_and_their_prefixes(tmp_path: Path) -> None:
    """`names:` (a gateway's key): exact names and `prefix*` patterns, one role; name xor names."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "tokens:\n"
        '  - {names: [autogen-gw, "ag-*"], role: agent, token: tok-gateway-0123456789}\n'
        "  - {name: alice, token: tok-alice-0123456789ab}\n"
    )
    auth = Authenticator(load_auth_file(keys))
    assert auth.check("tok-gateway-0123456789", "autogen-gw", "agent") is None
    assert auth.check("tok-gateway-0123456789", "ag-echo", "agent") is None
    assert auth.check("tok-gateway-0123456789", "alice", "agent") == (
        "this API key is for agent autogen-gw, ag-*, not agent 'alice'"
    )
    assert auth.check("tok-gateway-0123456789", "ag-echo", "observer") is not None
    assert auth.check("tok-alice-0123456789ab", "alice", "agent") is None
    for bad in ("name: alice, names: [bob]", "role: agent", "names: []", "names: ['Ag*']"):
        keys.write_text(f"tokens:\n  - {{{bad}, token: tok-bad-0123456789abcd}}\n")
        with pytest.raises(AuthError, match="auth file"):
            load_auth_file(keys)


def test_redaction_masks_known_secrets_and_credential_shapes(caplog: pytest.LogCaptureFixture) -> None:
    redact.add_secret("sekrit-0123456789")
    lines = {
        "> Authorization: Bearer abc.def-123": "abc.def-123",
        "hello {'auth': {'scheme': 'api_key', 'token': 'xyz-987654'}}": "xyz-987654",
        '{"auth":{"token":"json-tok-5555"}}': "json-tok-5555",
        "argv: agentnet agent --token cli-tok-4444 --name a": "cli-tok-4444",
        "env AGENTNET_TOKEN=env-tok-3333": "env-tok-3333",
        "generated an_abcdefghijklmnopqrstuvwxyz012345": "an_abcdefghijklmnopqrstuvwxyz012345",
        "the key sekrit-0123456789 in free text": "sekrit-0123456789",
        '> TEXT \'{"kind":"hello",...rit-0123456789"}}\' [134 bytes]': "rit-0123",
        '< TEXT \'{"kind":"hello","auth":{"token":"sekrit-01...\' [134 bytes]': "sekrit-01",
    }
    for line, secret in lines.items():
        assert secret not in redact.redact(line), line
    handler = logging.StreamHandler()
    redact.protect_handler(handler)
    record = logging.LogRecord("t", logging.DEBUG, __file__, 1, "%s: %s", ("Authorization", "Bearer abc-1"), None)
    assert handler.filter(record)
    assert record.getMessage() == "Authorization: [redacted]"


def test_a_recipients_window_is_bounded_in_bytes_too() -> None:
    """window_bytes: big envelopes stop the pump before the count window fills; an ack resumes it,
    in seq order; a single envelope larger than the budget still goes (one always fits)."""
    from .harness import CoreHarness

    h = CoreHarness(window=256, window_bytes=50_000)
    alice, bob, ch = h.pair()
    for n in range(10):
        h.ok(alice, "post", channel_id=ch, type="note", data={"n": n, "pad": "x" * 20_000})
    first = h.notifies(bob)
    assert [f["envelope"]["seq"] for f in first] == [2, 3, 4]  # 3 x ~20 KB reach 50 KB
    assert h.core.agents["bob"].unacked_bytes >= 50_000
    h.receipt(bob, first[0])
    more = h.notifies(bob)
    assert [f["envelope"]["seq"] for f in more] == [5]
    for f in first[1:] + more:
        h.receipt(bob, f)
    seen = [5]
    while got := h.notifies(bob):
        seen += [f["envelope"]["seq"] for f in got]
        for f in got:
            h.receipt(bob, f)
    assert seen == list(range(5, 12)) and h.core.agents["bob"].unacked_bytes == 0
    h.ok(alice, "post", channel_id=ch, type="note", data={"pad": "y" * 60_000})
    assert [f["envelope"]["seq"] for f in h.notifies(bob)] == [12]
