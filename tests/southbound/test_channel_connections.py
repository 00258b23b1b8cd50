"""The agent channel through the HTTP server's defences: the header deadline ends with the
upgrade (a channel lives as long as it answers pings), and a channel holds its connection's
place under the per-address cap until it closes; refused handshakes give theirs back."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from controller.settings import Settings
from controller.store.database import Database
from tests.support.raw_http import assert_envelope, exchange
from tests.support.southbound import (
    FAST,
    build_fabric,
    channel,
    closed_by_the_controller,
    eventually,
    in_process_controller,
    receive_policy,
    say_hello,
    tokens,
)

AGENTS = "127.0.0.5"


async def test_a_channel_outlives_the_header_deadline(
    database_url: str, database: Database
) -> None:
    settings = Settings(database_url=database_url, **FAST, http_header_timeout=0.3)
    async with in_process_controller(settings) as running:
        await build_fabric(running.http)
        token = (await tokens(database, ("hostA",)))["hostA"]
        async with channel(running.base_url, "hostA", token) as websocket:
            await say_hello(websocket, "hostA", 0)
            assert (await receive_policy(websocket))["type"] == "snapshot"
            # Five times the deadline: bookmarks keep coming and the channel stays open.
            assert not await closed_by_the_controller(websocket, within=1.5)


async def test_channels_hold_their_place_under_the_address_cap(
    database_url: str, database: Database
) -> None:
    settings = Settings(database_url=database_url, **FAST, http_max_connections_per_address=2)
    async with in_process_controller(settings) as running:
        await build_fabric(running.http)
        known = await tokens(database)

        def held() -> int:
            return running.admission.held_by(AGENTS)

        # Refused handshakes (a wrong token: 403) give their place back at once.
        for _ in range(5):
            with pytest.raises(InvalidStatus) as refused:
                async with channel(running.base_url, "hostA", "wrong", local_address=AGENTS):
                    pass
            assert refused.value.response.status_code == 403
        await eventually(lambda: held() == 0, what="the refused handshakes' release")

        async with (
            channel(running.base_url, "hostA", known["hostA"], local_address=AGENTS) as a,
            channel(running.base_url, "hostB", known["hostB"], local_address=AGENTS) as b,
        ):
            for server_id, websocket in (("hostA", a), ("hostB", b)):
                await say_hello(websocket, server_id, 0)
                assert (await receive_policy(websocket))["type"] == "snapshot"
            assert held() == 2
            over = await exchange("127.0.0.1", running.port, b"", local_address=AGENTS)
            assert_envelope(over.response, 429, "TooManyConnections")
            with pytest.raises(InvalidStatus) as capped:
                async with channel(running.base_url, "hostC", known["hostC"], local_address=AGENTS):
                    pass
            assert capped.value.response.status_code == 429

        await eventually(lambda: held() == 0, what="the closed channels' release")
        async with channel(
            running.base_url, "hostC", known["hostC"], local_address=AGENTS
        ) as websocket:
            await say_hello(websocket, "hostC", 0)
            assert (await receive_policy(websocket))["type"] == "snapshot"
