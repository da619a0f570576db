"""The in-process client (`LocalHubClient`, what `agentnet hub --autogen` attaches its identities
with) after a failed commit: the hub rebuilds its core and closes every session, as it makes every
WebSocket client reconnect. A hub-side close that is not final must not end the identity for good:
the post in the failed batch gets the hub's definite `overloaded` answer (not a lost connection),
the client attaches again, and what was not acked is delivered again.

Real hub shell and SQLite store in a tmp dir; `AGENTNET_FAULT_DISK_FULL` makes commits fail with a
real SQLITE_FULL while its file exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentnet.client.connection import HubError
from agentnet.gateway.local import LocalHubClient
from agentnet.hub.server import Hub, HubSettings
from tests.waiting import await_until


async def test_local_client_attaches_again_after_a_failed_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tmp_path / "disk-full"
    monkeypatch.setenv("AGENTNET_FAULT_DISK_FULL", str(full))
    hub = Hub(HubSettings(port=0, store=f"sqlite:{tmp_path / 'hub.db'}"))
    await hub.start()
    alice = LocalHubClient(hub, name="alice")
    bob = LocalHubClient(hub, name="bob")
    notified: list[dict] = []
    bob.on_frame = lambda frame: notified.append(frame) if frame["kind"] == "notify" else None
    try:
        await alice.start()
        await bob.start()
        channel = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
        first = await alice.request("post", channel_id=channel, type="text", data={"text": "one"})
        await await_until("bob's first delivery", lambda: any(f["envelope"]["seq"] == first["seq"] for f in notified))

        full.touch()  # the disk is full: this post's commit fails
        with pytest.raises(HubError) as refused:
            await alice.request("post", channel_id=channel, type="text", data={"text": "x" * 20_000})
        assert refused.value.code == "overloaded", refused.value  # the definite answer, not a lost connection
        full.unlink()

        # Both identities are attached again (not "not attached to the hub" forever) ...
        await await_until("alice attached again", lambda: alice.connected, 10)
        await await_until("bob attached again", lambda: bob.connected, 10)
        again = await alice.request("post", channel_id=channel, type="text", data={"text": "two"})
        assert again["seq"] == first["seq"] + 1  # the refused post was not stored
        # ... and bob gets what he had not acked again, then the new post.
        await await_until(
            "bob's delivery after the failure", lambda: any(f["envelope"]["seq"] == again["seq"] for f in notified)
        )
        assert any(f["envelope"]["seq"] == first["seq"] and f["attempt"] > 1 for f in notified)
    finally:
        await alice.close()
        await bob.close()
        await hub.stop()
