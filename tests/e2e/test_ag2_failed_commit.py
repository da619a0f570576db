"""The ag2 endpoint after a failed commit: the hub rebuilds its core and closes every connection;
the ag2 requests that commit would have answered (here a create_channel) never will be, and the
endpoint must not keep waiting for them (its table of pending native requests stays bounded).

Real hub shell and SQLite store (`AGENTNET_FAULT_DISK_FULL` fails commits with a real SQLITE_FULL),
a raw WebSocket client speaking ag2's frames on /ag2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from agentnet.hub.server import Hub, HubSettings
from tests.waiting import await_until


async def test_ag2_requests_of_a_failed_commit_are_not_kept_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tmp_path / "disk-full"
    monkeypatch.setenv("AGENTNET_FAULT_DISK_FULL", str(full))
    hub = Hub(HubSettings(port=0, store=f"sqlite:{tmp_path / 'hub.db'}"))
    await hub.start()
    try:
        async with connect(f"ws://127.0.0.1:{hub.port}/ag2", open_timeout=10) as ws:

            async def ask(request_id: str, op: str, **params: object) -> dict:
                await ws.send(
                    orjson.dumps({"kind": "request", "request_id": request_id, "op": op, "params": params}).decode()
                )
                while True:
                    got = orjson.loads(await ws.recv())
                    if got["kind"] == "response" and got["request_id"] == request_id:
                        return got

            a = (await ask("1", "register", passport={"name": "ag-a"}))["result"]["agent_id"]
            b = (await ask("2", "register", passport={"name": "ag-b"}))["result"]["agent_id"]
            full.touch()  # the disk is full: the channels' commit fails
            for i in range(40):  # enough rows to need a new page of the database
                create = {"creator_id": a, "manifest_type": "conversation", "participants": [b], "intent": "x" * 900}
                await ws.send(
                    orjson.dumps(
                        {"kind": "request", "request_id": f"c{i}", "op": "create_channel", "params": create}
                    ).decode()
                )
            async with asyncio.timeout(30):
                await ws.wait_closed()  # the hub makes every client reconnect after a failed commit
            assert ws.close_code == 1013
        await await_until("the ag2 connection's end handled", lambda: not hub.peers)
        assert hub.ag2.pending == {}, hub.ag2.pending
    finally:
        full.unlink(missing_ok=True)
        await hub.stop()
