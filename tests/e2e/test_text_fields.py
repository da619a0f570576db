"""Text a client sends that the hub stores as text (a channel's topic, a close reason, a receipt's
reason) may not hold the NUL character: PostgreSQL's text columns refuse it, and a commit that
fails rebuilds the hub's state and makes every client reconnect. So one client's topic must get a
one-line `invalid` answer, and cost nobody else anything (here: a PostgreSQL hub process, and a
bystander whose connection stays the first one).
"""

from __future__ import annotations

import pytest

from agentnet.client.connection import HubClient, HubError

from .procs import HubProc, Procs

pytestmark = pytest.mark.timeout(60)


async def test_nul_in_stored_text_is_refused_not_a_failed_commit(procs: Procs, pg_url: str) -> None:
    hub = HubProc(procs, pg_url).start()
    async with HubClient(hub.url, name="alice") as alice, HubClient(hub.url, name="bob") as bob:
        channel = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
        with pytest.raises(HubError) as topic:
            await alice.request("open_channel", type="conversation", participants=["bob"], topic="a\x00b")
        assert topic.value.code == "invalid" and "NUL" in topic.value.message, topic.value
        with pytest.raises(HubError) as reason:
            await alice.request("close_channel", channel_id=channel, reason="done\x00")
        assert reason.value.code == "invalid" and "NUL" in reason.value.message, reason.value
        closed = await alice.request("close_channel", channel_id=channel, reason="done")
        assert closed["state"] == "closed"
        assert alice.connections == 1 and bob.connections == 1  # no failed commit sent anyone away
    assert "store commit failed" not in hub.proc.log()
    assert hub.terminate() == 0
