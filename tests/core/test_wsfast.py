"""`agentnet.wsfast.encode_text_frames` against websockets' own frame serializer and parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from agentnet.wsfast import encode_text_frames

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def payload(length: int) -> bytes:
    return (bytes(range(251)) * (length // 251 + 1))[:length]


def reference(messages: list[bytes]) -> bytes:
    return b"".join(Frame(Opcode.TEXT, data).serialize(mask=False) for data in messages)


def parse_masked(wire: bytes) -> list[Frame]:
    """Every frame of `wire`, parsed as a server parses a client's (masked) frames."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        with pytest.raises(StopIteration) as done:  # all the bytes are there: the parser never yields
            next(parser)
        frames.append(done.value.value)
    return frames


def mask_bits(wire: bytes, messages: list[bytes]) -> list[bool]:
    """The mask bit of each frame of `wire`, walking the headers by the known payload lengths."""
    bits, pos = [], 0
    for data in messages:
        bits.append(bool(wire[pos + 1] & 0x80))
        n = len(data)
        pos += 2 + (0 if n < 126 else 2 if n < 65536 else 8) + 4 + n
    assert pos == len(wire)
    return bits


@pytest.mark.parametrize("length", LENGTHS)
def test_unmasked_frame_equals_websockets_serialize(length: int) -> None:
    data = payload(length)
    assert encode_text_frames([data], mask=False) == reference([data])


def test_several_messages_are_the_concatenation_of_their_frames() -> None:
    messages = [payload(n) for n in LENGTHS]
    assert encode_text_frames(messages, mask=False) == reference(messages)
    assert encode_text_frames([], mask=False) == b""


def test_masked_frames_parse_back_to_the_payloads() -> None:
    messages = [payload(n) for n in LENGTHS]
    wire = encode_text_frames(messages, mask=True)
    frames = parse_masked(wire)
    assert [(f.opcode, f.fin, f.data) for f in frames] == [(Opcode.TEXT, True, m) for m in messages]
    assert mask_bits(wire, messages) == [True] * len(messages)


BLOBS = st.binary(max_size=200) | st.builds(payload, st.sampled_from(LENGTHS) | st.integers(0, 70_000))


@settings(max_examples=200, deadline=None)
@given(st.lists(BLOBS, max_size=10))
def test_any_batch_matches_websockets(messages: list[bytes]) -> None:
    assert encode_text_frames(messages, mask=False) == reference(messages)
    wire = encode_text_frames(messages, mask=True)
    assert [f.data for f in parse_masked(wire)] == messages
    assert all(mask_bits(wire, messages))
