"""The llm brain against a real OpenAI-compatible stub on a loopback socket: answers, outages, recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentnet.agents.brains import BrainError, BrainRequest, make_brain
from tests.stub_openai import StubOpenAI
from tests.waiting import await_until

FAST = {"retries": 1, "retry_backoff": 0.01, "timeout": 5}


def request(text: str = "hello", **overrides: Any) -> BrainRequest:
    fields: dict[str, Any] = {
        "agent": "bot",
        "text": text,
        "data": {"text": text},
        "sender": "alice",
        "channel_id": "ch-1",
        "channel_type": "conversation",
        "seq": 1,
    }
    fields.update(overrides)
    return BrainRequest(**fields)


@pytest.fixture
def stub():
    with StubOpenAI() as server:
        yield server


def llm(stub: StubOpenAI, **options: Any):
    return make_brain("llm", {"base_url": stub.base_url, "model": "test-model", **FAST, **options}, agent="bot")


async def test_answers_with_the_stub_reply(stub: StubOpenAI) -> None:
    brain = llm(stub)
    reply = await brain.reply(request("What is up?"))
    assert reply.text == "stub: What is up?"
    assert reply.data["model"] == "test-model"
    assert reply.data["finish_reason"] == "stop"
    assert stub.requests[-1]["model"] == "test-model"
    await brain.aclose()


async def test_sends_system_history_and_text_as_chat_messages(stub: StubOpenAI) -> None:
    brain = llm(stub, system="Be brief.", temperature=0.2, max_tokens=64)
    history = (
        {"sender": "alice", "type": "message", "data": {"text": "hi bot"}},
        {"sender": "bot", "type": "reply", "data": {"text": "hi alice"}},
        {"sender": "hub", "type": "joined", "data": {}},  # no text: not part of the conversation
        {"sender": "carol", "type": "message", "data": {"text": "me too"}},
    )
    await brain.reply(request("and now?", history=history))
    body = stub.requests[-1]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi bot"},
        {"role": "assistant", "content": "hi alice"},
        {"role": "user", "content": "me too"},
        {"role": "user", "content": "and now?"},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 64


async def test_label_senders_and_max_history(stub: StubOpenAI) -> None:
    brain = llm(stub, label_senders=True, max_history=1)
    history = (
        {"sender": "alice", "data": {"text": "old"}},
        {"sender": "carol", "data": {"text": "recent"}},
    )
    await brain.reply(request("question", history=history))
    assert stub.requests[-1]["messages"] == [
        {"role": "user", "content": "carol: recent"},
        {"role": "user", "content": "alice: question"},
    ]
    assert "temperature" not in stub.requests[-1]


async def test_api_key_comes_from_the_named_env_var(stub: StubOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTNET_TEST_KEY", raising=False)
    brain = llm(stub, api_key_env="AGENTNET_TEST_KEY")
    await brain.reply(request())
    assert "authorization" not in stub.headers[-1]
    monkeypatch.setenv("AGENTNET_TEST_KEY", "sk-test")
    await brain.reply(request())
    assert stub.headers[-1]["authorization"] == "Bearer sk-test"


async def test_outage_is_a_clear_brain_error_and_recovery_answers_again(stub: StubOpenAI) -> None:
    brain = llm(stub)
    assert (await brain.reply(request("before"))).text == "stub: before"

    stub.stop()
    with pytest.raises(BrainError) as info:
        await brain.reply(request("during"))
    message = str(info.value)
    assert message.startswith(f"llm endpoint {stub.base_url} unreachable: ")
    assert "refused" in message.lower()
    assert message.endswith("(after 2 attempts)")
    assert "\n" not in message

    stub.start()  # same port
    assert (await brain.reply(request("after"))).text == "stub: after"


async def test_a_new_stub_on_the_same_port_serves_the_same_brain() -> None:
    with StubOpenAI() as first:
        brain = llm(first)
        port = first.port
        assert (await brain.reply(request("one"))).text == "stub: one"
    with pytest.raises(BrainError, match="unreachable"):
        await brain.reply(request("gap"))
    with StubOpenAI(lambda body: "second server", port=port) as second:
        assert second.base_url == first.base_url
        assert (await brain.reply(request("two"))).text == "second server"


async def test_http_500_is_retried_then_succeeds(stub: StubOpenAI) -> None:
    brain = llm(stub, retries=2)
    stub.fail_next(2)
    assert (await brain.reply(request("eventually"))).text == "stub: eventually"
    assert len(stub.requests) == 3


async def test_http_500_beyond_the_retries_is_a_brain_error(stub: StubOpenAI) -> None:
    brain = llm(stub, retries=1)
    stub.fail_next(5)
    with pytest.raises(BrainError) as info:
        await brain.reply(request())
    assert str(info.value) == (
        f"llm endpoint {stub.base_url} returned HTTP 500: stub failure (HTTP 500) (after 2 attempts)"
    )
    assert len(stub.requests) == 2


async def test_client_errors_are_not_retried(stub: StubOpenAI) -> None:
    brain = make_brain("llm", {"base_url": stub.base_url + "/wrong", "model": "m", **FAST}, agent="bot")
    with pytest.raises(BrainError) as info:
        await brain.reply(request())
    assert str(info.value).startswith(f"llm endpoint {stub.base_url}/wrong returned HTTP 404: no route")
    stub.fail_next(3, status=401)
    with pytest.raises(BrainError, match=r"returned HTTP 401: stub failure \(HTTP 401\)$"):
        await llm(stub, retries=2).reply(request())
    assert len(stub.requests) == 1  # the 404 never reached chat/completions; the 401 was not retried


async def test_malformed_answers_are_brain_errors(stub: StubOpenAI) -> None:
    brain = llm(stub)
    stub.queue_response({"id": "x", "choices": []})
    with pytest.raises(BrainError, match=r"^llm endpoint http://127\.0\.0\.1:\d+/v1 returned no choices$"):
        await brain.reply(request())
    stub.queue_response({"choices": [{"index": 0, "message": {"role": "assistant"}}]})
    with pytest.raises(BrainError, match="without message content"):
        await brain.reply(request())
    stub.queue_response({"choices": [{"message": {"content": [{"type": "text", "text": "parts"}]}}]})
    assert (await brain.reply(request())).text == "parts"


async def test_timeout_is_a_brain_error_and_does_not_block_the_loop(stub: StubOpenAI) -> None:
    brain = llm(stub, timeout=0.5, retries=0)
    stub.delay = 2.0
    task = asyncio.create_task(brain.reply(request()))
    # While the request is in flight, the event loop keeps running (the HTTP call is in a thread):
    # this coroutine gets to poll until the stub has the request, and the reply is still pending.
    await await_until("the stub to receive the request", lambda: stub.requests, 10)
    assert not task.done()
    with pytest.raises(BrainError) as info:
        await task
    assert str(info.value) == f"llm endpoint {stub.base_url} timed out after 0.5s (after 1 attempt)"


async def test_knobs_wrap_the_llm_brain(stub: StubOpenAI) -> None:
    brain = llm(stub, fail_rate=1.0, seed=1)
    assert brain.name == "llm"
    with pytest.raises(BrainError, match=r"^simulated failure \(fail_rate=1\)$"):
        await brain.reply(request())
    assert stub.requests == []  # the simulated failure happens before the endpoint is asked
