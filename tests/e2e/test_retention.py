"""`--retain-closed`: closed channels everyone finished are deleted from the store after the retention
time, observers are told (`channels.dropped`), and listings and lookups no longer know them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentnet.client.connection import HubClient, HubError
from agentnet.hub import server
from agentnet.hub.server import Hub, HubSettings

pytestmark = pytest.mark.timeout(60)


async def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def test_closed_channels_past_retention_are_dropped_and_observers_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "RETENTION_INTERVAL", 0.05)

    async def main() -> None:
        settings = HubSettings(port=0, store=f"sqlite:{tmp_path / 'hub.sqlite3'}", retain_closed=1e-9)
        hub = Hub(settings)
        await hub.start()
        clients: list[HubClient] = []
        dropped: list[dict] = []
        pending: set[asyncio.Task] = set()
        try:
            for name in ("alice", "bob"):
                client = HubClient(hub.url, name=name)

                def ack(frame: dict, client: HubClient = client) -> None:
                    if frame.get("kind") == "notify":
                        task = asyncio.ensure_future(client.send_receipt(frame["envelope"]))
                        pending.add(task)
                        task.add_done_callback(pending.discard)

                client.on_frame = ack
                clients.append(client)
            watcher = HubClient(hub.url, name="watch", role="observer")
            watcher.on_frame = lambda f: dropped.append(f) if f.get("type") == "channels.dropped" else None
            clients.append(watcher)
            for client in clients:
                await client.start()
            await watcher.request("observe")
            alice = clients[0]
            ch = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
            kept = (await alice.request("open_channel", type="conversation", participants=["bob"]))["channel_id"]
            await alice.request("post", channel_id=ch, type="note", data={"n": 1})
            await alice.request("close_channel", channel_id=ch)
            await _until(lambda: any(ch in f["channel_ids"] for f in dropped), "channels.dropped")
            assert dropped[0]["count"] == 1 and dropped[0]["before"]
            with pytest.raises(HubError) as err:
                await alice.request("get_channel", channel_id=ch)
            assert err.value.code == "not_found"
            listed = await watcher.request("list_channels")
            assert [c["channel_id"] for c in listed["channels"]] == [kept] and listed["total"] == 1
            rows = hub.store._reader.execute("SELECT COUNT(*) FROM envelopes WHERE channel_id=?", (ch,)).fetchone()
            assert rows == (0,)
        finally:
            for client in clients:
                await client.close()
            await hub.stop()

    asyncio.run(main())
